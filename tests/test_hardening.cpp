// Untrusted input and failing disks (docs/reliability.md): crash-safe writes under EFBIG and read-only directories,
// stale temporaries, the run-directory lock, damaged checkpoints, out-of-range labels, hostile images and lines.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include "test_helpers.h"
#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/flags.h"
#include "vlm/core/quote.h"
#include "vlm/core/run_lock.h"
#include "vlm/data/idx.h"
#include "vlm/data/mnist.h"
#include "vlm/io/checkpoint.h"
#include "vlm/io/png.h"
#include "vlm/io/png_read.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_string.h"

using vlm::testing::read_bytes;
using vlm::testing::TempDir;
using vlm::testing::write_bytes;

namespace {

// Runs `body` in a forked child and returns its exit status (or 128 + signal). The child never returns into Catch.
template <class F>
int in_child(F body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 98;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The file-size limit of `ulimit -f`, with SIGXFSZ ignored so that write(2) fails with EFBIG instead of killing.
void limit_file_size(rlim_t bytes) {
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit r{bytes, bytes};
  ::setrlimit(RLIMIT_FSIZE, &r);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A pid that existed and no longer does (reaped child).
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

}  // namespace

TEST_CASE("A text write that hits the file-size limit throws naming the file and EFBIG, and keeps the old file",
          "[hardening][atomic]") {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  vlm::write_text_atomically(path, "old contents");
  const int code = in_child([&] {
    limit_file_size(4096);
    try {
      vlm::write_text_atomically(path, std::string(100000, 'x'));
    } catch (const vlm::Error& e) {
      const std::string m = e.what();
      return contains(m, path) && contains(m, "File too large") ? 0 : 1;
    }
    return 2;  // no error: the limit was not enforced
  });
  CHECK(code == 0);
  CHECK(vlm::read_text_file(path) == "old contents");
  CHECK(names_in(dir.str()) == std::vector<std::string>{"notes.txt"});  // the partial temporary is gone
}

TEST_CASE("A checkpoint save on a full disk (EFBIG) throws a vlm::Error and the previous checkpoint is byte-identical",
          "[hardening][atomic][checkpoint]") {
  TempDir dir;
  const std::string path = dir.file("model.pt");
  torch::nn::Linear small(2, 2), big(128, 128);  // the big one serialises to > 64 KiB
  vlm::CheckpointWriter("toy", 1).add_module("model", *small).save(path);
  const auto before = read_bytes(path);
  REQUIRE(before.size() < 32768);
  const int code = in_child([&] {
    limit_file_size(32768);
    try {
      vlm::CheckpointWriter("toy", 1).add_module("model", *big).save(path);
    } catch (const vlm::Error& e) {
      const std::string m = e.what();
      return contains(m, path) && contains(m, "File too large") ? 0 : 1;
    } catch (...) {
      return 3;  // a c10::Error or anything else: not what callers can handle
    }
    return 2;
  });
  CHECK(code == 0);
  CHECK(read_bytes(path) == before);
  CHECK(names_in(dir.str()) == std::vector<std::string>{"model.pt"});
  vlm::CheckpointReader r(path, "toy", 1);  // still loads
  torch::nn::Linear again(2, 2);
  r.load_module("model", *again);
  CHECK(at::equal(again->weight, small->weight));
}

TEST_CASE("Writing into a read-only directory is a clear error naming the file and the OS cause",
          "[hardening][atomic]") {
  TempDir dir;
  const std::string ro = dir.file("ro");
  std::filesystem::create_directories(ro);
  vlm::write_text_atomically(ro + "/kept.txt", "kept");
  REQUIRE(::chmod(ro.c_str(), 0555) == 0);
  // root ignores permissions: the check runs as an unprivileged user in a child then.
  const int code = in_child([&] {
    if (::geteuid() == 0 && ::setuid(65534) != 0) return 4;
    int result = 0;
    try {
      vlm::write_text_atomically(ro + "/new.txt", "x");
      result |= 2;
    } catch (const vlm::Error& e) {
      if (!contains(e.what(), ro + "/new.txt") || !contains(e.what(), "Permission denied")) result |= 1;
    }
    try {
      vlm::write_text_atomically(ro + "/kept.txt", "replaced");
      result |= 8;
    } catch (const vlm::Error& e) {
      if (!contains(e.what(), "kept.txt")) result |= 16;
    }
    return result;
  });
  ::chmod(ro.c_str(), 0755);
  CHECK(code == 0);
  CHECK(vlm::read_text_file(ro + "/kept.txt") == "kept");
  CHECK(names_in(ro) == std::vector<std::string>{"kept.txt"});
}

TEST_CASE("Temporaries of dead writers are removed: live writers' and other files are kept", "[hardening][atomic]") {
  TempDir dir;
  const pid_t dead = dead_pid();
  write_bytes(dir.file("a.pt.tmp." + std::to_string(dead)), {1, 2, 3});
  write_bytes(dir.file("b.txt.tmp." + std::to_string(::getppid())), {1});  // a live process
  write_bytes(dir.file("c.tmp.notapid"), {1});
  write_bytes(dir.file("d.txt"), {1});
  auto removed = vlm::remove_stale_temp_files(dir.str());
  REQUIRE(removed.size() == 1);
  CHECK(contains(removed[0], "a.pt.tmp." + std::to_string(dead)));
  CHECK(names_in(dir.str()) == std::vector<std::string>{"b.txt.tmp." + std::to_string(::getppid()), "c.tmp.notapid",
                                                         "d.txt"});
  // The writers clean their target directory themselves.
  write_bytes(dir.file("e.json.tmp." + std::to_string(dead)), {1});
  vlm::write_text_atomically(dir.file("e.json"), "{}");
  CHECK_FALSE(std::filesystem::exists(dir.file("e.json.tmp." + std::to_string(dead))));
  CHECK(vlm::remove_stale_temp_files(dir.file("no-such-dir")).empty());
}

TEST_CASE("Read errors name the file and the OS cause", "[hardening][atomic]") {
  TempDir dir;
  CHECK_THROWS_WITH(vlm::read_text_file(dir.file("absent.txt")),
                    Catch::Contains("absent.txt") && Catch::Contains("No such file or directory"));
  CHECK_THROWS_WITH(vlm::read_text_file(dir.str()), Catch::Contains("Is a directory"));
  vlm::write_text_atomically(dir.file("big.txt"), std::string(100, 'x'));
  CHECK_THROWS_WITH(vlm::read_text_file(dir.file("big.txt"), 10), Catch::Contains("limit of 10 bytes"));
}

TEST_CASE("A run directory has one writer: a second holder is refused with the first one's pid and command",
          "[hardening][run_lock]") {
  TempDir dir;
  const std::string run = dir.file("run");
  int to_parent[2], to_child[2];
  REQUIRE(::pipe(to_parent) == 0);
  REQUIRE(::pipe(to_child) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char c = 'x';
    try {
      vlm::RunLock lock(run);
      c = 'L';
    } catch (...) {
    }
    // Keep the lock while waiting for the parent (the RunLock above is gone: take it again, held until _exit).
    vlm::RunLock* held = nullptr;
    try {
      held = new vlm::RunLock(run);
    } catch (...) {
      c = 'x';
    }
    if (::write(to_parent[1], &c, 1) != 1) ::_exit(3);
    char go;
    if (::read(to_child[0], &go, 1) != 1) ::_exit(4);
    (void)held;
    ::_exit(0);  // the kernel releases the lock with the process
  }
  char c = 0;
  REQUIRE(::read(to_parent[0], &c, 1) == 1);
  REQUIRE(c == 'L');
  std::string message;
  try {
    vlm::RunLock mine(run);
  } catch (const vlm::Error& e) {
    message = e.what();
  }
  CHECK(contains(message, "process " + std::to_string(child)));
  CHECK(contains(message, "vlm_core_tests"));  // the holder's command line
  CHECK(contains(message, run));
  char go = 'g';
  REQUIRE(::write(to_child[1], &go, 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  {
    vlm::RunLock mine(run);  // the holder is dead: free
    CHECK(mine.held());
    CHECK(contains(vlm::read_text_file(mine.path()), "pid " + std::to_string(::getpid())));
    CHECK_THROWS_WITH(vlm::RunLock(run), Catch::Contains("process " + std::to_string(::getpid())));  // same process
    mine.release();
    CHECK_FALSE(mine.held());
    vlm::RunLock again(run);
    CHECK(again.held());
  }
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
}

TEST_CASE("A run lock held by a process killed with SIGKILL is free again", "[hardening][run_lock]") {
  TempDir dir;
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      new vlm::RunLock(dir.str());
    } catch (...) {
      ::_exit(1);
    }
    char c = 'L';
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    for (;;) ::pause();
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  CHECK_THROWS_AS(vlm::RunLock(dir.str()), vlm::Error);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  vlm::RunLock mine(dir.str());
  CHECK(mine.held());
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_CASE("Non-finite weights in a checkpoint are an error naming the file and the tensor", "[hardening][checkpoint]") {
  TempDir dir;
  torch::nn::Linear a(3, 2), b(3, 2);
  {
    torch::NoGradGuard no_grad;
    a->weight[1][2] = NAN;
    a->bias[0] = INFINITY;
  }
  vlm::CheckpointWriter("toy", 1).add_module("model", *a).add_tensor("t", at::full({3}, -INFINITY))
      .add_tensor("ok", at::arange(3)).save(dir.file("nan.pt"));
  vlm::CheckpointReader r(dir.file("nan.pt"), "toy", 1);
  CHECK_THROWS_WITH(r.load_module("model", *b), Catch::Contains("nan.pt") && Catch::Contains("model.weight") &&
                                                    Catch::Contains("1 non-finite value") &&
                                                    Catch::Contains("flat index 5"));
  CHECK_THROWS_WITH(r.tensor("t"), Catch::Contains("tensor 't'") && Catch::Contains("3 non-finite values"));
  CHECK(r.tensor("ok").sum().item<int64_t>() == 3);  // integer tensors are not checked
  CHECK_THROWS_WITH(vlm::check_module_finite(*a, "trained", "gpt"), Catch::Contains("gpt.weight"));
  vlm::check_module_finite(*b, "fresh", "gpt");  // finite: no error
}

TEST_CASE("Checkpoint kind and version mismatches say which, from files and from bytes", "[hardening][checkpoint]") {
  TempDir dir;
  torch::nn::Linear a(3, 2);
  vlm::CheckpointWriter("vqvae", 2, {{"alphabet", "AB"}}).add_module("model", *a).save(dir.file("k.pt"));
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("k.pt"), "gpt", 5),
                    Catch::Contains("k.pt") && Catch::Contains("\"vqvae\" checkpoint, expected 'gpt'"));
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("k.pt"), "vqvae", 1),
                    Catch::Contains("format version 2") && Catch::Contains("versions 1..1"));
  const std::string bytes = vlm::read_text_file(dir.file("k.pt"));
  auto head = vlm::peek_checkpoint_bytes(bytes, "mem.pt");
  CHECK(head["kind"] == "vqvae");
  CHECK(head["version"] == 2);
  CHECK(head["meta"]["alphabet"] == "AB");
  CHECK(vlm::peek_checkpoint(dir.file("k.pt")) == head);
  CHECK_THROWS_WITH(vlm::peek_checkpoint_bytes(bytes.substr(0, bytes.size() / 2), "half.pt"),
                    Catch::Contains("half.pt"));
  CHECK_THROWS_WITH(vlm::peek_checkpoint_bytes("", "empty.pt"), Catch::Contains("empty.pt"));
  CHECK_THROWS_AS(vlm::peek_checkpoint_bytes(std::string(64, '\x01'), "junk.pt"), vlm::Error);
}

