#pragma once
// The raw-pointer CPU kernels behind vlm/kernels/*.h. The bodies (nearest_code_kernel.h, causal_attention_kernel.h)
// are compiled once per instruction set, each in its own translation unit that switches the target with
// `#pragma GCC target` (cpu_kernels_avx512.cpp, cpu_kernels_avx2.cpp, cpu_kernels.cpp for the baseline), and the
// table for the best set this CPU supports is picked at run time with __builtin_cpu_supports. No global or per-file
// compile flags: the rest of the library stays portable. These functions see no tensors and throw nothing; the
// LibTorch layer above validates, allocates and splits the work with at::parallel_for.
#include <cstdint>
#include <string>
#include <vector>

namespace vlm::kernels::cpu {

/// Nearest code for rows [begin, end) of x (N, D): out[n] = argmin_k (c2[k] + sum_d x[n,d] * neg2c[k,d]).
/// ||x||^2 is left out: it is the same for every code, so it cannot change the argmin. Ties go to the lowest k.
struct NearestCodeArgs {
  const float* x = nullptr;      // (N, D) row-major
  int64_t d = 0;
  const float* neg2c = nullptr;  // (K, D): -2 * codebook (exact: a power-of-two scale)
  const float* c2 = nullptr;     // (K): squared norms of the codes
  int64_t k = 0;
  int64_t* out = nullptr;        // (N)
};

/// One (B, nh, T, hs) operand: unit stride along hs, any strides along B, nh and T (views of a fused qkv work).
struct AttentionOperand {
  float* data = nullptr;
  int64_t sb = 0, sh = 0, st = 0;
  float* tile(int64_t b, int64_t h) const { return data + b * sb + h * sh; }
};

/// Causal attention over the tiles [begin, end) of the B * nh (b, h) pairs, one tile in cache at a time.
struct AttentionArgs {
  int64_t batch = 0, heads = 0, t = 0, hs = 0;
  float scale = 1.0f;
  AttentionOperand q, k, v;
  AttentionOperand y;       // forward output
  float* probs = nullptr;   // (B*nh, T, attention_row_stride(T)) softmax rows, zero above the diagonal; may be null
                            // in the forward (no backward to come)
  AttentionOperand dy;      // backward input
  AttentionOperand dq, dk, dv;  // backward outputs
};

/// Row stride of the saved probabilities: T rounded up to 16 floats (a whole number of vectors in every build).
inline int64_t attention_row_stride(int64_t t) { return (t + 15) / 16 * 16; }
/// Floats of scratch one worker needs for one tile (forward or backward).
int64_t attention_scratch_floats(int64_t t, int64_t hs);
/// Floats of scratch one worker needs for the nearest-code search with D dimensions.
int64_t nearest_code_scratch_floats(int64_t d);

struct KernelTable {
  const char* isa = "";
  /// Rows [begin, end) of x; scratch holds nearest_code_scratch_floats(d) floats.
  void (*nearest_code)(const NearestCodeArgs& args, int64_t begin, int64_t end, float* scratch) = nullptr;
  /// Tiles [begin, end) of B * nh; scratch holds attention_scratch_floats(t, hs) floats.
  void (*attention_forward)(const AttentionArgs& args, int64_t begin, int64_t end, float* scratch) = nullptr;
  void (*attention_backward)(const AttentionArgs& args, int64_t begin, int64_t end, float* scratch) = nullptr;
};

/// Every table compiled in and supported by this CPU, best first (the baseline is always last).
std::vector<const KernelTable*> supported_tables();
/// The table used by default: the best supported, or the one named by the environment variable VLM_KERNEL_ISA
/// ("avx512", "avx2" or "baseline"; an unknown or unsupported name is an error).
const KernelTable& active_table();
/// isa "" = active_table(); else the supported table of that name (an unknown or unsupported name is an error).
const KernelTable& table_for(const std::string& isa);

// Defined by the per-instruction-set translation units; null when that set was not compiled in.
const KernelTable* avx512_table();
const KernelTable* avx2_table();
const KernelTable& baseline_table();

}  // namespace vlm::kernels::cpu
