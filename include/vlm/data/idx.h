#pragma once
// IDX files (the MNIST container): big-endian header `00 00 <type> <rank>`, `rank` uint32 dimensions, then the
// data. Only unsigned bytes (type 0x08) are read, raw or gzip-compressed (detected from the content, not the name).
//
// Every check happens before the data is allocated: magic, type, rank, each dimension, the product against the
// file size (raw) or against the decompressed stream (gzip), and a ceiling on the total size.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vlm {

struct IdxArray {
  std::vector<int64_t> dims;  ///< e.g. {60000, 28, 28} for images, {60000} for labels
  std::vector<uint8_t> data;  ///< row-major, dims product bytes
  int64_t count() const { return dims.empty() ? 0 : dims[0]; }
};

struct IdxReadOptions {
  int64_t max_bytes = int64_t(1) << 32;  ///< refuse larger payloads before allocating
  int min_rank = 1;
  int max_rank = 4;
};

/// Reads an unsigned-byte IDX file, raw or gzip. Throws vlm::Error naming the file and what was expected.
IdxArray read_idx(const std::string& path, const IdxReadOptions& options = {});

/// Writes an unsigned-byte IDX file (gzip-compressed when `gzip`), atomically. Used for exports and tests.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

/// Images `[N, H, W]` (or `[N, C, H, W]`) -> float tensor `[N, C, H, W]` in [0, 1].
at::Tensor idx_to_image_tensor(const IdxArray& images, const std::string& source = "images");
/// Labels `[N]` -> int64 tensor `[N]`.
at::Tensor idx_to_label_tensor(const IdxArray& labels, const std::string& source = "labels");
/// Float images in [0,1] `[N, 1, H, W]` -> IDX `[N, H, W]` bytes (rounded, clamped).
IdxArray image_tensor_to_idx(const at::Tensor& images);

}  // namespace vlm
