#include "vlm/io/image_decode.h"

#include <climits>
#include <cstring>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

// The one translation unit that compiles stb_image's implementation (decoders limited to what vlm reads).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_MAX_DIMENSIONS 65536
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image.h>
#pragma GCC diagnostic pop

namespace vlm {
namespace {

// stb_image 2.27 parses PGM/PPM header numbers into an int without an overflow check (undefined behaviour, found by
// fuzz_image) and converts 16-bit PGM/PPM with its 8-bit routine, writing past its buffer (also found by
// fuzz_image; both fixed upstream in 2.28). So the header of a P5/P6 file is read here first, the way stb reads it,
// and refused unless every number is short and maxval <= 255.
void check_pnm_header(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 2 || data[0] != 'P' || (data[1] != '5' && data[1] != '6')) return;  // not what stb takes for PNM
  size_t pos = 2;
  auto at_eof = [&] { return pos >= size; };
  auto get8 = [&]() -> char { return pos < size ? static_cast<char>(data[pos++]) : 0; };
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  char c = get8();
  auto skip = [&] {
    for (;;) {
      while (!at_eof() && is_space(c)) c = get8();
      if (at_eof() || c != '#') break;
      while (!at_eof() && c != '\n' && c != '\r') c = get8();
    }
  };
  auto number = [&](const char* what) {
    int64_t value = 0;
    int digits = 0;
    while (!at_eof() && c >= '0' && c <= '9') {
      VLM_CHECK(++digits <= 6, "cannot read image '", name, "': its PGM/PPM header has an absurd ", what);
      value = value * 10 + (c - '0');
      c = get8();
    }
    return value;
  };
  skip();
  number("width");
  skip();
  number("height");
  skip();
  const int64_t maxval = number("maxval");
  VLM_CHECK(maxval <= 255, "cannot read image '", name,
            "': 16-bit PGM/PPM (maxval above 255) is not supported; convert it to 8 bits or PNG");
}

// stb_image grows its IDAT buffer to the length a chunk declares before reading it: a 74-byte PNG declaring a 1 GiB
// chunk made it allocate 2 GiB (found by fuzz_image). Every chunk up to IEND must fit in the bytes actually present.
void check_png_chunks(const uint8_t* data, size_t size, const std::string& name) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size < 8 || std::memcmp(data, kSignature, 8) != 0) return;
  size_t pos = 8;
  while (pos + 8 <= size) {
    const uint64_t len = (uint64_t(data[pos]) << 24) | (uint64_t(data[pos + 1]) << 16) |
                         (uint64_t(data[pos + 2]) << 8) | uint64_t(data[pos + 3]);
    VLM_CHECK(pos + 12 + len <= size, "cannot read image '", name, "': PNG chunk at byte ", pos, " declares ", len,
              " bytes, more than the file holds (truncated or damaged PNG)");
    if (std::memcmp(data + pos + 4, "IEND", 4) == 0) return;
    pos += 12 + static_cast<size_t>(len);
  }
}

}  // namespace

DecodedImage decode_image_gray(const uint8_t* data, size_t size, const std::string& name, const ImageLimits& limits) {
  return decode_image(data, size, name, 1, limits);
}

DecodedImage decode_image(const uint8_t* data, size_t size, const std::string& name, int want,
                       const ImageLimits& limits) {
  VLM_CHECK(want == 1 || want == 3, "decode_image: channels must be 1 or 3, got ", want);
  VLM_CHECK(size > 0, "cannot read image '", name, "': the file is empty (PNG, BMP or PGM expected)");
  VLM_CHECK(size <= static_cast<size_t>(INT_MAX) && static_cast<int64_t>(size) <= limits.max_file_bytes,
            "cannot read image '", name, "': ", size, " bytes is more than the limit of ", limits.max_file_bytes,
            " bytes");
  const int len = static_cast<int>(size);
  check_pnm_header(data, size, name);
  check_png_chunks(data, size, name);
  int w = 0, h = 0, channels = 0;
  VLM_CHECK(stbi_info_from_memory(data, len, &w, &h, &channels), "cannot read image '", name, "': ",
            stbi_failure_reason(), " (PNG, BMP or PGM expected)");
  VLM_CHECK(w > 0 && h > 0, "cannot read image '", name, "': its header declares ", w, "x", h, " pixels");
  VLM_CHECK(w <= limits.max_width && h <= limits.max_height && int64_t(w) * h <= limits.max_pixels,
            "cannot read image '", name, "': its header declares ", w, "x", h, " pixels, more than the limit of ",
            limits.max_width, "x", limits.max_height, " and ", limits.max_pixels, " pixels; refusing to decode");
  VLM_CHECK(!(data[0] == 'P' && stbi_is_16_bit_from_memory(data, len)), "cannot read image '", name,
            "': 16-bit PGM/PPM (maxval above 255) is not supported; convert it to 8 bits or PNG");
  int dw = 0, dh = 0;
  unsigned char* px = stbi_load_from_memory(data, len, &dw, &dh, &channels, want);  // converted to `want`
  VLM_CHECK(px, "cannot read image '", name, "': ", stbi_failure_reason(), " (a damaged ", w, "x", h, " image?)");
  DecodedImage out;
  if (dw != w || dh != h) {
    stbi_image_free(px);
    VLM_FAIL("cannot read image '", name, "': header says ", w, "x", h, " but ", dw, "x", dh, " pixels decoded");
  }
  out.width = dw;
  out.height = dh;
  out.channels = want;
  out.source_channels = channels;
  out.pixels.assign(px, px + static_cast<size_t>(dw) * static_cast<size_t>(dh) * static_cast<size_t>(want));
  stbi_image_free(px);
  return out;
}

DecodedImage read_image_gray_pixels(const std::string& path, const ImageLimits& limits) {
  return read_image_pixels(path, 1, limits);
}

DecodedImage read_image_pixels(const std::string& path, int channels, const ImageLimits& limits) {
  const std::string bytes = read_text_file(path, limits.max_file_bytes);
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path, channels, limits);
}

}  // namespace vlm
