#pragma once
// Vector quantizer of a VQ-VAE (van den Oord et al. 2017), as the seed builds it and with the usual improvements.
//
//   VectorQuantizer vq(VectorQuantizerOptions(26, 4).commitment_cost(0.25));
//   auto out = vq(z);            // z (B, L, D) -> out.quantized (B, L, D), out.codes (B, L), out.loss ()
//
// Every D-vector is replaced by its nearest codebook row (squared L2, ties to the lowest index). Gradients reach
// the encoder through the straight-through estimator. The loss is
//   codebook term   mean((q - sg[z])^2)         moves the codebook only
// + beta * commit   mean((sg[q] - z)^2)         moves the encoder only
// With `use_ema` the codebook term is dropped and the codebook follows exponential moving averages of the vectors
// assigned to it instead. Codes used less than `dead_code_threshold` (EMA count per batch) are restarted from
// vectors of the current batch. On its first training forward the codebook is set by k-means on that batch.
// With `groups` = G > 1 there are G codebooks and the input's second-to-last dimension picks the codebook; codes stay
// in [0, K) (the letter alphabet does not grow), and the parameters hold the G codebooks stacked as (G*K, D).
// Data-parallel (set_process_group): the k-means, EMA statistics and dead-code restarts are those of the global batch,
// gathered or summed across ranks, so every rank's codebook stays bit-identical to rank 0's.
#include <cstdint>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "vlm/core/options.h"

namespace vlm {

class ProcessGroup;

struct VectorQuantizerOptions {
  VectorQuantizerOptions(int64_t num_embeddings = 26, int64_t embedding_dim = 4)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  TORCH_ARG(int64_t, num_embeddings);      ///< K, codebook size (26: one code per letter A..Z)
  TORCH_ARG(int64_t, embedding_dim);       ///< D, dimension of one code vector
  /// G codebooks of K codes each: the input is (..., G, D) and position g draws from codebook g only, so the
  /// positions stop competing for one shared set of 26 codes. 1 = one shared codebook (the seed).
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(double, commitment_cost) = 0.25;  ///< beta on the encoder-side term
  TORCH_ARG(bool, kmeans_init) = true;     ///< k-means on the first training batch (the seed's init)
  TORCH_ARG(int64_t, kmeans_iters) = 30;   ///< Lloyd iterations after k-means++ seeding
  TORCH_ARG(bool, use_ema) = false;        ///< EMA codebook updates instead of the codebook loss term
  TORCH_ARG(double, ema_decay) = 0.99;
  TORCH_ARG(double, ema_epsilon) = 1e-5;   ///< Laplace smoothing of the EMA cluster sizes
  TORCH_ARG(double, dead_code_threshold) = 0.0;  ///< restart codes whose EMA use per batch falls below; 0 = off
  TORCH_ARG(double, usage_decay) = 0.99;   ///< decay of the per-code usage average that drives restarts