TEST_CASE("A checkpoint whose pickle or zip directory claims more bytes than the file holds is refused before "
          "LibTorch allocates them", "[hardening][checkpoint]") {
  TempDir dir;
  torch::nn::Linear a(3, 2);
  vlm::CheckpointWriter("gpt", 1, {}).add_module("model", *a).save(dir.file("ok.pt"));
  const std::string good = vlm::read_text_file(dir.file("ok.pt"));
  CHECK(vlm::peek_checkpoint_bytes(good, "ok.pt")["kind"] == "gpt");  // the bound check passes a whole file

  // The kind string "gpt" is pickled as BINUNICODE: 'X', a 4-byte little-endian length, the bytes. A length of
  // 0x67000003 made LibTorch 1.13 allocate 1.7 GB for a 1.3 KB file (the fuzzer's reproducer).
  const std::string kind_op("X\x03\x00\x00\x00gpt", 8);
  const size_t at = good.find(kind_op);
  REQUIRE(at != std::string::npos);
  std::string bad = good;
  bad[at + 4] = '\x67';
  CHECK_THROWS_WITH(vlm::peek_checkpoint_bytes(bad, "bad.pt"),
                    Catch::Contains("'bad.pt'") && Catch::Contains("data.pkl") &&
                        Catch::Contains("claims 1728053251 bytes"));
  vlm::testing::write_bytes(dir.file("bad.pt"), std::vector<unsigned char>(bad.begin(), bad.end()));
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("bad.pt"), "gpt", 1), Catch::Contains("claims 1728053251 bytes"));

  // The central directory's uncompressed size of data.pkl (offset 24 of its entry) set past the file's size.
  const std::string entry = std::string("PK\x01\x02", 4);
  size_t cd = good.find(entry);
  while (cd != std::string::npos && good.compare(cd + 46, 16, "archive/data.pkl") != 0) cd = good.find(entry, cd + 1);
  REQUIRE(cd != std::string::npos);
  std::string big = good;
  for (int k = 0; k < 4; ++k) big[cd + 24 + k] = k == 3 ? '\x40' : '\0';  // 0x40000000 = 1 GiB
  CHECK_THROWS_WITH(vlm::peek_checkpoint_bytes(big, "big.pt"),
                    Catch::Contains("data.pkl") && Catch::Contains("claims 1073741824 bytes"));

  // A damaged class source (the fuzzer's `__parameters_W = []` crashed LibTorch's type parser with SIGSEGV).
  const size_t params = good.find("__parameters__ = [");
  REQUIRE(params != std::string::npos);
  std::string source = good;
  source[params + 13] = 'W';
  CHECK_THROWS_WITH(vlm::peek_checkpoint_bytes(source, "src.pt"),
                    Catch::Contains("code/__torch__") && Catch::Contains("line 2 is not a module declaration") &&
                        Catch::Contains("__parameters_W = ["));

  // One bit of a weight flipped: LibTorch would load it; its record's CRC-32 no longer matches.
  std::string flipped = good;
  const size_t weight = good.find("archive/data/0");
  REQUIRE(weight != std::string::npos);
  // The local header: name, then the extra field (LibTorch pads with 'Z' to 64 bytes), then the 24 bytes of weight.
  const size_t data = weight + 14 + static_cast<unsigned char>(good[weight - 2]) +
                      256 * static_cast<unsigned char>(good[weight - 1]);
  flipped[data + 5] ^= 0x10;
  CHECK_THROWS_WITH(vlm::peek_checkpoint_bytes(flipped, "flip.pt"),
                    Catch::Contains("archive/data/0") && Catch::Contains("fails its CRC-32 check"));
  CHECK_NOTHROW(vlm::peek_checkpoint_bytes(good, "ok.pt"));

  // The fuzzer's two reproducers (the second also has a damaged end-of-directory record, which sent a directory-only
  // check elsewhere): refused by the bound check, not by LibTorch after it allocated 1.7 GB.
  for (const char* f : {"slow-pickle-string-claims-1.7gb", "oom-pickle-string-with-damaged-zip-end-record"}) {
    const std::string path = std::string(VLM_FUZZ_CORPUS_DIR) + "/fuzz_checkpoint/" + f;
    INFO(path);
    CHECK_THROWS_WITH(vlm::CheckpointReader(path, "", 1), Catch::Contains("claims 1728053251 bytes"));
  }
}

