#pragma once
// nanoGPT's GPT (model.py) on LibTorch, with nanoGPT's parameter names so checkpoints read alike:
//   wte, wpe, drop, h.N.{ln_1, attn.{c_attn, c_proj}, ln_2, mlp.{c_fc, c_proj}}, ln_f; lm_head is tied to wte
//   (the output projection uses wte.weight itself, so there is one tensor and it is stored once).
//
//   GPT model(GPTOptions().vocab_size(50).n_layer(4).n_head(4).n_embd(128));
//   at::Tensor logits = model->forward(idx);           // (B, T) int64 -> (B, T, V)
//   GPTImpl::KVCache cache;                            // generation: feed the prompt, then one token at a time
//   logits = model->forward(prompt, cache);            // (B, T_new, V); cache.length advances by T_new
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "vlm/models/attention.h"

namespace vlm {

/// nanoGPT's GPTConfig.
struct GPTOptions {
  TORCH_ARG(int64_t, vocab_size) = 50;
  TORCH_ARG(int64_t, block_size) = 32;  ///< longest context (position embeddings)
  TORCH_ARG(int64_t, n_layer) = 8;
  TORCH_ARG(int64_t, n_head) = 8;
  TORCH_ARG(int64_t, n_embd) = 384;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = false;  ///< biases in Linears and LayerNorms (nanoGPT: False is a bit better and faster)
  TORCH_ARG(std::string, attention) = "naive";  ///< see find_attention()

 public:
  void validate() const;  ///< throws vlm::Error naming the bad field
  nlohmann::json to_json() const;
  static GPTOptions from_json(const nlohmann::json& j);
};

/// LayerNorm with an optional bias (PyTorch's has none switchable), as in nanoGPT.
class GPTLayerNormImpl : public torch::nn::Cloneable<GPTLayerNormImpl> {
 public:
  GPTLayerNormImpl(int64_t n, bool bias);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  int64_t n;
  bool has_bias;
  at::Tensor weight, bias;
};
TORCH_MODULE(GPTLayerNorm);

class CausalSelfAttentionImpl : public torch::nn::Cloneable<CausalSelfAttentionImpl> {
 public:
  explicit CausalSelfAttentionImpl(const GPTOptions& options);
  void reset() override;
  /// x: (B, T, C). With cache tensors (k_cache, v_cache of (B, nh, T_cached, hs), possibly undefined) the new keys
  /// and values are appended to them in place. last_only: only the last position's output (B, 1, C) is computed
  /// (keys and values of every position still are, for the cache).
  at::Tensor forward(const at::Tensor& x, at::Tensor* k_cache = nullptr, at::Tensor* v_cache = nullptr,
                     bool last_only = false);
  GPTOptions options;
  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};
  torch::nn::Dropout resid_dropout{nullptr};
  AttentionFn attention = nullptr;
};
TORCH_MODULE(CausalSelfAttention);

class MLPImpl : public torch::nn::Cloneable<MLPImpl> {
 public:
  explicit MLPImpl(const GPTOptions& options);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  GPTOptions options;
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(MLP);

class BlockImpl : public torch::nn::Cloneable<BlockImpl> {
 public:
  explicit BlockImpl(const GPTOptions& options);
  void reset() override;
  /// last_only: returns only the last position (B, 1, C), skipping the projection and MLP of the others.
  at::Tensor forward(const at::Tensor& x, at::Tensor* k_cache = nullptr, at::Tensor* v_cache = nullptr,
                     bool last_only = false);
  GPTOptions options;
  GPTLayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);

class GPTImpl : public torch::nn::Cloneable<GPTImpl> {
 public:
  /// Per-layer keys and values of the tokens seen so far, each (B, nh, T_cached, hs).
  struct KVCache {
    std::vector<at::Tensor> k, v;
    int64_t length = 0;
  };

  explicit GPTImpl(GPTOptions options = {});
  void reset() override;

  /// (B, T) int64 token ids, T <= block_size -> logits (B, T, V).
  at::Tensor forward(const at::Tensor& idx);
  /// (B, T_new) continuing after cache.length tokens -> logits (B, T_new, V); appends to the cache.
  at::Tensor forward(const at::Tensor& idx, KVCache& cache);
  /// Logits of the last position only (B, V), what sampling and classification need: the last block computes its
  /// attention output and MLP for that position alone. With a cache, continues after cache.length tokens and
  /// appends to it, as forward(idx, cache) does.
  at::Tensor forward_last(const at::Tensor& idx, KVCache* cache = nullptr);
  /// forward_last for a batch whose rows start alike (the evaluator's prompts): the prefix all rows share runs once,
  /// for one row, and its keys and values are expanded (not copied) to the batch. `cache` must be empty; it ends
  /// holding the whole batch, ready for one-token steps.
  at::Tensor forward_last_shared_prefix(const at::Tensor& idx, KVCache& cache);
  /// The final hidden states ln_f(...) (B, T, C), before the tied output projection.
  at::Tensor hidden(const at::Tensor& idx);

  /// The output projection's weight: wte.weight itself (tied).
  const at::Tensor& lm_head_weight() const { return wte->weight; }
  /// Parameters, excluding position embeddings when `non_embedding` (nanoGPT's get_num_params).
  int64_t num_params(bool non_embedding = true) const;
  /// nanoGPT's estimate: 6N + 12 L H Q T flops per token for forward + backward at sequence length T.
  double flops_per_token(int64_t T) const;

  GPTOptions options;
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::Dropout drop{nullptr};  ///< kept for nanoGPT's module tree; forward applies fast_dropout (same p)
  torch::nn::ModuleList h{nullptr};
  std::vector<Block> blocks;  ///< the typed elements of h
  GPTLayerNorm ln_f{nullptr};

 private:
  at::Tensor run(const at::Tensor& idx, int64_t pos0, KVCache* cache, bool last_only = false);
};
TORCH_MODULE(GPT);

}  // namespace vlm
