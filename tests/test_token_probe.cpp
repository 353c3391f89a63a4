// The token probe: Hamming distances against a naive count, the k-NN vote on hand-made sets, token statistics and
// the seed's token text format.
#include <catch2/catch.hpp>

#include <fstream>

#include <cmath>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/eval/token_probe.h"
#include "vlm/eval/tsne.h"
#include "vlm/tokenizer/image_token_codec.h"

TEST_CASE("Hamming distances count the positions that differ", "[probe]") {
  at::manual_seed(31);
  auto a = at::randint(5, {20, 8}, at::kLong), b = at::randint(5, {30, 8}, at::kLong);
  auto d = vlm::hamming_distances(a, b, 5);
  REQUIRE(d.sizes() == at::IntArrayRef({20, 30}));
  for (int64_t i = 0; i < 20; ++i)
    for (int64_t j = 0; j < 30; ++j) CHECK(d[i][j].item<int64_t>() == a[i].ne(b[j]).sum().item<int64_t>());
}

TEST_CASE("The k-NN probe votes among the nearest strings, ties to the lower reference and the smaller label",
          "[probe]") {
  const std::string az = vlm::kDefaultImageAlphabet;
  auto ref = vlm::texts_to_codes({"AAAA", "AAAB", "BBBB", "BBBA", "CCCC", "AAAC"}, az, 4);
  auto ref_labels = at::tensor({0, 0, 1, 1, 2, 3}, at::kLong);
  auto queries = vlm::texts_to_codes({"AAAA", "BBBC", "CCCA", "AABB"}, az, 4);
  auto labels = at::tensor({0, 1, 2, 1}, at::kLong);
  // k = 1: AAAA -> AAAA (0); BBBC -> BBBB (distance 1, lower index than BBBA) (1); CCCA -> CCCC (2);
  // AABB -> AAAB and BBBB both at 1, AAAB has the lower index (0): wrong.
  auto one = vlm::knn_probe(queries, labels, ref, ref_labels, 1);
  CHECK(at::equal(one.predictions, at::tensor({0, 1, 2, 0}, at::kLong)));
  CHECK(one.accuracy == Approx(0.75));
  // k = 3, AAAA: AAAA(0) AAAB(1) AAAC(1) -> labels 0 0 3 -> 0. AABB: AAAB(1) BBBB(1) AAAA(2) -> 0 1 0 -> 0.
  auto three = vlm::knn_probe(queries, labels, ref, ref_labels, 3, /*chunk=*/3);
  CHECK(three.predictions[0].item<int64_t>() == 0);
  CHECK(three.predictions[3].item<int64_t>() == 0);
  // k = 2, BBBC: BBBB(1) BBBA(1) -> 1 1 -> 1. AABB: AAAB(1) BBBB(1) -> a 0/1 tie goes to the smaller label 0.
  auto two = vlm::knn_probe(queries, labels, ref, ref_labels, 2);
  CHECK(two.predictions[1].item<int64_t>() == 1);
  CHECK(two.predictions[3].item<int64_t>() == 0);
  CHECK_THROWS_AS(vlm::knn_probe(queries, labels, ref, ref_labels, 7), vlm::Error);
}

TEST_CASE("Token statistics count codes, perplexity and distinct strings", "[probe]") {
  auto codes = at::tensor({0, 1, 0, 1, 2, 3, 0, 1}, at::kLong).view({4, 2});  // rows 0 and 1 equal, 3 also
  auto s = vlm::token_stats(codes, 26);
  CHECK(s.codes_used == 4);
  CHECK(s.distinct_fraction == Approx(0.5));  // {01, 23} out of 4
  // Counts 3, 3, 1, 1 of 8: perplexity exp(-(2 * 3/8 ln 3/8 + 2 * 1/8 ln 1/8)).
  const double expected = std::exp(-(2 * 0.375 * std::log(0.375) + 2 * 0.125 * std::log(0.125)));
  CHECK(s.perplexity == Approx(expected));
}

