// Random views for the tokenizer's unsupervised objectives: the warp against hand-computed pixel moves, the bound of
// the elastic field, reproducibility and the options' errors.
#include <catch2/catch.hpp>

#include <cmath>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/data/augment.h"

namespace {
at::Tensor theta_of(double a, double b, double tx, double c, double d, double ty, int64_t batch = 1) {
  return at::tensor({a, b, tx, c, d, ty}, at::kFloat).view({1, 2, 3}).expand({batch, 2, 3}).contiguous();
}
}  // namespace

TEST_CASE("The warp moves pixels as its matrix says", "[augment]") {
  at::manual_seed(3);
  auto x = at::rand({2, 1, 28, 28});
  // Identity: every output pixel centre samples its own centre.
  CHECK(at::allclose(vlm::warp_images(x, theta_of(1, 0, 0, 0, 1, 0, 2)), x, 0, 1e-5));
  // out(p) = in(p + (1, 0)): column j shows column j + 1, the last column comes from outside (0).
  auto shifted = vlm::warp_images(x, theta_of(1, 0, 1, 0, 1, 0, 2));
  CHECK(at::allclose(shifted.slice(3, 0, 27), x.slice(3, 1, 28), 0, 1e-5));
  CHECK(shifted.select(3, 27).abs().max().item<float>() < 1e-5);
  // A quarter turn, source (x, y) = (-y, x): out[i][j] = in[j][W - 1 - i], pixel centres onto pixel centres.
  auto turned = vlm::warp_images(x, theta_of(0, -1, 0, 1, 0, 0, 2));
  for (int64_t i = 0; i < 28; i += 5)
    for (int64_t j = 0; j < 28; j += 3)
      CHECK(turned[1][0][i][j].item<float>() == Approx(x[1][0][j][27 - i].item<float>()).margin(1e-5));
  // A displacement field adds to the matrix's source position: a field of +1 along y shifts the rows.
  auto field = at::zeros({2, 2, 28, 28});
  field.select(1, 1).fill_(1.0);
  auto down = vlm::warp_images(x, theta_of(1, 0, 0, 0, 1, 0, 2), field);
  CHECK(at::allclose(down.slice(2, 0, 27), x.slice(2, 1, 28), 0, 1e-5));
  CHECK_THROWS_AS(vlm::warp_images(x, theta_of(1, 0, 0, 0, 1, 0, 3)), vlm::Error);
}

TEST_CASE("Random views are reproducible, differ per image and move no pixel further than asked", "[augment]") {
  auto x = at::zeros({8, 1, 28, 28});
  x.slice(2, 8, 20).slice(3, 12, 16).fill_(1.0);  // a bar, the same in every image
  vlm::AugmentOptions o;
  at::manual_seed(5);
  auto a = vlm::augment_images(x, o);
  at::manual_seed(5);
  auto b = vlm::augment_images(x, o);
  CHECK(at::equal(a, b));
  CHECK((a[0] - a[1]).abs().max().item<float>() > 0.1);  // each image its own draw
  // The affine part moves ink without making or losing much of it (the bar stays inside the frame): rotation and
  // shear keep areas, +-10 % zoom changes them by at most 1 / 0.9^2 = 1.23.
  vlm::AugmentOptions affine = o;
  affine.elastic = 0;
  const double mass = x[0].sum().item<double>();
  auto moved_bars = vlm::augment_images(x, affine);
  for (int64_t i = 0; i < 8; ++i) CHECK(moved_bars[i].sum().item<double>() == Approx(mass).epsilon(0.3));
  // All amounts 0: the images themselves.
  vlm::AugmentOptions none;
  none.rotate = none.scale = none.shift = none.shear = none.elastic = 0;
  CHECK(!none.any());
  CHECK(at::equal(vlm::augment_images(x, none), x));
  // Elastic alone on a horizontal ramp (value = column): bilinear sampling of a linear ramp is exact, so away from
  // the border each value moves by the field's x displacement, at most `elastic` pixels.
  vlm::AugmentOptions elastic = none;
  elastic.elastic = 2;
  auto ramp = at::arange(28, at::kFloat).view({1, 1, 1, 28}).expand({4, 1, 28, 28}).contiguous();
  auto warped = vlm::augment_images(ramp, elastic);
  auto moved = (warped - ramp).slice(2, 3, 25).slice(3, 3, 25).abs();
  CHECK(moved.max().item<float>() <= 2.0f + 1e-4f);
  CHECK(moved.max().item<float>() > 0.5f);  // and it does move them
}

