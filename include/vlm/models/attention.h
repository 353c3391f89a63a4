#pragma once
// The attention math of the GPT, in one place, so that a fused kernel can be switched in by name
// (GPTOptions::attention) without touching the model.
#include <string>

#include <ATen/core/Tensor.h>

namespace vlm {

/// softmax(q k^T / sqrt(hs) + causal mask) v, with dropout on the attention weights when training.
/// q: (B, nh, Tq, hs), k and v: (B, nh, Tk, hs) with Tk >= Tq; query i sits at absolute position Tk - Tq + i, so a
/// query continuing after a key/value cache sees every cached key and the new keys up to itself.
/// Returns (B, nh, Tq, hs).
at::Tensor causal_self_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p,
                                 bool training);

using AttentionFn = at::Tensor (*)(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p,
                                   bool training);

/// The attention implementation registered under `name` ("naive" = causal_self_attention); unknown names are an
/// error listing the known ones.
AttentionFn find_attention(const std::string& name);

}  // namespace vlm
