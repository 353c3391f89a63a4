#include "vlm/io/png_read.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_PGM
#include <stb_image.h>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

at::Tensor read_image_gray(const std::string& path) {
  int w = 0, h = 0, channels = 0;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &channels, 1);  // 1 = convert to grayscale
  VLM_CHECK(px, "cannot read image '", path, "': ", stbi_failure_reason(), " (PNG, BMP or PGM expected)");
  auto t = at::from_blob(px, {1, h, w}, at::kByte).to(at::kFloat).div_(255.0f);  // copies
  stbi_image_free(px);
  return t;
}

}  // namespace vlm