 public:
  template <class V>
  void fields(V& v) {
    v("num_embeddings", num_embeddings(), "codebook size K (letters available)");
    v("embedding_dim", embedding_dim(), "code vector dimension");
    v("groups", groups(), "codebooks (1 = shared; n_codes = one per code position)");
    v("commitment_cost", commitment_cost(), "beta of the commitment term");
    v("kmeans_init", kmeans_init(), "k-means initialisation on the first batch");
    v("kmeans_iters", kmeans_iters(), "Lloyd iterations of that k-means");
    v("use_ema", use_ema(), "EMA codebook updates instead of the codebook loss");
    v("ema_decay", ema_decay(), "EMA decay");
    v("ema_epsilon", ema_epsilon(), "Laplace smoothing of the EMA cluster sizes");
    v("dead_code_threshold", dead_code_threshold(), "restart codes used less than this per batch (0 = off)");
    v("usage_decay", usage_decay(), "decay of the usage average that drives restarts");
  }
};

/// Index of the nearest codebook row for every row of x, by squared L2; ties go to the lowest index (like argmin).
/// x (N, D), codebook (K, D) -> (N) int64. The one place the search lives, so a fused kernel can replace it.
at::Tensor nearest_code(const at::Tensor& x, const at::Tensor& codebook);

/// Plain k-means (k-means++ seeding, then Lloyd) of the rows of x (N, D) into k centroids (k, D).
/// Empty clusters are re-seeded from the point farthest from its centroid. Uses the default generator.
at::Tensor kmeans(const at::Tensor& x, int64_t k, int64_t iters);

/// Mean squared distance of each row of x to its nearest codebook row (the quantisation distortion).
double distortion(const at::Tensor& x, const at::Tensor& codebook);

/// Counts of every code in `codes` (any shape, values in [0, K)) -> (K) int64.
at::Tensor code_histogram(const at::Tensor& codes, int64_t num_embeddings);
/// exp(entropy) of a count histogram: K when all codes are used equally, 1 when one code takes everything.
double perplexity_of_counts(const at::Tensor& counts);

struct VectorQuantizerOutput {
  at::Tensor quantized;  ///< (..., D) straight-through: value of the codes, gradient of the input
  at::Tensor codes;      ///< (...) int64
  at::Tensor loss;       ///< () codebook term (unless EMA) + beta * commitment term
};

class VectorQuantizerImpl : public torch::nn::Cloneable<VectorQuantizerImpl> {
 public:
  explicit VectorQuantizerImpl(VectorQuantizerOptions options = {});
  void reset() override;

  /// z (..., D) -> quantized (..., D), codes (...), loss (). In training mode this also initialises the codebook
  /// on the first call, applies the EMA update and restarts dead codes.
  VectorQuantizerOutput forward(const at::Tensor& z);

  /// Codes of z (..., D) -> (...) int64, no state change, no graph.
  at::Tensor quantize(const at::Tensor& z);
  /// Code vectors of codes (...) -> (..., D).
  at::Tensor lookup(const at::Tensor& codes);

  /// Sets the codebook(s) by k-means on x (..., [G,] D) and marks the quantizer initialised. A batch with fewer
  /// vectors than codes is padded with jittered copies of its own vectors.
  void init_from(const at::Tensor& x);
  bool initialized() const;
  /// How many codes the restart logic has replaced since construction.
  int64_t restarts() const { return restarts_; }
  void set_restarts(int64_t n) { restarts_ = n; }  ///< when a training run is resumed
  /// Data-parallel training: each rank's forward sees its shard of the global batch, and the codebook's statistics
  /// are taken over all shards (nullptr or a group of one: this process alone). Not owned.
  void set_process_group(ProcessGroup* group) { group_ = group; }

  VectorQuantizerOptions options;
  at::Tensor codebook;          ///< (G*K, D) parameter (without grad when use_ema: the EMA sets it)
  at::Tensor initialized_flag;  ///< () buffer, 1 once the codebook is set, so a loaded model is not re-initialised
  at::Tensor ema_count;         ///< (G*K) buffer, EMA of the vectors assigned per batch
  at::Tensor ema_sum;           ///< (G*K, D) buffer, EMA of their sum
  at::Tensor usage;             ///< (G*K) buffer, EMA of assignments per batch, for dead-code restarts

 private:
  // z (..., [G,] D) -> (N, G, D)
  at::Tensor grouped(const at::Tensor& z) const;
  // Codes (N, G) in [0, K) of grouped vectors (N, G, D)
  at::Tensor nearest_grouped(const at::Tensor& zg) const;
  // Local codes (..., G) -> rows of the stacked codebook
  at::Tensor global_codes(const at::Tensor& codes) const;
  // counts (R) and sums (R, D) of the vectors assigned to each codebook row in this (global) batch
  void update_ema(const at::Tensor& counts, const at::Tensor& sums);
  // zg (N, G, D) this rank's vectors; counts (R) over the global batch of n_global vectors per group
  void restart_dead_codes(const at::Tensor& zg, const at::Tensor& counts, int64_t n_global);
  bool data_parallel() const;
  int64_t restarts_ = 0;
  ProcessGroup* group_ = nullptr;
};
TORCH_MODULE(VectorQuantizer);

}  // namespace vlm
