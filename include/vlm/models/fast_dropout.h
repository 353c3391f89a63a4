#pragma once
// Dropout whose mask comes from a counter-based hash (splitmix64) instead of LibTorch's per-element mt19937
// bernoulli_, which on this CPU cost about a fifth of a training step of the small GPT with dropout 0.1.
// One 64-bit seed per call is drawn from LibTorch's default CPU generator, so runs stay reproducible and the
// generator state in a checkpoint still resumes them exactly; the mask does not depend on the thread count.
#include <ATen/core/Tensor.h>

namespace vlm {

/// x * mask / (1 - p) with mask ~ Bernoulli(1 - p) when training and p > 0; x itself otherwise.
/// Differentiable in x (the mask is a constant). Non-CPU or non-float tensors fall back to at::dropout.
at::Tensor fast_dropout(const at::Tensor& x, double p, bool training);

}  // namespace vlm