TEST_CASE("IDX labels outside 0..num_classes-1 are rejected at load time, naming file, index and value",
          "[hardening][mnist]") {
  TempDir dir;
  vlm::IdxArray images{{3, 2, 2}, std::vector<uint8_t>(12, 7)};
  vlm::write_idx(dir.file("train-images-idx3-ubyte"), images);
  vlm::write_idx(dir.file("t10k-images-idx3-ubyte"), images, /*gzip=*/true);
  vlm::write_idx(dir.file("train-labels-idx1-ubyte"), {{3}, {1, 2, 3}});
  vlm::write_idx(dir.file("t10k-labels-idx1-ubyte"), {{3}, {9, 12, 0}});
  CHECK_THROWS_WITH(vlm::load_mnist(dir.str()), Catch::Contains("t10k-labels-idx1-ubyte") &&
                                                    Catch::Contains("label 12 at index 1") &&
                                                    Catch::Contains("0..9"));
  CHECK(vlm::load_mnist(dir.str(), 0, 0, 13).test.labels[1].item<int64_t>() == 12);
  CHECK_THROWS_WITH(vlm::load_labeled_images(dir.file("train-images-idx3-ubyte"),
                                             dir.file("train-labels-idx1-ubyte"), 3),
                    Catch::Contains("label 3 at index 2") && Catch::Contains("num_classes = 3"));
}

