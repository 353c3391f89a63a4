// The image reader (PNG, BMP, PGM through stb_image) from memory, with the header checked before decoding.
#include <cstddef>
#include <cstdint>

#include "vlm/core/check.h"
#include "vlm/io/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vlm::ImageLimits limits;
  limits.max_pixels = int64_t(1) << 20;  // stay far below the fuzzer's memory limit
  try {
    vlm::DecodedImage img = vlm::decode_image_gray(data, size, "fuzz.png", limits);
    if (static_cast<int64_t>(img.pixels.size()) != int64_t(img.width) * img.height) __builtin_trap();
    if (int64_t(img.width) * img.height > limits.max_pixels) __builtin_trap();
  } catch (const vlm::Error&) {
  }
  return 0;
}
