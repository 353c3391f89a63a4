#pragma once
// The IDX container without LibTorch (so that its fuzz target is small): parsing from a file or from memory, and
// writing. idx.h adds the tensor conversions.
//
// IDX: big-endian header `00 00 <type> <rank>`, `rank` uint32 dimensions, then the data. Only unsigned bytes
// (type 0x08) are read, raw or gzip-compressed (detected from the content, not the name). Every check happens
// before the data is allocated: magic, type, rank, each dimension, the product against the file size (raw) or
// against the decompressed stream (gzip), and a ceiling on the total size.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

/// The same checks on bytes in memory (raw, or gzip when they start with 1f 8b); `name` is used in messages.
IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& name, const IdxReadOptions& options = {});

/// Writes an unsigned-byte IDX file (gzip-compressed when `gzip`), atomically. Used for exports and tests.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

/// Throws unless every byte of `labels` (rank 1) is < num_classes, naming `source`, the first bad index and value.
void check_idx_labels(const IdxArray& labels, int64_t num_classes, const std::string& source);

}  // namespace vlm
