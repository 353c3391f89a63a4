#pragma once
// Decoding untrusted images without LibTorch (png_read.h wraps it as a tensor; the fuzz target calls it directly).
// The header is read first (stbi_info_from_memory) and the dimensions checked against ImageLimits BEFORE any pixel
// buffer is allocated, so a 60000x60000 PNG header costs nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

struct ImageLimits {
  int64_t max_width = 16384;
  int64_t max_height = 16384;
  int64_t max_pixels = int64_t(1) << 24;           ///< width * height (16 Mpixel; MNIST images have 784)
  int64_t max_file_bytes = int64_t(256) << 20;     ///< larger files are refused before being read
};

struct DecodedImage {
  int width = 0, height = 0;
  int channels = 1;             ///< 1 (grey) or 3 (RGB), as asked of decode_image
  int source_channels = 0;      ///< what the file holds: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;  ///< height * width * channels bytes, row-major, channels interleaved
};

/// Decodes a PNG, BMP or PGM/PPM from memory to 8-bit grayscale. Throws vlm::Error naming `name` when the data is not
/// such an image, is damaged, or exceeds `limits`.
DecodedImage decode_image_gray(const uint8_t* data, size_t size, const std::string& name,
                              const ImageLimits& limits = {});

/// The same, converted to `channels` (1: grey by luminance, 3: RGB).
DecodedImage decode_image(const uint8_t* data, size_t size, const std::string& name, int channels,
                       const ImageLimits& limits = {});

/// Reads and decodes a file (its size is checked against limits.max_file_bytes before reading).
DecodedImage read_image_gray_pixels(const std::string& path, const ImageLimits& limits = {});
DecodedImage read_image_pixels(const std::string& path, int channels, const ImageLimits& limits = {});

}  // namespace vlm