TEST_CASE("parse_idx reads bytes in memory like read_idx reads the file, raw, gzip and multi-member gzip",
          "[hardening][idx]") {
  TempDir dir;
  vlm::IdxArray a{{2, 3}, {1, 2, 3, 4, 5, 6}};
  for (bool gzip : {false, true}) {
    vlm::write_idx(dir.file("a"), a, gzip);
    const auto bytes = read_bytes(dir.file("a"));
    CHECK((bytes[0] == 0x1f) == gzip);
    auto m = vlm::parse_idx(bytes.data(), bytes.size(), "mem");
    auto f = vlm::read_idx(dir.file("a"));
    CHECK(m.dims == a.dims);
    CHECK(m.data == a.data);
    CHECK(f.data == a.data);
  }
  // Two gzip members, as `cat a.gz b.gz` makes: gzread reads them as one stream, and so does parse_idx.
  const std::vector<uint8_t> raw = {0, 0, 8, 1, 0, 0, 0, 4, 9, 8, 7, 6};
  auto gz = [](const uint8_t* p, size_t n) {
    std::vector<uint8_t> out(n + 64);
    z_stream z{};
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = const_cast<uint8_t*>(p);
    z.avail_in = static_cast<uInt>(n);
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
  };
  auto both = gz(raw.data(), 6);
  auto second = gz(raw.data() + 6, 6);
  both.insert(both.end(), second.begin(), second.end());
  write_bytes(dir.file("two.gz"), both);
  CHECK(vlm::parse_idx(both.data(), both.size(), "two").data == std::vector<uint8_t>{9, 8, 7, 6});
  CHECK(vlm::read_idx(dir.file("two.gz")).data == std::vector<uint8_t>{9, 8, 7, 6});
  auto half = std::vector<uint8_t>(both.begin(), both.begin() + 10);
  CHECK_THROWS_WITH(vlm::parse_idx(half.data(), half.size(), "half.gz"), Catch::Contains("half.gz"));
}

