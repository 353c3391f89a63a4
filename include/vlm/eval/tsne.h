#pragma once
// Exact t-SNE (van der Maaten and Hinton, 2008) for a few thousand points, in LibTorch tensor ops: the 2-D map of the
// tokenizer's latents (examples/train_vqvae.cpp), which the seed drew with scikit-learn.
//
//   auto y = vlm::tsne_2d(latents, vlm::TsneOptions().perplexity(30));   // (N, F) -> (N, 2)
//
// O(N^2) time and memory: meant for N up to a few thousand (2,000 points, 750 iterations: about 20 s here).
#include <cstdint>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

namespace vlm {

struct TsneOptions {
  TORCH_ARG(double, perplexity) = 30.0;      ///< effective number of neighbours of each point
  TORCH_ARG(int64_t, iterations) = 750;
  TORCH_ARG(double, learning_rate) = 0.0;    ///< 0 = max(N / 12, 50) (the "auto" rule of openTSNE/scikit-learn)
  TORCH_ARG(double, early_exaggeration) = 12.0;
  TORCH_ARG(int64_t, exaggeration_iters) = 250;  ///< also when momentum goes from 0.5 to 0.8
  TORCH_ARG(uint64_t, seed) = 1337;          ///< the initial layout (small Gaussian noise)
};

/// Each point's conditional distribution over the others, exp(-beta_i |x_i - x_j|^2) normalised, with beta_i found by
/// bisection so that row i has the given perplexity. (N, F) -> (N, N) double, rows summing to 1, zero diagonal.
at::Tensor tsne_conditional(const at::Tensor& x, double perplexity);
/// The symmetric input affinities P = (P_cond + P_cond^T) / 2N, (N, N) float, summing to 1.
at::Tensor tsne_affinities(const at::Tensor& x, double perplexity);

/// The perplexity 2^H of each row of a row-stochastic matrix (N, N) -> (N).
at::Tensor row_perplexity(const at::Tensor& conditional);

/// x (N, F) -> embedding (N, 2), float32 on the CPU. Throws on N < 2 or perplexity outside (1, N - 1).
at::Tensor tsne_2d(const at::Tensor& x, const TsneOptions& options = {});

}  // namespace vlm