TEST_CASE("Augmentation options out of range are refused by name", "[augment][errors]") {
  auto x = at::zeros({1, 1, 28, 28});
  vlm::AugmentOptions o;
  o.rotate = -1;
  CHECK_THROWS_WITH(vlm::augment_images(x, o), Catch::Contains("--rotate (augmentation)"));
  o = {};
  o.scale = 1.5;
  CHECK_THROWS_WITH(vlm::augment_images(x, o), Catch::Contains("--scale (augmentation)"));
  o = {};
  o.elastic_sigma = 0;
  CHECK_THROWS_WITH(vlm::augment_images(x, o), Catch::Contains("--elastic_sigma (augmentation)"));
  CHECK_THROWS_AS(vlm::augment_images(at::zeros({28, 28}), {}), vlm::Error);
}

TEST_CASE("Pixel neighbours are the nearest other images, in full or in row ranges", "[augment]") {
  at::manual_seed(9);
  auto x = at::rand({60, 1, 4, 4});
  auto nn = vlm::pixel_neighbours(x, 3, /*dims=*/16, /*chunk=*/7);  // dims = pixels: exact distances
  REQUIRE(nn.sizes() == at::IntArrayRef({60, 3}));
  auto flat = x.reshape({60, -1});
  for (int64_t i = 0; i < 60; ++i) {
    auto d = (flat - flat[i]).pow(2).sum(1);  // a naive count of the distances
    d[i] = 1e9;
    auto expected = std::get<1>(d.topk(3, 0, /*largest=*/false, /*sorted=*/true));
    CHECK(at::equal(nn[i], expected));
  }
  // Rows in ranges (what data-parallel ranks search) put together are the whole.
  auto parts = at::cat({vlm::pixel_neighbours(x, 3, 16, 7, 0, 25), vlm::pixel_neighbours(x, 3, 16, 7, 25, 60)});
  CHECK(at::equal(parts, nn));
  // Projected on a few principal components, images of two far-apart groups still find their own group.
  auto groups = at::cat({at::zeros({20, 1, 4, 4}), at::ones({20, 1, 4, 4})}) + 0.05 * at::randn({40, 1, 4, 4});
  auto g = vlm::pixel_neighbours(groups, 5, /*dims=*/2);
  CHECK(at::equal(g.lt(20), at::arange(40).lt(20).unsqueeze(1).expand({40, 5})));
  CHECK_THROWS_AS(vlm::pixel_neighbours(x, 60), vlm::Error);
  CHECK_THROWS_AS(vlm::pixel_neighbours(x, 3, 16, 7, 30, 20), vlm::Error);
}

TEST_CASE("Deskewing stands a slanted, shifted stroke upright in the centre", "[augment]") {
  // A vertical stroke of columns 13-14 (the centre lies between them), rows 4-23.
  auto upright = at::zeros({1, 1, 28, 28});
  upright.slice(2, 4, 24).slice(3, 13, 15).fill_(1);
  // Slant it by 0.5 pixel per row (the bottom leans right) and move it 3 pixels right: out(x, y) = in(x - 0.5 y - 3, y).
  auto slanted = vlm::warp_images(upright, theta_of(1, -0.5, -3, 0, 1, 0));
  auto central_share = [](const at::Tensor& img) {  // share of the intensity in columns 12-15
    return (img.slice(3, 12, 16).sum() / img.sum()).item<double>();
  };
  REQUIRE(central_share(upright) > 0.99);
  REQUIRE(central_share(slanted) < 0.4);  // the check below can fail
  auto fixed = vlm::deskew_images(slanted);
  CHECK(central_share(fixed) > 0.9);
  CHECK(at::allclose(fixed.sum(), slanted.sum(), 0.05));  // nothing pushed out of the frame
  // Every row's centre of mass back on the centre column (13.5), within a pixel.
  auto cols = at::arange(28, at::kFloat);
  for (int64_t row = 6; row < 22; ++row) {
    auto r = fixed[0][0][row];
    CHECK(std::abs((r * cols).sum().item<double>() / r.sum().item<double>() - 13.5) < 1.0);
  }
  // An upright centred stroke stays as it is, and an empty image stays empty.
  CHECK(at::allclose(vlm::deskew_images(upright), upright, 1e-4, 1e-4));
  CHECK(vlm::deskew_images(at::zeros({1, 1, 28, 28})).abs().sum().item<double>() == 0);
}
