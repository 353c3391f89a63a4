#include "vlm/io/png_read.h"

#include <ATen/ATen.h>

#include "vlm/io/image_decode.h"

namespace vlm {

at::Tensor read_image_gray(const std::string& path, const ImageLimits& limits) {
  GrayImage img = read_image_gray_pixels(path, limits);
  return at::from_blob(img.pixels.data(), {1, img.height, img.width}, at::kByte).to(at::kFloat).div_(255.0f);  // copies
}

}  // namespace vlm
