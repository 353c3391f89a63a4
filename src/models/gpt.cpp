#include "vlm/models/gpt.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include "vlm/core/check.h"
#include "vlm/models/fast_dropout.h"

namespace vlm {

void GPTOptions::validate() const {
  VLM_CHECK(vocab_size() > 0, "GPT: vocab_size must be positive, got ", vocab_size());
  VLM_CHECK(block_size() > 0, "GPT: block_size must be positive, got ", block_size());
  VLM_CHECK(n_layer() > 0, "GPT: n_layer must be positive, got ", n_layer());
  VLM_CHECK(n_head() > 0 && n_embd() > 0 && n_embd() % n_head() == 0, "GPT: n_embd (", n_embd(),
            ") must be a positive multiple of n_head (", n_head(), ")");
  VLM_CHECK(dropout() >= 0 && dropout() < 1, "GPT: dropout must be in [0, 1), got ", dropout());
  find_attention(attention());
}

// ---------------------------------------------------------------------------------------------------------------

GPTLayerNormImpl::GPTLayerNormImpl(int64_t n_, bool bias_) : n(n_), has_bias(bias_) { reset(); }

void GPTLayerNormImpl::reset() {
  weight = register_parameter("weight", at::ones({n}));
  if (has_bias) bias = register_parameter("bias", at::zeros({n}));
}

at::Tensor GPTLayerNormImpl::forward(const at::Tensor& x) { return at::layer_norm(x, {n}, weight, bias, 1e-5); }

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

torch::nn::Linear make_linear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}
}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GPTOptions& o) : options(o) { reset(); }

void CausalSelfAttentionImpl::reset() {
  const int64_t C = options.n_embd();
  c_attn = register_module("c_attn", make_linear(C, 3 * C, options.bias()));
  c_proj = register_module("c_proj", make_linear(C, C, options.bias()));
  attention = find_attention(options.attention());
}

at::Tensor CausalSelfAttentionImpl::forward(const at::Tensor& x, LayerCache* cache, bool last_only) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), nh = options.n_head(), hs = C / nh;
  auto qkv = c_attn(x).view({B, T, 3, nh, hs}).permute({2, 0, 3, 1, 4});  // (3, B, nh, T, hs)
  auto q = qkv[0], k = qkv[1], v = qkv[2];                                // (B, nh, T, hs)
  if (cache) {
    k = cache->k.defined() ? at::cat({cache->k, k}, 2) : k.contiguous();  // (B, nh, T_cached + T, hs)
    v = cache->v.defined() ? at::cat({cache->v, v}, 2) : v.contiguous();
    cache->k = k;
    cache->v = v;
  }
  const int64_t Tq = last_only ? 1 : T;
  if (last_only) q = q.narrow(2, T - 1, 1);                        // (B, nh, 1, hs): sits at the last key
  auto y = attention(q, k, v, options.dropout(), is_training());  // (B, nh, Tq, hs)
  y = y.transpose(1, 2).reshape({B, Tq, C});                      // (B, Tq, C)
  return fast_dropout(c_proj(y), options.dropout(), is_training());
}

MLPImpl::MLPImpl(const GPTOptions& o) : options(o) { reset(); }

void MLPImpl::reset() {
  const int64_t C = options.n_embd();
  c_fc = register_module("c_fc", make_linear(C, 4 * C, options.bias()));
  c_proj = register_module("c_proj", make_linear(4 * C, C, options.bias()));
}

at::Tensor MLPImpl::forward(const at::Tensor& x) {
  return fast_dropout(c_proj(at::gelu(c_fc(x))), options.dropout(), is_training());  // (B, T, 4C) -> (B, T, C)
}

BlockImpl::BlockImpl(const GPTOptions& o) : options(o) { reset(); }

void BlockImpl::reset() {
  ln_1 = register_module("ln_1", GPTLayerNorm(options.n_embd(), options.bias()));
  attn = register_module("attn", CausalSelfAttention(options));
  ln_2 = register_module("ln_2", GPTLayerNorm(options.n_embd(), options.bias()));
  mlp = register_module("mlp", MLP(options));
}

at::Tensor BlockImpl::forward(const at::Tensor& x, LayerCache* cache, bool last_only) {
  auto a = attn(ln_1(x), cache, last_only);                       // (B, T, C), or (B, 1, C) if last_only
  auto y = (last_only ? x.narrow(1, x.size(1) - 1, 1) : x) + a;
  return y + mlp(ln_2(y));
}

// ---------------------------------------------------------------------------------------------------------------

GPTImpl::GPTImpl(GPTOptions o) : options(std::move(o)) { reset(); }

void GPTImpl::reset() {
  options.validate();
  const int64_t C = options.n_embd();
  wte = register_module("wte", torch::nn::Embedding(options.vocab_size(), C));
  wpe = register_module("wpe", torch::nn::Embedding(options.block_size(), C));
  h = register_module("h", torch::nn::ModuleList());
  blocks.clear();
  for (int64_t i = 0; i < options.n_layer(); ++i) {
    blocks.push_back(Block(options));
    h->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", GPTLayerNorm(C, options.bias()));

  // nanoGPT's _init_weights, then the scaled init of the residual projections (GPT-2 paper).
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    at::Tensor& t = p.value();
    const bool is_ln = name.find("ln_") != std::string::npos;
    if (is_ln) continue;  // LayerNorms keep weight 1, bias 0
    if (t.dim() == 1) {
      t.zero_();  // Linear biases
    } else if (ends_with(name, "c_proj.weight")) {
      t.normal_(0.0, 0.02 / std::sqrt(2.0 * static_cast<double>(options.n_layer())));
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

int64_t GPTImpl::num_params(bool non_embedding) const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  if (non_embedding) n -= wpe->weight.numel();
  return n;
}

double GPTImpl::flops_per_token(int64_t T) const {
  const double N = static_cast<double>(num_params(true)), L = options.n_layer(), H = options.n_head(),
               Q = static_cast<double>(options.n_embd()) / options.n_head();
  return 6.0 * N + 12.0 * L * H * Q * static_cast<double>(T);
}

at::Tensor GPTImpl::forward(const at::Tensor& idx, KVCache* cache, bool last_only) {
  VLM_CHECK(idx.dim() == 2 && idx.scalar_type() == at::kLong, "GPT: idx must be (B, T) int64, got ", idx.sizes(), " ",
            idx.scalar_type());
  const int64_t T = idx.size(1), pos0 = cache ? cache->length : 0;
  VLM_CHECK(T > 0 && pos0 + T <= options.block_size(), "GPT: cannot forward positions ", pos0, "..", pos0 + T - 1,
            ", the block size is only ", options.block_size());
  if (cache) {
    if (cache->layers.empty()) cache->layers.resize(blocks.size());
    VLM_CHECK(cache->layers.size() == blocks.size(), "GPT: KV cache has ", cache->layers.size(), " layers, the model ",
              blocks.size());
  }
  auto pos = at::arange(pos0, pos0 + T, idx.options());                          // (T)
  auto x = fast_dropout(wte(idx) + wpe(pos), options.dropout(), is_training());  // (B, T, C)
  for (size_t i = 0; i < blocks.size(); ++i) {
    const bool last = last_only && i + 1 == blocks.size();
    x = blocks[i]->forward(x, cache ? &cache->layers[i] : nullptr, last);  // (B, T, C); (B, 1, C) after the last
  }
  if (cache) cache->length += T;
  return at::linear(ln_f(x), wte->weight);  // (B, T, V) or (B, 1, V): the output projection is tied to wte
}

}  // namespace vlm
