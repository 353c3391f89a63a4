// VectorQuantizer: the nearest-code search against brute force, the straight-through estimator, where each loss
// term's gradient lands, k-means init, EMA updates, dead-code restarts and the usage statistics.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/models/vector_quantizer.h"

namespace {
// Nearest row by explicit squared distances in double, first minimum wins.
at::Tensor brute_force_nearest(const at::Tensor& x, const at::Tensor& codebook) {
  auto xd = x.to(at::kDouble), cd = codebook.to(at::kDouble);
  auto out = at::empty({x.size(0)}, at::kLong);
  for (int64_t i = 0; i < x.size(0); ++i) {
    double best = std::numeric_limits<double>::infinity();
    int64_t arg = -1;
    for (int64_t k = 0; k < codebook.size(0); ++k) {
      double d = (xd[i] - cd[k]).pow(2).sum().item<double>();
      if (d < best) best = d, arg = k;
    }
    out[i] = arg;
  }
  return out;
}

vlm::VectorQuantizer make_vq(int64_t K, int64_t D, double beta, bool ema = false) {
  auto o = vlm::VectorQuantizerOptions(K, D).commitment_cost(beta).kmeans_init(false).use_ema(ema);
  return vlm::VectorQuantizer(o);
}
}  // namespace

TEST_CASE("nearest_code agrees with a brute-force search", "[vq]") {
  at::manual_seed(1);
  auto x = at::randn({300, 4});
  auto codebook = at::randn({26, 4});
  CHECK(at::equal(vlm::nearest_code(x, codebook), brute_force_nearest(x, codebook)));
  auto wide = at::randn({200, 16});
  auto book16 = at::randn({26, 16});
  CHECK(at::equal(vlm::nearest_code(wide, book16), brute_force_nearest(wide, book16)));
}

TEST_CASE("nearest_code breaks ties towards the lowest index, like argmin", "[vq]") {
  auto codebook = at::tensor({1.0f, 0.0f, 5.0f, 5.0f, 1.0f, 0.0f, -1.0f, 0.0f}).view({4, 2});  // rows 0 and 2 equal
  auto x = at::tensor({1.0f, 0.0f, 0.0f, 0.0f}).view({2, 2});  // (0,0) is equidistant from rows 0, 2 and 3
  auto codes = vlm::nearest_code(x, codebook);
  CHECK(codes[0].item<int64_t>() == 0);
  CHECK(codes[1].item<int64_t>() == 0);
  CHECK_THROWS_AS(vlm::nearest_code(at::zeros({3, 3}), codebook), vlm::Error);
}

TEST_CASE("The quantizer outputs code vectors and passes gradients straight through", "[vq]") {
  at::manual_seed(2);
  auto vq = make_vq(8, 3, 0.25);
  auto z = at::randn({5, 4, 3}).set_requires_grad(true);  // (B, L, D)
  auto out = vq(z);
  REQUIRE(out.codes.sizes() == at::IntArrayRef({5, 4}));
  CHECK(at::allclose(out.quantized, vq->codebook.index_select(0, out.codes.flatten()).view({5, 4, 3})));
  auto w = at::randn({5, 4, 3});
  (out.quantized * w).sum().backward();
  CHECK(at::allclose(z.grad(), w));  // d(quantized)/dz is the identity
}

TEST_CASE("The codebook term moves only the codebook and the commitment term only the encoder", "[vq]") {
  at::manual_seed(3);
  auto base = at::randn({6, 2, 4});  // (B, L, D)
  auto grads = [&](double beta) {
    auto vq = make_vq(5, 4, beta);
    at::manual_seed(30);
    vq->codebook.detach().copy_(at::randn({5, 4}));
    auto z = base.clone().set_requires_grad(true);
    auto out = vq(z);
    out.loss.backward();
    return std::make_tuple(z.grad().clone(), vq->codebook.grad().clone(), out);
  };
  auto [gz0, gc0, out0] = grads(0.0);
  auto [gz1, gc1, out1] = grads(0.25);
  auto [gz2, gc2, out2] = grads(1.0);
  // With beta = 0 only the codebook term is left: it must not reach the encoder.
  CHECK(gz0.abs().max().item<float>() == 0.0f);
  // The codebook gradient does not depend on beta: the commitment term does not reach the codebook.
  CHECK(at::allclose(gc0, gc1));
  CHECK(at::allclose(gc0, gc2));
  // Hand-derived gradients: d/dz beta*mean((z - q)^2) = beta * 2 (z - q) / M, d/de mean((q - z)^2) summed per code.
  const double M = static_cast<double>(base.numel());
  auto q = out1.quantized.detach();
  CHECK(at::allclose(gz1, 0.25 * 2 * (base - q) / M, 1e-5, 1e-7));
  CHECK(at::allclose(gz2, 1.0 * 2 * (base - q) / M, 1e-5, 1e-7));
  auto expected = at::zeros({5, 4}).index_add_(0, out1.codes.flatten(), (2 * (q - base) / M).view({-1, 4}));
  CHECK(at::allclose(gc1, expected, 1e-5, 1e-7));
}