TEST_CASE("A repeated flag is an error naming the key and both values", "[hardening][flags]") {
  int x = 0;
  std::string s;
  vlm::Flags f("tool", "test");
  f.add("x", &x, "x").add("s", &s, "s");
  CHECK_THROWS_WITH(f.parse({"--x=1", "--x=2"}),
                    Catch::Contains("--x is given twice") && Catch::Contains("\"1\"") && Catch::Contains("\"2\""));
  CHECK_THROWS_WITH(f.parse({"--s=\xff\xfe"}), Catch::Contains("--s") && Catch::Contains("not valid UTF-8"));
  CHECK(f.parse({"--s=caf\xc3\xa9"}));
  CHECK(f.to_json().dump().size() > 0);
  CHECK_THROWS_WITH(f.parse({"--" + std::string(5000, 'k') + "=1"}), Catch::Contains("(5000 bytes)"));
}

TEST_CASE("Error messages quote at most ~80 characters of a line and escape binary bytes", "[hardening][quote]") {
  CHECK(vlm::quote_excerpt("abc") == "\"abc\"");
  CHECK(vlm::quote_excerpt(std::string("a\x01\n\"", 4)) == "\"a\\x01\\n\\\"\"");
  CHECK(vlm::quote_excerpt(std::string(100, 'z'), 10) == "\"zzzzzzzzzz...\" (100 bytes)");
  const std::string huge = "image:" + std::string(10 << 20, 'A') + ", number:x.";
  try {
    vlm::SequenceFormat::seed().parse(huge, "big.txt", 1);
    FAIL("no error");
  } catch (const vlm::Error& e) {
    const std::string m = e.what();
    CHECK(m.size() < 1000);
    CHECK(contains(m, "big.txt:1"));
    CHECK(contains(m, "bytes)"));
  }
  std::string binary(200, '\0');
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 37);
  try {
    vlm::SequenceFormat::seed().parse(binary, "bin.txt", 1);
    FAIL("no error");
  } catch (const vlm::Error& e) {
    const std::string m = e.what();
    CHECK(m.size() < 1000);
    for (unsigned char c : m) CHECK((c >= 0x20 && c < 0x7f));  // nothing raw reaches the terminal
  }
  CHECK_THROWS_WITH(vlm::image_text_to_code_vector(std::string(1 << 20, 'A'), "AB", 8),
                    Catch::Contains("1048576 letters") && Catch::Contains("bytes)"));
  CHECK(vlm::image_text_to_code_vector("BA", "AB", 2) == std::vector<int64_t>{1, 0});
  CHECK_THROWS_WITH(vlm::image_text_to_code_vector("A\x01", "AB", 2), Catch::Contains("'\\x01' at position 1"));
}