TEST_CASE("Token text in either of the seed's templates is parsed", "[probe]") {
  vlm::testing::TempDir dir;
  {
    std::ofstream f(dir.file("tokens.txt"));
    f << "number:5, image:RNMIBNTY.#######\nimage:OJHFGGTE, number:7.#######\n\n";
  }
  auto set = vlm::read_token_text_file(dir.file("tokens.txt"));
  REQUIRE(set.images.size() == 2);
  CHECK(set.images[0] == "RNMIBNTY");
  CHECK(set.images[1] == "OJHFGGTE");
  CHECK(at::equal(set.labels, at::tensor({5, 7}, at::kLong)));
  {
    std::ofstream f(dir.file("bad.txt"));
    f << "number:5, image:RNMIBNTY.\nnumber:x, picture:AB.\n";
  }
  CHECK_THROWS_WITH(vlm::read_token_text_file(dir.file("bad.txt")), Catch::Contains("bad.txt:2"));
}

TEST_CASE("t-SNE calibrates each row to the perplexity asked for and keeps separated clusters apart", "[tsne]") {
  at::manual_seed(3);
  const int64_t per = 60, k = 3;
  auto centres = at::randn({k, 10}) * 10;                             // far apart in 10-D
  auto labels = at::arange(k).repeat_interleave(per);                 // (180)
  auto x = centres.index_select(0, labels) + at::randn({k * per, 10});  // (180, 10)
  auto cond = vlm::tsne_conditional(x, 15.0);
  CHECK(at::allclose(vlm::row_perplexity(cond), at::full({k * per}, 15.0, at::kDouble), 1e-4, 1e-3));
  CHECK(at::allclose(cond.sum(1), at::ones({k * per}, at::kDouble)));
  CHECK(cond.diagonal().abs().max().item<double>() == 0.0);
  auto P = vlm::tsne_affinities(x, 15.0);
  CHECK(P.sum().item<double>() == Approx(1.0).epsilon(1e-4));
  CHECK(at::allclose(P, P.t()));

  auto y = vlm::tsne_2d(x, vlm::TsneOptions().perplexity(15).iterations(400));
  REQUIRE(y.sizes() == at::IntArrayRef({k * per, 2}));
  // Every point's nearest neighbour in the map belongs to its own cluster.
  auto d = (y.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(2);  // (N, N)
  d.fill_diagonal_(INFINITY);
  auto nearest = d.argmin(1);
  CHECK(labels.index_select(0, nearest).eq(labels).all().item<bool>());
  // Same seed, same map.
  CHECK(at::equal(y, vlm::tsne_2d(x, vlm::TsneOptions().perplexity(15).iterations(400))));
  CHECK_THROWS_WITH(vlm::tsne_2d(x, vlm::TsneOptions().perplexity(500)), Catch::Contains("perplexity"));
}

TEST_CASE("The probe ladder finds the class in the one letter that holds it", "[probe]") {
  // Letter 0 names the class (class c -> code 2c or 2c + 1), letters 1-3 are noise: every rung should read the class,
  // and the per-letter figures should put it all in letter 0.
  at::manual_seed(41);
  const int64_t n = 2000, classes = 4, codes = 8;
  auto make = [&](int64_t count) {
    auto labels = at::randint(classes, {count}, at::kLong);
    auto c = at::randint(codes, {count, 4}, at::kLong);
    c.select(1, 0).copy_(labels * 2 + at::randint(2, {count}, at::kLong));
    return std::make_pair(c, labels);
  };
  auto [ref, ref_labels] = make(n);
  auto [qry, qry_labels] = make(500);
  vlm::ProbeLadderOptions o;
  o.epochs = 20;
  o.hidden = 32;
  o.lr = 0.03;
  auto l = vlm::probe_ladder(ref, ref_labels, qry, qry_labels, codes, o);
  CHECK(l.linear > 0.99);
  CHECK(l.mlp > 0.99);
  REQUIRE(l.position_accuracy.size() == 4);
  CHECK(l.position_accuracy[0] == Approx(1.0));
  CHECK(l.position_information[0] == Approx(2.0).margin(0.02));  // log2(4) bits, the whole class
  CHECK(l.position_perplexity[0] == Approx(8.0).margin(0.3));    // 8 codes in near-equal use
  for (int p = 1; p < 4; ++p) {
    CHECK(l.position_accuracy[p] < 0.4);        // chance is 0.25
    CHECK(l.position_information[p] < 0.05);
  }
  // The caller's random stream is left where it was.
  at::manual_seed(7);
  auto expected = at::rand({3});
  at::manual_seed(7);
  vlm::probe_ladder(ref, ref_labels, qry, qry_labels, codes, o);
  CHECK(at::equal(at::rand({3}), expected));
}