TEST_CASE("k-means initialisation lowers the distortion of a random initialisation", "[vq]") {
  at::manual_seed(4);
  auto centres = at::randn({26, 4}) * 3;                                         // (26, 4)
  auto x = centres.repeat({40, 1}) + 0.1 * at::randn({26 * 40, 4});              // (1040, 4) clustered data
  auto random_book = at::randn({26, 4});                                          // the module's N(0, 1) start
  auto random_points = x.index_select(0, at::randperm(x.size(0)).slice(0, 0, 26));  // 26 random data points
  auto vq = make_vq(26, 4, 0.25);
  vq->init_from(x);
  CHECK(vq->initialized());
  const double d_kmeans = vlm::distortion(x, vq->codebook.detach());
  CHECK(d_kmeans < vlm::distortion(x, random_book));
  CHECK(d_kmeans < vlm::distortion(x, random_points));
  CHECK(d_kmeans < 0.1);  // the noise alone is 4 * 0.01 = 0.04 per vector
}

TEST_CASE("A batch with fewer vectors than codes still initialises every codebook", "[vq]") {
  at::manual_seed(41);
  auto vq = vlm::VectorQuantizer(vlm::VectorQuantizerOptions(26, 3).groups(2).kmeans_init(true));
  auto z = at::randn({10, 2, 3});  // 10 vectors per codebook, 26 codes each
  vq->init_from(z);
  CHECK(vq->initialized());
  CHECK(at::isfinite(vq->codebook).all().item<bool>());
  // Every vector ends up (within the jitter) on a code of its own codebook.
  for (int64_t g = 0; g < 2; ++g) {
    auto book = vq->codebook.detach().slice(0, g * 26, (g + 1) * 26);
    CHECK(vlm::distortion(z.select(1, g), book) < 1e-4);
  }
}

TEST_CASE("Each code position searches its own codebook when groups > 1", "[vq]") {
  auto vq = vlm::VectorQuantizer(vlm::VectorQuantizerOptions(2, 1).groups(2).kmeans_init(false));
  // Codebook 0 = {0, 10}, codebook 1 = {100, 5}: the value 6 maps to code 1 in group 0 and to code 1 in group 1,
  // the value 90 to code 1 in group 0 and code 0 in group 1.
  vq->codebook.detach().copy_(at::tensor({0.f, 10.f, 100.f, 5.f}).view({4, 1}));
  auto z = at::tensor({6.f, 6.f, 90.f, 90.f, 1.f, 1.f}).view({3, 2, 1});  // (B, G, D)
  auto codes = vq->quantize(z);
  CHECK(at::equal(codes, at::tensor({1, 1, 1, 0, 0, 1}, at::kLong).view({3, 2})));
  CHECK(at::allclose(vq->lookup(codes), at::tensor({10.f, 5.f, 10.f, 100.f, 0.f, 5.f}).view({3, 2, 1})));
  CHECK_THROWS_AS(vq->quantize(at::zeros({3, 3, 1})), vlm::Error);
}