TEST_CASE("Images are checked from their header before decoding, and errors name the file", "[hardening][png]") {
  TempDir dir;
  // Valid PNG headers (IHDR) with nothing after them: stb itself refuses 60000 x 60000 at info time (its 2^30 bytes
  // rule); 20000 x 20000 passes stb's header check and is refused by vlm's limits, also before any decoding.
  auto header_only = [](uint32_t side) {
    std::vector<unsigned char> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    const unsigned char b[4] = {static_cast<unsigned char>(side >> 24), static_cast<unsigned char>(side >> 16),
                                static_cast<unsigned char>(side >> 8), static_cast<unsigned char>(side)};
    const unsigned char ihdr[13] = {b[0], b[1], b[2], b[3], b[0], b[1], b[2], b[3], 8, 0, 0, 0, 0};
    png.insert(png.end(), ihdr, ihdr + 13);
    const uLong crc = crc32(crc32(0, reinterpret_cast<const Bytef*>("IHDR"), 4), ihdr, 13);
    for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<unsigned char>((crc >> s) & 0xff));
    return png;
  };
  write_bytes(dir.file("huge.png"), header_only(60000));
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("huge.png")), Catch::Contains("huge.png"));
  write_bytes(dir.file("big.png"), header_only(20000));
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("big.png")),
                    Catch::Contains("big.png") && Catch::Contains("20000x20000") && Catch::Contains("refusing"));
  write_bytes(dir.file("text.png"), {'h', 'e', 'l', 'l', 'o'});
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("text.png")), Catch::Contains("text.png"));
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("none.png")),
                    Catch::Contains("none.png") && Catch::Contains("No such file"));
  const std::string pgm16 = "P5\n1 1\n65535\n\x12\x34";
  write_bytes(dir.file("deep.pgm"), std::vector<unsigned char>(pgm16.begin(), pgm16.end()));
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("deep.pgm")), Catch::Contains("16-bit"));
  // A real image still reads back, and a small limit refuses it.
  vlm::write_png(dir.file("g.png"), at::linspace(0, 1, 12).view({3, 4}));
  auto img = vlm::read_image_gray(dir.file("g.png"));
  CHECK(img.sizes() == at::IntArrayRef({1, 3, 4}));
  CHECK(img[0][2][3].item<float>() == Approx(1.0f));
  vlm::ImageLimits tight;
  tight.max_pixels = 11;
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("g.png"), tight), Catch::Contains("4x3"));
}
