#pragma once
// Reading images back: a PNG (or BMP / PGM) as a grayscale float tensor. The file is untrusted: its size and the
// dimensions its header declares are checked against `limits` before anything is decoded (image_decode.h).
#include <string>

#include <ATen/core/Tensor.h>

#include "vlm/io/image_decode.h"

namespace vlm {

/// Reads an image file as grayscale (1, H, W) float in [0, 1]; colour images are converted by luminance.
/// Throws vlm::Error naming the file if it cannot be read, is not an image, or exceeds `limits`.
at::Tensor read_image_gray(const std::string& path, const ImageLimits& limits = {});
/// Reads an image file as (channels, H, W) float in [0, 1]: channels 1 is read_image_gray, 3 is RGB (a grey file's
/// value in every channel).
at::Tensor read_image(const std::string& path, int channels, const ImageLimits& limits = {});

}  // namespace vlm
