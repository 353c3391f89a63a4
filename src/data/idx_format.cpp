#include "vlm/data/idx_format.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

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

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// A file through zlib's gzread (transparent for raw files).
class GzFileSource {
 public:
  GzFileSource(gzFile f, const std::string& path) : f_(f), path_(path) {}
  // Reads up to n bytes; returns how many came (fewer only at the end of the stream).
  int64_t read(uint8_t* dst, int64_t n) {
    int64_t got = 0;
    while (got < n) {
      unsigned chunk = static_cast<unsigned>(std::min<int64_t>(n - got, 1 << 30));
      int r = gzread(f_, dst + got, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        if (err == Z_ERRNO) VLM_FAIL("'", path_, "': read error: ", os_error_message(errno));
        VLM_FAIL("'", path_, "': corrupt gzip stream (", msg ? msg : "unknown zlib error", ")");
      }
      if (r == 0) break;
      got += r;
    }
    return got;
  }

 private:
  gzFile f_;
  const std::string& path_;
};

// Bytes in memory: copied as they are, or inflated when they are gzip (several members allowed, as gzread does).
class MemorySource {
 public:
  MemorySource(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name), gzip_(size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    if (gzip_) {
      std::memset(&z_, 0, sizeof z_);
      VLM_CHECK(inflateInit2(&z_, 15 + 16) == Z_OK, "'", name_, "': cannot initialise zlib");
      z_open_ = true;
    }
  }
  ~MemorySource() {
    if (z_open_) inflateEnd(&z_);
  }
  MemorySource(const MemorySource&) = delete;
  MemorySource& operator=(const MemorySource&) = delete;
  bool compressed() const { return gzip_; }

  int64_t read(uint8_t* dst, int64_t n) {
    if (!gzip_) {
      const int64_t take = std::min<int64_t>(n, static_cast<int64_t>(size_ - pos_));
      if (take > 0) std::memcpy(dst, data_ + pos_, static_cast<size_t>(take));
      pos_ += static_cast<size_t>(take);
      return take;
    }
    int64_t got = 0;
    while (got < n && !finished_) {
      if (z_.avail_in == 0) {
        const size_t chunk = std::min<size_t>(size_ - pos_, size_t(1) << 30);
        z_.next_in = const_cast<Bytef*>(data_ + pos_);
        z_.avail_in = static_cast<uInt>(chunk);
        pos_ += chunk;
      }
      const uInt want = static_cast<uInt>(std::min<int64_t>(n - got, int64_t(1) << 30));
      z_.next_out = dst + got;
      z_.avail_out = want;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      got += want - z_.avail_out;
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow; anything else after a member is ignored (as gzread does).
        if (z_.avail_in == 0 && pos_ < size_) {
          const size_t chunk = std::min<size_t>(size_ - pos_, size_t(1) << 30);
          z_.next_in = const_cast<Bytef*>(data_ + pos_);
          z_.avail_in = static_cast<uInt>(chunk);
          pos_ += chunk;
        }
        if (z_.avail_in >= 2 && z_.next_in[0] == 0x1f && z_.next_in[1] == 0x8b) {
          VLM_CHECK(inflateReset(&z_) == Z_OK, "'", name_, "': zlib reset failed");
        } else {
          finished_ = true;
        }
        continue;
      }
      if (rc == Z_BUF_ERROR && z_.avail_in == 0 && pos_ >= size_) break;  // truncated stream
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        VLM_FAIL("'", name_, "' (gzip): corrupt gzip stream (", z_.msg ? z_.msg : "unknown zlib error", ")");
      if (rc == Z_BUF_ERROR && z_.avail_out == want && z_.avail_in > 0)
        VLM_FAIL("'", name_, "' (gzip): corrupt gzip stream (no progress)");
    }
    return got;
  }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
  const std::string& name_;
  bool gzip_;
  bool z_open_ = false, finished_ = false;
  z_stream z_{};
};

