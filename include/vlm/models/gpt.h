#pragma once
// nanoGPT's GPT (model.py) on LibTorch, with nanoGPT's parameter names so checkpoints read alike:
//   wte, wpe, drop, h.N.{ln_1, attn.{c_attn, c_proj}, ln_2, mlp.{c_fc, c_proj}}, ln_f; lm_head is tied to wte
//   (the output projection uses wte.weight itself, so there is one tensor and it is stored once).
//
//   GPT model(GPTOptions().vocab_size(50).n_layer(4).n_head(4).n_embd(128));
//   at::Tensor logits = model->forward(idx);                    // (B, T) int64 -> (B, T, V)
//   GPTImpl::KVCache cache;                                     // generation: the prompt, then a token at a time
//   logits = model->forward(prompt, &cache, /*last_only=*/true); // (B, 1, V); cache.length advances by T_new
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "vlm/core/options.h"
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
  template <class V>
  void fields(V& v) {
    v("vocab_size", vocab_size(), "characters in the vocabulary (set from the tokenizer)", FieldKind::kDerived);
    v("block_size", block_size(), "sequence length (characters, padded with #)");
    v("n_layer", n_layer(), "transformer blocks");
    v("n_head", n_head(), "attention heads");
    v("n_embd", n_embd(), "embedding width");
    v("dropout", dropout(), "dropout probability");
    v("bias", bias(), "biases in Linear and LayerNorm layers");
    v("attention", attention(), "attention implementation: naive or fast (the fused kernel)");
  }
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

/// One layer's keys and values of the tokens seen so far, each (B, nh, T_cached, hs); undefined while empty.
struct LayerCache {
  at::Tensor k, v;
};

class CausalSelfAttentionImpl : public torch::nn::Cloneable<CausalSelfAttentionImpl> {
 public:
  explicit CausalSelfAttentionImpl(const GPTOptions& options);
  void reset() override;
  /// x: (B, T, C) -> (B, T, C). With a cache (keys and values (B, nh, T_cached, hs), undefined when empty) the new
  /// keys and values are appended to it. last_only: only the last position's output (B, 1, C) is computed (keys and
  /// values of every position still are, for the cache).
  at::Tensor forward(const at::Tensor& x, LayerCache* cache = nullptr, bool last_only = false);
  GPTOptions options;
  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};
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
};
TORCH_MODULE(MLP);

class BlockImpl : public torch::nn::Cloneable<BlockImpl> {
 public:
  explicit BlockImpl(const GPTOptions& options);
  void reset() override;
  /// last_only: returns only the last position (B, 1, C), skipping the projection and MLP of the others.
  at::Tensor forward(const at::Tensor& x, LayerCache* cache = nullptr, bool last_only = false);
  GPTOptions options;
  GPTLayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);

class GPTImpl : public torch::nn::Cloneable<GPTImpl> {
 public:
  /// Every layer's keys and values of the tokens seen so far; `length` tokens, the next one sits at that position.
  struct KVCache {
    std::vector<LayerCache> layers;
    int64_t length = 0;
  };

  explicit GPTImpl(GPTOptions options = {});
  void reset() override;

  /// idx (B, T) int64 token ids -> logits (B, T, V). With a cache, idx continues after cache->length tokens (their
  /// keys and values come from the cache, the new ones are appended). last_only: logits of the last position only
  /// (B, 1, V), what sampling and classification need; the last block then computes that position alone.
  at::Tensor forward(const at::Tensor& idx, KVCache* cache = nullptr, bool last_only = false);

  /// Parameters, excluding position embeddings when `non_embedding` (nanoGPT's get_num_params).
  int64_t num_params(bool non_embedding = true) const;
  /// nanoGPT's estimate: 6N + 12 L H Q T flops per token for forward + backward at sequence length T.
  double flops_per_token(int64_t T) const;

  GPTOptions options;
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};  ///< the output projection is wte.weight itself (tied)
  torch::nn::ModuleList h{nullptr};
  std::vector<Block> blocks;  ///< the typed elements of h
  GPTLayerNorm ln_f{nullptr};
};
TORCH_MODULE(GPT);

}  // namespace vlm
