#include "vlm/data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <memory>

#include <ATen/ATen.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

namespace vlm {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const {
    if (f) gzclose(f);
  }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads exactly n bytes or reports how many came.
int64_t read_some(gzFile f, uint8_t* dst, int64_t n, const std::string& path) {
  int64_t got = 0;
  while (got < n) {
    unsigned chunk = static_cast<unsigned>(std::min<int64_t>(n - got, 1 << 30));
    int r = gzread(f, dst + got, chunk);
    if (r < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      VLM_FAIL("'", path, "': corrupt gzip stream (", msg ? msg : "unknown zlib error", ")");
    }
    if (r == 0) break;
    got += r;
  }
  return got;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

IdxArray read_idx(const std::string& path, const IdxReadOptions& options) {
  struct stat st{};
  VLM_CHECK(::stat(path.c_str(), &st) == 0, "'", path, "': no such file");
  VLM_CHECK(S_ISREG(st.st_mode), "'", path, "': not a regular file");
  VLM_CHECK(st.st_size > 0, "'", path, "': the file is empty (expected an IDX file: 00 00 08 <rank> ...)");

  GzFile f(gzopen(path.c_str(), "rb"));
  VLM_CHECK(f, "'", path, "': cannot open for reading");
  gzbuffer(f.get(), 1 << 17);

  uint8_t magic[4];
  int64_t got = read_some(f.get(), magic, 4, path);
  const bool compressed = gzdirect(f.get()) == 0;
  const char* kind = compressed ? " (gzip)" : "";
  VLM_CHECK(got == 4, "'", path, "'", kind, ": truncated: ", got, " bytes where a 4-byte IDX magic was expected");
  VLM_CHECK(magic[0] == 0 && magic[1] == 0, "'", path, "'", kind, ": wrong magic ", int(magic[0]), " ", int(magic[1]),
            " ", int(magic[2]), " ", int(magic[3]), ": expected 0 0 8 <rank> (an IDX file)");
  VLM_CHECK(magic[2] == 0x08, "'", path, "'", kind, ": IDX data type 0x", std::hex, int(magic[2]), std::dec,
            " is not supported: expected 0x08 (unsigned byte)");
  const int rank = magic[3];
  VLM_CHECK(rank >= options.min_rank && rank <= options.max_rank, "'", path, "'", kind, ": rank ", rank,
            " is outside the expected ", options.min_rank, "..", options.max_rank);

  std::vector<uint8_t> header(4 * rank);
  got = read_some(f.get(), header.data(), 4 * rank, path);
  VLM_CHECK(got == 4 * rank, "'", path, "'", kind, ": truncated header: ", got, " of ", 4 * rank,
            " dimension bytes");
  IdxArray out;
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) {
    int64_t d = be32(&header[4 * i]);
    VLM_CHECK(d > 0, "'", path, "'", kind, ": dimension ", i, " is 0");
    VLM_CHECK(d <= options.max_bytes && total <= options.max_bytes / d, "'", path, "'", kind,
              ": dimensions imply more than the limit of ", options.max_bytes, " bytes; refusing to allocate");
    total *= d;
    out.dims.push_back(d);
  }
  const int64_t header_bytes = 4 + 4 * int64_t(rank);
  if (!compressed) {
    VLM_CHECK(st.st_size == header_bytes + total, "'", path, "': file size ", st.st_size,
              " bytes disagrees with its header: expected ", header_bytes, " + ", total, " = ", header_bytes + total,
              st.st_size < header_bytes + total ? " (truncated file?)" : " (trailing bytes?)");
  }
  out.data.resize(static_cast<size_t>(total));
  got = read_some(f.get(), out.data.data(), total, path);
  VLM_CHECK(got == total, "'", path, "'", kind, ": truncated: ", got, " of ", total, " data bytes");
  uint8_t extra;
  VLM_CHECK(read_some(f.get(), &extra, 1, path) == 0, "'", path, "'", kind,
            ": trailing bytes after the ", total, " data bytes the header declares");
  return out;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  VLM_CHECK(!array.dims.empty() && array.dims.size() <= 255, "write_idx('", path, "'): rank must be 1..255");
  int64_t total = 1;
  for (auto d : array.dims) {
    VLM_CHECK(d > 0 && d <= 0xffffffffLL, "write_idx('", path, "'): dimension ", d, " out of range");
    total *= d;
  }
  VLM_CHECK(total == static_cast<int64_t>(array.data.size()), "write_idx('", path, "'): ", array.data.size(),
            " bytes given, dims say ", total);
  std::vector<uint8_t> bytes = {0, 0, 0x08, static_cast<uint8_t>(array.dims.size())};
  for (auto d : array.dims)
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<uint8_t>((uint64_t(d) >> s) & 0xff));
  bytes.insert(bytes.end(), array.data.begin(), array.data.end());
  write_atomically(path, [&](const std::string& tmp) {
    GzFile f(gzopen(tmp.c_str(), gzip ? "wb6" : "wbT"));  // T: transparent (uncompressed) writes
    VLM_CHECK(f, "cannot open '", tmp, "' for writing");
    VLM_CHECK(gzwrite(f.get(), bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()),
              "error writing '", tmp, "'");
    VLM_CHECK(gzclose(f.release()) == Z_OK, "error closing '", tmp, "'");
  });
}

at::Tensor idx_to_image_tensor(const IdxArray& images, const std::string& source) {
  VLM_CHECK(images.dims.size() == 3 || images.dims.size() == 4, source, ": expected images of rank 3 [N,H,W] or 4",
            " [N,C,H,W], got rank ", images.dims.size());
  std::vector<int64_t> shape = images.dims;
  if (shape.size() == 3) shape.insert(shape.begin() + 1, 1);
  auto bytes = at::from_blob(const_cast<uint8_t*>(images.data.data()), shape, at::kByte);
  return bytes.to(at::kFloat).div_(255.0f);  // copies out of the vector
}

at::Tensor idx_to_label_tensor(const IdxArray& labels, const std::string& source) {
  VLM_CHECK(labels.dims.size() == 1, source, ": expected labels of rank 1 [N], got rank ", labels.dims.size());
  auto bytes = at::from_blob(const_cast<uint8_t*>(labels.data.data()), {labels.dims[0]}, at::kByte);
  return bytes.to(at::kLong);
}

IdxArray image_tensor_to_idx(const at::Tensor& images) {
  VLM_CHECK(images.dim() == 4 && images.size(1) == 1, "image_tensor_to_idx: expected [N,1,H,W], got ",
            images.sizes());
  auto b = images.detach().to(at::kCPU).mul(255.0f).round_().clamp_(0, 255).to(at::kByte).contiguous();
  IdxArray out;
  out.dims = {images.size(0), images.size(2), images.size(3)};
  out.data.assign(b.data_ptr<uint8_t>(), b.data_ptr<uint8_t>() + b.numel());
  return out;
}

}  // namespace vlm
