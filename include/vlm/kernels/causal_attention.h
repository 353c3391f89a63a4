#pragma once
// Causal self-attention for short sequences (T <= 64), forward and backward, as one custom autograd function.
//
//   at::Tensor y = vlm::kernels::causal_attention(q, k, v);        // (B, nh, T, hs) x 3 -> (B, nh, T, hs)
//   at::Tensor r = vlm::kernels::causal_attention_naive(q, k, v);  // matmul + mask + softmax + matmul
//
// softmax(q k^T / sqrt(hs), causal) v, with no separate mask, softmax or transpose passes: each (b, h) tile is worked
// in cache (at::parallel_for over B * nh) and the backward recomputes nothing but reads the saved probabilities.
// Inputs may be strided views (q = qkv.split(...)[0].view(B, T, nh, hs).transpose(1, 2) as in nanoGPT) as long as
// hs is the unit-stride dimension; the output is laid out as (B, T, nh, hs) underneath, so y.transpose(1, 2) is
// already contiguous for the caller's view(B, T, C).
//
// No attention-weight dropout: callers that train with dropout > 0 use causal_attention_naive (or their own
// composition) instead; causal_attention_supported tells them whether this kernel applies.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace vlm::kernels {

constexpr int64_t kCausalAttentionMaxT = 64;
constexpr int64_t kCausalAttentionMaxHeadSize = 128;

/// The reference: att = q k^T / sqrt(hs) (B, nh, T, T), masked_fill above the diagonal with -inf, softmax, att v.
at::Tensor causal_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

/// Whether causal_attention applies: float32 CPU, 4-D, equal shapes, 1 <= T <= 64, 1 <= hs <= 128.
bool causal_attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

/// The fused kernel with its backward (gradients for q, k and v; no double backward). isa "" = the active build.
/// Throws vlm::Error when causal_attention_supported is false.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const std::string& isa = "");

}  // namespace vlm::kernels
