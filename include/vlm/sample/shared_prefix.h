#pragma once
// Batched prompts that start alike (every classification prompt starts "image:", every generation prompt for one
// label is identical): the prefix all rows share runs through the model once, for one row, and its keys and values
// are expanded (not copied) to the batch before the rest runs.
#include <ATen/core/Tensor.h>

#include "vlm/models/gpt.h"

namespace vlm {

/// The last position's logits (B, V) of idx (B, T), as model->forward(idx, &cache, true) gives them. `cache` must be
/// empty; it ends holding the whole batch, ready for one-token steps.
at::Tensor forward_last_shared_prefix(GPT& model, const at::Tensor& idx, GPTImpl::KVCache& cache);

}  // namespace vlm