TEST_CASE("The first training forward initialises the codebook once", "[vq]") {
  at::manual_seed(5);
  auto vq = vlm::VectorQuantizer(vlm::VectorQuantizerOptions(4, 2));
  auto before = vq->codebook.detach().clone();
  auto z = at::randn({64, 2}) + 10;
  vq->train();
  vq(z);
  CHECK(vq->initialized());
  auto after = vq->codebook.detach().clone();
  CHECK_FALSE(at::allclose(before, after));
  CHECK(after.mean().item<float>() > 8);  // the codes moved to the data, far from N(0, 1)
  vq(z + 5);                               // a second forward does not re-initialise
  CHECK(at::equal(after, vq->codebook.detach()));
  vlm::VectorQuantizer fresh(vlm::VectorQuantizerOptions(4, 2));
  fresh->eval();
  fresh(z);
  CHECK_FALSE(fresh->initialized());  // evaluation never initialises
}

TEST_CASE("EMA updates move each code towards the mean of its vectors", "[vq]") {
  auto vq = make_vq(2, 1, 0.25, /*ema=*/true);
  vq->options.ema_decay(0.5);
  vq->codebook.detach().copy_(at::tensor({0.0f, 10.0f}).view({2, 1}));
  vq->ema_sum.copy_(vq->codebook.detach());
  vq->train();
  vq(at::tensor({1.0f, 3.0f, 9.0f}).view({3, 1}));  // codes 0, 0, 1
  // count = 0.5*1 + 0.5*[2, 1] = [1.5, 1]; sum = 0.5*[0, 10] + 0.5*[4, 9] = [2, 9.5]; code = sum / count
  CHECK(vq->codebook[0][0].item<float>() == Approx(2.0 / 1.5).epsilon(1e-4));
  CHECK(vq->codebook[1][0].item<float>() == Approx(9.5).epsilon(1e-4));
  CHECK_FALSE(vq->codebook.requires_grad());
}

TEST_CASE("Dead codes restart at vectors of the current batch", "[vq]") {
  at::manual_seed(6);
  auto o = vlm::VectorQuantizerOptions(4, 2).kmeans_init(false).dead_code_threshold(1.0).usage_decay(0.5);
  vlm::VectorQuantizer vq(o);
  vq->codebook.detach().copy_(at::tensor({0.f, 0.f, 1.f, 1.f, 100.f, 100.f, -100.f, -100.f}).view({4, 2}));
  vq->train();
  auto z = at::rand({32, 2});  // all near codes 0 and 1: codes 2 and 3 are never used
  vq(z);
  CHECK(vq->restarts() == 2);
  for (int64_t k : {2, 3}) {
    auto row = vq->codebook[k].detach();
    CHECK((z - row).abs().sum(1).min().item<float>() == 0.0f);  // exactly one of the batch vectors
  }
}

TEST_CASE("Perplexity is K for uniform use and 1 for a single code", "[vq]") {
  auto uniform = vlm::code_histogram(at::arange(26, at::kLong).repeat({3}), 26);
  CHECK(vlm::perplexity_of_counts(uniform) == Approx(26.0));
  auto single = vlm::code_histogram(at::full({10}, 7, at::kLong), 26);
  CHECK(vlm::perplexity_of_counts(single) == Approx(1.0));
  auto two = vlm::code_histogram(at::tensor({0, 0, 1, 1}, at::kLong), 26);
  CHECK(vlm::perplexity_of_counts(two) == Approx(2.0));
  CHECK_THROWS_AS(vlm::code_histogram(at::tensor({26}, at::kLong), 26), vlm::Error);
}

TEST_CASE("Quantizer options survive a JSON round trip and reject unknown fields", "[vq]") {
  auto o = vlm::VectorQuantizerOptions(30, 16).use_ema(true).dead_code_threshold(2.5).commitment_cost(0.5);
  auto back = vlm::options_from_json<vlm::VectorQuantizerOptions>(vlm::options_to_json(o), "test");
  CHECK(back.num_embeddings() == 30);
  CHECK(back.embedding_dim() == 16);
  CHECK(back.use_ema());
  CHECK(back.dead_code_threshold() == 2.5);
  CHECK(back.commitment_cost() == 0.5);
  CHECK_THROWS_WITH(vlm::options_from_json<vlm::VectorQuantizerOptions>({{"bogus", 1}}, "vq"), Catch::Contains("vq: unknown key 'bogus'"));
  CHECK_THROWS_WITH(vlm::options_from_json<vlm::VectorQuantizerOptions>({{"groups", "two"}}, "vq"),
                    Catch::Contains("vq.groups: expected an integer"));
}
