#pragma once
// IDX files (the MNIST container) as tensors. Reading, parsing and writing the container: idx_format.h.
#include <string>

#include <ATen/core/Tensor.h>

#include "vlm/data/idx_format.h"

namespace vlm {

/// Images `[N, H, W]` (or `[N, C, H, W]`) -> float tensor `[N, C, H, W]` in [0, 1].
at::Tensor idx_to_image_tensor(const IdxArray& images, const std::string& source = "images");
/// Labels `[N]` -> int64 tensor `[N]`.
at::Tensor idx_to_label_tensor(const IdxArray& labels, const std::string& source = "labels");
/// Float images in [0,1] `[N, 1, H, W]` -> IDX `[N, H, W]` bytes (rounded, clamped).
IdxArray image_tensor_to_idx(const at::Tensor& images);

}  // namespace vlm
