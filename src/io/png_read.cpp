#include "vlm/io/png_read.h"

#include <ATen/ATen.h>

#include "vlm/io/image_decode.h"

namespace vlm {

at::Tensor read_image_gray(const std::string& path, const ImageLimits& limits) { return read_image(path, 1, limits); }

at::Tensor read_image(const std::string& path, int channels, const ImageLimits& limits) {
  DecodedImage img = read_image_pixels(path, channels, limits);
  return at::from_blob(img.pixels.data(), {img.height, img.width, channels}, at::kByte)
      .permute({2, 0, 1})
      .to(at::kFloat)
      .div_(255.0f);  // copies into (C, H, W)
}

}  // namespace vlm
