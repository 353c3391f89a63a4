#pragma once
// Reading images back: a PNG (or any format stb_image reads) as a grayscale float tensor.
#include <string>

#include <ATen/core/Tensor.h>

namespace vlm {

/// Reads an image file as grayscale (1, H, W) float in [0, 1]; colour images are converted by luminance.
/// Throws naming the file if it cannot be read.
at::Tensor read_image_gray(const std::string& path);

}  // namespace vlm
