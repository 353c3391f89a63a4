#include <zlib.h>

#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/data/idx.h"
#include "vlm/data/mnist.h"

using vlm::testing::read_bytes;
using vlm::testing::TempDir;
using vlm::testing::write_bytes;

namespace {
// A hand-built 3 x 2 x 2 image file: header 00 00 08 03, dims 3 2 2 big-endian, then 12 bytes.
std::vector<unsigned char> tiny_images() {
  std::vector<unsigned char> b = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
  for (int i = 0; i < 12; ++i) b.push_back(static_cast<unsigned char>(i * 20));
  b[16 + 11] = 255;
  return b;
}
std::vector<unsigned char> tiny_labels(int n = 3) {
  std::vector<unsigned char> b = {0, 0, 8, 1, 0, 0, 0, static_cast<unsigned char>(n)};
  for (int i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(7 - i));
  return b;
}
void gzip_file(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
}  // namespace

TEST_CASE("IDX reader decodes a hand-built file into dims and bytes", "[idx]") {
  TempDir dir;
  write_bytes(dir.file("img"), tiny_images());
  auto a = vlm::read_idx(dir.file("img"));
  REQUIRE(a.dims == std::vector<int64_t>{3, 2, 2});
  REQUIRE(a.data.size() == 12);
  CHECK(a.data[1] == 20);
  CHECK(a.data[11] == 255);
  auto t = vlm::idx_to_image_tensor(a);
  REQUIRE(t.sizes() == at::IntArrayRef({3, 1, 2, 2}));
  CHECK(t[0][0][0][1].item<float>() == Approx(20.0f / 255.0f));
  CHECK(t[2][0][1][1].item<float>() == 1.0f);
}

TEST_CASE("IDX reader reads gzip-compressed files identically and detects them by content", "[idx]") {
  TempDir dir;
  gzip_file(dir.file("img.gz"), tiny_images());
  gzip_file(dir.file("no-suffix"), tiny_images());
  write_bytes(dir.file("raw"), tiny_images());
  auto raw = vlm::read_idx(dir.file("raw"));
  CHECK(vlm::read_idx(dir.file("img.gz")).data == raw.data);
  CHECK(vlm::read_idx(dir.file("no-suffix")).dims == raw.dims);
}

TEST_CASE("IDX writer round-trips raw and gzip", "[idx]") {
  TempDir dir;
  vlm::IdxArray a;
  a.dims = {2, 3, 5};
  for (int i = 0; i < 30; ++i) a.data.push_back(static_cast<uint8_t>(i * 7));
  vlm::write_idx(dir.file("a"), a);
  vlm::write_idx(dir.file("a.gz"), a, true);
  CHECK(read_bytes(dir.file("a")).size() == 16 + 30);
  for (auto name : {"a", "a.gz"}) {
    auto b = vlm::read_idx(dir.file(name));
    CHECK(b.dims == a.dims);
    CHECK(b.data == a.data);
  }
}

TEST_CASE("IDX reader rejects bad files with a message naming the file and the expectation", "[idx][errors]") {
  TempDir dir;
  auto expect_error = [&](const std::string& name, const std::vector<unsigned char>& bytes, const std::string& what) {
    write_bytes(dir.file(name), bytes);
    CHECK_THROWS_WITH(vlm::read_idx(dir.file(name)), Catch::Contains(name) && Catch::Contains(what));
  };
  auto good = tiny_images();

  SECTION("wrong magic") {
    auto b = good;
    b[0] = 0x50;
    expect_error("magic", b, "wrong magic");
  }
  SECTION("unsupported data type") {
    auto b = good;
    b[2] = 0x0D;  // float
    expect_error("type", b, "expected 0x08");
  }
  SECTION("truncated data") {
    auto b = good;
    b.resize(b.size() - 3);
    expect_error("trunc", b, "truncated");
  }
  SECTION("truncated header") { expect_error("header", {0, 0, 8, 3, 0, 0, 0, 3, 0}, "truncated header"); }
  SECTION("trailing bytes") {
    auto b = good;
    b.push_back(1);
    expect_error("trailing", b, "trailing");
  }
  SECTION("dimensions that disagree with the file size") {
    auto b = good;
    b[11] = 3;  // says 3 x 3 x 2 = 18 data bytes, 12 present
    expect_error("dims", b, "disagrees with its header");
  }
  SECTION("absurd dimensions are refused before allocating") {
    expect_error("huge", {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1},
                 "refusing to allocate");
  }
  SECTION("a zero dimension") { expect_error("zero", {0, 0, 8, 1, 0, 0, 0, 0}, "dimension 0 is 0"); }
  SECTION("empty file") { expect_error("empty", {}, "empty"); }
  SECTION("missing file") { CHECK_THROWS_WITH(vlm::read_idx(dir.file("nope")), Catch::Contains("no such file")); }
  SECTION("corrupt gzip stream") {
    gzip_file(dir.file("c.gz"), good);
    auto b = read_bytes(dir.file("c.gz"));
    for (size_t i = 12; i < b.size() - 8; ++i) b[i] ^= 0x5a;
    expect_error("c.gz", b, "gzip");
  }
  SECTION("truncated gzip stream") {
    gzip_file(dir.file("t.gz"), good);
    auto b = read_bytes(dir.file("t.gz"));
    b.resize(b.size() / 2);
    write_bytes(dir.file("t.gz"), b);
    CHECK_THROWS_WITH(vlm::read_idx(dir.file("t.gz")), Catch::Contains("t.gz"));
  }
  SECTION("gzip stream declaring an absurd size") {
    std::vector<unsigned char> b = {0, 0, 8, 2, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
    gzip_file(dir.file("bomb.gz"), b);
    CHECK_THROWS_WITH(vlm::read_idx(dir.file("bomb.gz")), Catch::Contains("refusing to allocate"));
  }
}

TEST_CASE("MNIST loader pairs images with labels and rejects a count mismatch", "[mnist][errors]") {
  TempDir dir;
  write_bytes(dir.file("train-images-idx3-ubyte"), tiny_images());
  gzip_file(dir.file("train-labels-idx1-ubyte.gz"), tiny_labels());
  write_bytes(dir.file("t10k-images-idx3-ubyte"), tiny_images());
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), tiny_labels());
  auto m = vlm::load_mnist(dir.str());
  CHECK(m.train.size() == 3);
  CHECK(m.train.labels[0].item<int64_t>() == 7);
  CHECK(m.train.labels.scalar_type() == at::kLong);
  CHECK(m.test.images.sizes() == at::IntArrayRef({3, 1, 2, 2}));
  CHECK(vlm::load_mnist(dir.str(), 2, 1).test.size() == 1);

  write_bytes(dir.file("t10k-labels-idx1-ubyte"), tiny_labels(4));
  CHECK_THROWS_WITH(vlm::load_mnist(dir.str()), Catch::Contains("3 images") && Catch::Contains("4 labels"));

  std::filesystem::remove(dir.file("t10k-labels-idx1-ubyte"));
  CHECK_THROWS_WITH(vlm::load_mnist(dir.str()),
                    Catch::Contains("t10k-labels-idx1-ubyte") && Catch::Contains("--data_dir"));
  CHECK_THROWS_WITH(vlm::load_mnist(dir.file("missing")), Catch::Contains("not a directory"));
}

TEST_CASE("The seed's split takes the last sixth for validation", "[mnist]") {
  vlm::LabeledImages all{at::arange(60).to(at::kFloat).view({60, 1, 1, 1}), at::arange(60)};
  auto s = vlm::split_train_validation(all);
  CHECK(s.train.size() == 50);
  CHECK(s.validation.size() == 10);
  CHECK(s.validation.labels[0].item<int64_t>() == 50);
  CHECK_THROWS_AS(vlm::split_train_validation(all.head(1)), vlm::Error);
}