// The checks shared by files and memory. `raw_size` is the total size when uncompressed (-1 if compressed).
template <class Source>
IdxArray parse(Source& src, const std::string& path, bool compressed, int64_t raw_size,
               const IdxReadOptions& options) {
  const char* kind = compressed ? " (gzip)" : "";
  uint8_t magic[4];
  int64_t got = src.read(magic, 4);
  VLM_CHECK(got == 4, "'", path, "'", kind, ": truncated: ", got, " bytes where a 4-byte IDX magic was expected");
  VLM_CHECK(magic[0] == 0 && magic[1] == 0, "'", path, "'", kind, ": wrong magic ", int(magic[0]), " ", int(magic[1]),
            " ", int(magic[2]), " ", int(magic[3]), ": expected 0 0 8 <rank> (an IDX file)");
  VLM_CHECK(magic[2] == 0x08, "'", path, "'", kind, ": IDX data type 0x", std::hex, int(magic[2]), std::dec,
            " is not supported: expected 0x08 (unsigned byte)");
  const int rank = magic[3];
  VLM_CHECK(rank >= options.min_rank && rank <= options.max_rank, "'", path, "'", kind, ": rank ", rank,
            " is outside the expected ", options.min_rank, "..", options.max_rank);

  std::vector<uint8_t> header(4 * static_cast<size_t>(rank));
  got = src.read(header.data(), 4 * rank);
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
    VLM_CHECK(raw_size == header_bytes + total, "'", path, "': file size ", raw_size,
              " bytes disagrees with its header: expected ", header_bytes, " + ", total, " = ", header_bytes + total,
              raw_size < header_bytes + total ? " (truncated file?)" : " (trailing bytes?)");
  }
  out.data.resize(static_cast<size_t>(total));
  got = src.read(out.data.data(), total);
  VLM_CHECK(got == total, "'", path, "'", kind, ": truncated: ", got, " of ", total, " data bytes");
  uint8_t extra;
  VLM_CHECK(src.read(&extra, 1) == 0, "'", path, "'", kind, ": trailing bytes after the ", total,
            " data bytes the header declares");
  return out;
}

}  // namespace

IdxArray read_idx(const std::string& path, const IdxReadOptions& options) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    VLM_FAIL("'", path, "': ", err == ENOENT ? "no such file" : "cannot read: " + os_error_message(err));
  }
  VLM_CHECK(S_ISREG(st.st_mode), "'", path, "': not a regular file");
  VLM_CHECK(st.st_size > 0, "'", path, "': the file is empty (expected an IDX file: 00 00 08 <rank> ...)");

  errno = 0;
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) VLM_FAIL("'", path, "': cannot open for reading: ", errno ? os_error_message(errno) : "out of memory");
  gzbuffer(f.get(), 1 << 17);
  GzFileSource src(f.get(), path);
  // gzdirect is only meaningful after the first read: read the magic, then hand it to parse() as a prefix.
  uint8_t first[4];
  const int64_t first_got = src.read(first, 4);
  const bool compressed = gzdirect(f.get()) == 0;
  struct Prefixed {
    GzFileSource& s;
    const uint8_t* prefix;
    int64_t prefix_left;
    int64_t read(uint8_t* dst, int64_t n) {
      int64_t take = std::min(n, prefix_left);
      if (take > 0) std::memcpy(dst, prefix, static_cast<size_t>(take));
      prefix += take;
      prefix_left -= take;
      return take + (n > take ? s.read(dst + take, n - take) : 0);
    }
  } prefixed{src, first, first_got};
  return parse(prefixed, path, compressed, static_cast<int64_t>(st.st_size), options);
}

IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& name, const IdxReadOptions& options) {
  VLM_CHECK(size > 0, "'", name, "': empty (expected an IDX file: 00 00 08 <rank> ...)");
  MemorySource src(data, size, name);
  return parse(src, name, src.compressed(), static_cast<int64_t>(size), options);
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
  if (!gzip) {
    write_bytes_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    return;
  }
  VLM_CHECK(bytes.size() < (size_t(1) << 32) - 1024, "write_idx('", path, "'): too large to gzip in one piece");
  // Compress in memory, then write the bytes with the checked writer (OS errors named, temporary removed).
  uLongf bound = compressBound(static_cast<uLong>(bytes.size())) + 64;
  std::string gz(bound, '\0');
  z_stream z{};
  VLM_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "write_idx('", path,
            "'): cannot initialise zlib");
  z.next_in = bytes.data();
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(gz.data());
  z.avail_out = static_cast<uInt>(gz.size());
  const int rc = deflate(&z, Z_FINISH);
  gz.resize(z.total_out);
  deflateEnd(&z);
  VLM_CHECK(rc == Z_STREAM_END, "write_idx('", path, "'): gzip compression failed (", rc, ")");
  write_bytes_atomically(path, gz);
}

void check_idx_labels(const IdxArray& labels, int64_t num_classes, const std::string& source) {
  VLM_CHECK(num_classes >= 1 && num_classes <= 256, "num_classes must be in 1..256 for byte labels, got ",
            num_classes);
  for (size_t i = 0; i < labels.data.size(); ++i)
    VLM_CHECK(labels.data[i] < num_classes, "'", source, "': label ", int(labels.data[i]), " at index ", i,
              " is outside 0..", num_classes - 1, " (num_classes = ", num_classes, ")");
}

}  // namespace vlm
