#pragma once
// Nearest code of a small codebook for many vectors: the search inside the VectorQuantizer.
//
//   at::Tensor idx = vlm::kernels::nearest_code(x, codebook);            // (N, D), (K, D) -> (N) int64
//   at::Tensor ref = vlm::kernels::nearest_code_reference(x, codebook);  // the seed's formula, LibTorch ops
//
// nearest_code is a fused distance + argmin: it never materialises the (N, K) distance matrix, runs 16 rows per
// vector lane set (AVX-512 / AVX2 / baseline, chosen at run time) and splits the rows with at::parallel_for.
//
// What "the same answer" means. Both return the lowest index among codes at the exact same distance. The reference
// rounds ||x||^2 - 2 x.c + ||c||^2 through a BLAS product, the kernel rounds ||c||^2 - 2 x.c (FMA); when two codes
// are within float rounding of each other the two may pick different ones, and neither is wrong. Whenever the exact
// (double) gap between the best and the second-best code exceeds nearest_code_tolerance, both pick the exact argmin;
// check_nearest_code verifies exactly that, so tests and benchmarks state the claim precisely.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace vlm::kernels {

/// The seed's VectorQuantizer search: argmin_k (sum(x^2) + sum(c_k^2) - 2 x c_k^T). x (N, D), codebook (K, D) ->
/// (N) int64. Any dtype/device LibTorch supports; materialises (N, K).
at::Tensor nearest_code_reference(const at::Tensor& x, const at::Tensor& codebook);

/// Whether the fused kernel applies: float32 CPU, x (N, D) and codebook (K, D) with the same D >= 1, 1 <= K < 2^31.
bool nearest_code_supported(const at::Tensor& x, const at::Tensor& codebook);

/// The fused kernel; isa "" = the active build (see kernel_isa.h), else "avx512", "avx2" or "baseline". Throws
/// vlm::Error when nearest_code_supported is false or the named build cannot run here.
at::Tensor nearest_code(const at::Tensor& x, const at::Tensor& codebook, const std::string& isa = "");

/// Float rounding slack for one row's squared distances: 8 (D + 2) FLT_EPSILON (||x||^2 + max_k ||c_k||^2).
double nearest_code_tolerance(double x_norm2, double max_code_norm2, int64_t d);

struct NearestCodeCheck {
  int64_t rows = 0;
  int64_t near_ties = 0;   ///< rows whose best and second-best exact distances are within the tolerance
  int64_t differ = 0;      ///< rows where indices differ from the exact (double) argmin: all of them near ties
};

/// Verifies indices (N) against an exact search in double: every row must pick a code whose exact distance is within
/// nearest_code_tolerance of the minimum, and rows without a near tie must pick the exact argmin (lowest index on
/// exact ties). Throws vlm::Error naming the first offending row, its indices and distances.
NearestCodeCheck check_nearest_code(const at::Tensor& x, const at::Tensor& codebook, const at::Tensor& indices);

}  // namespace vlm::kernels
