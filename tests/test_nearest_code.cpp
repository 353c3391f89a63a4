// The fused nearest-code kernel against the seed's formula and an exact (double) search, for every instruction-set
// build this CPU runs. "Same answer" is stated precisely in vlm/kernels/nearest_code.h: identical wherever the
// exact gap between the two nearest codes exceeds float rounding, lowest index on exact ties.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/kernels/kernel_isa.h"
#include "vlm/kernels/nearest_code.h"

namespace vk = vlm::kernels;

TEST_CASE("nearest_code picks the exact nearest code on random inputs of many shapes", "[nearest_code]") {
  at::manual_seed(7);
  struct Shape {
    int64_t n, k, d;
  };
  // N off the 16-lane width and its blocks, K = 1 and K not a multiple of the code blocking, D odd and the
  // specialised widths.
  const Shape shapes[] = {{1, 1, 1},     {15, 26, 4},  {17, 26, 4},  {129, 26, 4},  {1000, 26, 4}, {4099, 26, 4},
                          {77, 1, 4},    {300, 3, 7},  {513, 7, 8},  {200, 257, 16}, {129, 64, 32}, {65, 1024, 64},
                          {257, 5, 64},  {33, 9, 3},   {100, 26, 1}, {31, 130, 5}};
  for (const std::string& isa : vk::supported_isas())
    for (const Shape& s : shapes) {
      CAPTURE(isa, s.n, s.k, s.d);
      at::Tensor x = at::randn({s.n, s.d});         // (N, D)
      at::Tensor codebook = at::randn({s.k, s.d});  // (K, D)
      at::Tensor fast = vk::nearest_code(x, codebook, isa);
      at::Tensor ref = vk::nearest_code_reference(x, codebook);
      REQUIRE(fast.sizes() == at::IntArrayRef{s.n});
      REQUIRE(fast.scalar_type() == at::kLong);
      // Both must be exact except at near ties; so they agree with each other on every row that is not one.
      vk::NearestCodeCheck fc = vk::check_nearest_code(x, codebook, fast);
      vk::NearestCodeCheck rc = vk::check_nearest_code(x, codebook, ref);
      CHECK(fc.near_ties <= s.n / 100 + 1);  // near ties are rare, so the identity claim covers nearly every row
      const int64_t disagree = fast.ne(ref).sum().item<int64_t>();
      CHECK(disagree <= fc.near_ties);
      CHECK(rc.differ <= rc.near_ties);
    }
}

TEST_CASE("nearest_code breaks exact ties to the lowest index like argmin", "[nearest_code]") {
  // Hand-made: codes 0 and 2 are the same point; the origin is equidistant from all three.
  at::Tensor codebook = at::tensor({1.f, 0.f, -1.f, 0.f, 1.f, 0.f}).view({3, 2});
  at::Tensor x = at::tensor({0.f, 0.f, 1.f, 0.f, -1.f, 0.f, 0.f, 5.f, 3.f, 0.f}).view({5, 2});
  const at::Tensor expected = at::tensor({0L, 0L, 1L, 0L, 0L});
  for (const std::string& isa : vk::supported_isas()) {
    CAPTURE(isa);
    CHECK(at::equal(vk::nearest_code(x, codebook, isa), expected));
  }
  CHECK(at::equal(vk::nearest_code_reference(x, codebook), expected));

  // Small integers: every distance is exact in float for both formulas, so exact ties abound and the two searches
  // must agree on every row, ties included.
  at::manual_seed(3);
  for (int64_t d : {2, 4, 8}) {
    at::Tensor xi = at::randint(-2, 3, {2049, d}).to(at::kFloat);  // (N, D)
    at::Tensor ci = at::randint(-2, 3, {26, d}).to(at::kFloat);     // (K, D)
    ci[5] = ci[3];                                                  // a duplicated code: ties on every row near it
    const at::Tensor ref = vk::nearest_code_reference(xi, ci);
    for (const std::string& isa : vk::supported_isas()) {
      CAPTURE(isa, d);
      CHECK(at::equal(vk::nearest_code(xi, ci, isa), ref));
    }
    CHECK(ref.eq(5).sum().item<int64_t>() == 0);  // the duplicate never wins over its lower twin
  }
}

TEST_CASE("nearest_code with one code returns zeros and accepts strided input", "[nearest_code]") {
  at::manual_seed(11);
  at::Tensor codebook = at::randn({1, 4});
  at::Tensor x = at::randn({4, 37}).t();  // (37, 4), not contiguous
  CHECK(at::equal(vk::nearest_code(x, codebook), at::zeros({37}, at::kLong)));
  at::Tensor cb = at::randn({26, 4});
  CHECK(at::equal(vk::nearest_code(x, cb), vk::nearest_code(x.contiguous(), cb)));
}

TEST_CASE("check_nearest_code rejects an index that is not a near tie", "[nearest_code]") {
  at::Tensor codebook = at::tensor({0.f, 0.f, 10.f, 10.f}).view({2, 2});
  at::Tensor x = at::tensor({0.1f, 0.f, 9.f, 9.f}).view({2, 2});
  CHECK(vk::check_nearest_code(x, codebook, at::tensor({0L, 1L})).differ == 0);
  CHECK_THROWS_AS(vk::check_nearest_code(x, codebook, at::tensor({1L, 1L})), vlm::Error);
  CHECK_THROWS_AS(vk::check_nearest_code(x, codebook, at::tensor({0L, 2L})), vlm::Error);
}

TEST_CASE("nearest_code rejects inputs it does not handle with a message that says what it expected",
          "[nearest_code]") {
  at::Tensor x = at::randn({8, 4}), codebook = at::randn({26, 4});
  CHECK_FALSE(vk::nearest_code_supported(x.to(at::kDouble), codebook));
  CHECK_THROWS_WITH(vk::nearest_code(x.to(at::kDouble), codebook), Catch::Contains("float32"));
  CHECK_THROWS_WITH(vk::nearest_code(x, at::randn({26, 5})), Catch::Contains("(K, D)"));
  CHECK_THROWS_WITH(vk::nearest_code(x, codebook, "avx9000"), Catch::Contains("baseline"));
  CHECK(vk::nearest_code_reference(x.to(at::kDouble), codebook.to(at::kDouble)).size(0) == 8);
}
