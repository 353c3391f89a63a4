#include "io/archive_check.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string_view>

#include <zlib.h>

#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {

namespace {

uint64_t le(const std::string& b, uint64_t at, int n) {
  uint64_t x = 0;
  for (int k = n - 1; k >= 0; --k) x = (x << 8) | static_cast<uint8_t>(b[at + k]);
  return x;
}
bool has(const std::string& b, uint64_t at, uint64_t n) { return at <= b.size() && n <= b.size() - at; }
bool sig(const std::string& b, uint64_t at, uint32_t s) { return has(b, at, 4) && le(b, at, 4) == s; }

// Walks the opcodes of a pickle (protocols 0-5) and checks every length-prefixed argument against what is left.
void check_pickle(const std::string& b, uint64_t begin, uint64_t size, const std::string& where) {
  const uint64_t end = begin + size;
  uint64_t at = begin;
  auto skip = [&](uint64_t n, uint64_t opcode_at, const char* what) {
    VLM_CHECK(n <= end - at, where, ": the ", what, " at byte ", opcode_at - begin, " claims ", n,
              " bytes, but the record has ", end - at, " left (a damaged file)");
    at += n;
  };
  auto length = [&](int n, uint64_t opcode_at) {
    skip(n, opcode_at, "length");
    return le(b, at - n, n);
  };
  auto line = [&](uint64_t opcode_at) {
    while (at < end && b[at] != '\n') ++at;
    VLM_CHECK(at < end, where, ": the text argument at byte ", opcode_at - begin, " is not terminated");
    ++at;
  };
  while (at < end) {
    const uint64_t op_at = at;
    const auto op = static_cast<uint8_t>(b[at++]);
    switch (op) {
      case '.': return;  // STOP
      case 0x80: case 'K': case 'q': case 'h': case 0x82: skip(1, op_at, "argument"); break;
      case 'M': case 0x83: skip(2, op_at, "argument"); break;
      case 'J': case 'r': case 'j': case 0x84: skip(4, op_at, "argument"); break;
      case 'G': case 0x95: skip(8, op_at, "argument"); break;
      case 'U': case 'C': case 0x8c: case 0x8a: skip(length(1, op_at), op_at, "string"); break;
      case 'X': case 'T': case 'B': case 0x8b: skip(length(4, op_at), op_at, "string"); break;
      case 0x8d: case 0x8e: case 0x96: skip(length(8, op_at), op_at, "string"); break;
      case 'I': case 'L': case 'S': case 'V': case 'F': case 'p': case 'g': case 'P': line(op_at); break;
      case 'c': case 'i': line(op_at); line(op_at); break;
      case '(': case ')': case ']': case '}': case '0': case '1': case '2': case 'N': case 'R': case 'a':
      case 'b': case 'd': case 'e': case 'l': case 'o': case 's': case 't': case 'u': case 'Q': case 0x81:
      case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91: case 0x92:
      case 0x93: case 0x94: case 0x97: case 0x98: break;
      default: return;  // not an opcode this walk knows: LibTorch's unpickler decides
    }
  }
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool is_pickle(const std::string& record) { return ends_with(record, ".pkl") || ends_with(record, ".debug_pkl"); }

// The attribute declarations LibTorch's OutputArchive writes as a module's TorchScript class (code/**.py):
//   class Module(Module):            __parameters__ = ["weight", "bias", ]      __annotations__ = []
//   __annotations__["0"] = Tensor    weight : Tensor    betas : Tuple[float, float]    h : __torch__.M.Module
// LibTorch 1.13 compiles this source when it loads the archive, and its type parser crashes (SEGV) on some damaged
// lines (`__parameters_W = []`, found by fuzz_checkpoint), so nothing else gets to it.
class DeclarationLine {
 public:
  explicit DeclarationLine(std::string_view line) : l_(line) {}
  bool valid() {
    if (l_.empty()) return true;
    if (eat("class ")) return ident() && eat("(Module):") && done();
    if (!eat("  ")) return false;
    if (eat("__parameters__ = [") || eat("__buffers__ = [")) {
      while (!eat("]"))
        if (!(string() && eat(", "))) return false;
      return done();
    }
    if (eat("__annotations__ = []")) return done();
    if (eat("__annotations__[")) return string() && eat("] = ") && type(0) && done();
    return ident() && eat(" : ") && type(0) && done();
  }

 private:
  bool eat(std::string_view w) {
    if (l_.substr(at_, w.size()) != w) return false;
    at_ += w.size();
    return true;
  }
  bool done() const { return at_ == l_.size(); }
  bool ident() {
    const size_t start = at_;
    while (at_ < l_.size() && (std::isalnum(static_cast<unsigned char>(l_[at_])) || l_[at_] == '_')) ++at_;
    return at_ > start && !std::isdigit(static_cast<unsigned char>(l_[start]));
  }
  bool string() {
    if (!eat("\"")) return false;
    while (at_ < l_.size() && l_[at_] != '"' && l_[at_] != '\\') ++at_;
    return eat("\"");
  }
  bool type(int depth) {  // Name(.Name)* [ "[" type (", " type)* "]" ]
    if (depth > 8 || !ident()) return false;
    while (eat("."))
      if (!ident()) return false;
    if (!eat("[")) return true;
    do {
      if (!type(depth + 1)) return false;
    } while (eat(", "));
    return eat("]");
  }
  std::string_view l_;
  size_t at_ = 0;
};

void check_declarations(const std::string& b, uint64_t begin, uint64_t size, const std::string& where) {
  uint64_t line_no = 1;
  for (uint64_t at = begin, end = begin + size; at < end; ++line_no) {
    uint64_t eol = at;
    while (eol < end && b[eol] != '\n') ++eol;
    const std::string_view line(b.data() + at, eol - at);
    VLM_CHECK(DeclarationLine(line).valid(), where, " line ", line_no, " is not a module declaration LibTorch writes: ",
              quote_excerpt(line), " (a damaged file)");
    at = eol + 1;
  }
}

// Checks the records of the central directory at `cd` (`entries` of them); stops where it stops making sense.
void check_directory(const std::string& b, uint64_t cd, uint64_t entries, const std::string& name) {
  for (uint64_t i = 0, at = cd; i < entries; ++i) {
    if (!sig(b, at, 0x02014b50) || !has(b, at, 46)) return;
    const uint64_t method = le(b, at + 10, 2), name_len = le(b, at + 28, 2), extra_len = le(b, at + 30, 2),
                   comment_len = le(b, at + 32, 2);
    uint64_t csize = le(b, at + 20, 4), usize = le(b, at + 24, 4), local = le(b, at + 42, 4);
    if (!has(b, at + 46, name_len + extra_len)) return;
    const std::string record = b.substr(at + 46, name_len);
    for (uint64_t e = at + 46 + name_len; e + 4 <= at + 46 + name_len + extra_len;) {  // zip64 sizes and offset
      const uint64_t id = le(b, e, 2), len = le(b, e + 2, 2), end = e + 4 + len;
      if (end > at + 46 + name_len + extra_len) break;
      if (id == 0x0001) {
        uint64_t f = e + 4;
        for (uint64_t* v : {&usize, &csize, &local}) {
          if (*v != 0xFFFFFFFF || f + 8 > end) continue;
          *v = le(b, f, 8);
          f += 8;
        }
      }
      e = end;
    }
    const std::string where = "'" + name + "': record " + quote_excerpt(record);
    // Stored records hold their bytes; deflate expands at most ~1032:1.
    const uint64_t limit = method == 0 ? b.size() : (csize > b.size() ? b.size() : csize) * 1032 + 64;
    VLM_CHECK(usize <= limit && csize <= b.size(), where, " claims ", usize, " bytes (", csize,
              " stored) in a file of ", b.size(), " bytes (a damaged file)");
    if (method == 0 && sig(b, local, 0x04034b50) && has(b, local, 30)) {
      const uint64_t data = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
      VLM_CHECK(has(b, data, usize), where, " runs past the end of the file (a truncated or damaged file)");
      // The specific checks first, so that their messages say what is wrong; the CRC catches the rest.
      if (is_pickle(record)) check_pickle(b, data, usize, where);
      if (ends_with(record, ".py") && record.find("code/") != std::string::npos)
        check_declarations(b, data, usize, where);
      // LibTorch 1.13 does not check the records' CRC-32: a flipped bit in a weight would load silently.
      uLong crc = crc32(0L, Z_NULL, 0);
      for (uint64_t done = 0; done < usize;) {  // zlib takes at most 4 GiB per call
        const uint64_t n = std::min<uint64_t>(usize - done, 1u << 30);
        crc = crc32(crc, reinterpret_cast<const Bytef*>(b.data() + data + done), static_cast<uInt>(n));
        done += n;
      }
      VLM_CHECK(crc == le(b, at + 16, 4), where, " fails its CRC-32 check (a damaged file)");
    }
    at += 46 + name_len + extra_len + comment_len;
  }
}

}  // namespace

void check_archive_bounds(const std::string& b, const std::string& name) {
  // Which directory miniz (LibTorch's zip reader) follows depends on details of a damaged end record, so every
  // candidate is checked: the end-of-central-directory record's, and its zip64 twin's when a locator points to one.
  if (b.size() >= 22) {
    uint64_t eocd = b.size() - 22;
    const uint64_t lowest = b.size() > 22 + 65535 ? b.size() - 22 - 65535 : 0;
    while (eocd > lowest && !sig(b, eocd, 0x06054b50)) --eocd;
    if (sig(b, eocd, 0x06054b50)) {
      const uint64_t cd = le(b, eocd + 16, 4), entries = le(b, eocd + 10, 2);
      check_directory(b, cd, entries, name);
      if (eocd >= 20 && sig(b, eocd - 20, 0x07064b50)) {
        const uint64_t z = le(b, eocd - 20 + 8, 8);
        if (sig(b, z, 0x06064b50) && has(b, z, 56)) {
          const uint64_t cd64 = le(b, z + 48, 8), entries64 = le(b, z + 32, 8);
          // LibTorch writes both records for every archive: walk (and CRC) the same directory only once.
          if (cd64 != cd || entries64 != entries) check_directory(b, cd64, entries64, name);
        }
      }
    }
  }
  // And whatever the directory says, every stored pickle found by its local header: no length in it may run past
  // the end of the file (LibTorch's records cannot be larger than the file that holds them).
  const std::string local_sig("PK\x03\x04", 4);
  for (size_t at = b.find(local_sig); at != std::string::npos; at = b.find(local_sig, at + 4)) {
    if (!has(b, at, 30) || le(b, at + 8, 2) != 0) continue;
    const uint64_t name_len = le(b, at + 26, 2), extra_len = le(b, at + 28, 2);
    if (!has(b, at + 30, name_len + extra_len)) continue;
    const std::string record = b.substr(at + 30, name_len);
    if (!is_pickle(record)) continue;
    const uint64_t data = at + 30 + name_len + extra_len;
    check_pickle(b, data, b.size() - data, "'" + name + "': record " + quote_excerpt(record));
  }
}

}  // namespace vlm
