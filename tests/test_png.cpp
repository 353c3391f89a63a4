// PNG figures: grid placement by hand, the file a PNG decoder reads back, and the scatter plot's colours.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

// The PNG reader's implementation, here only: the library writes PNGs and never reads them.
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb_image.h>
#pragma GCC diagnostic pop

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/io/png.h"

TEST_CASE("An image grid places image i at row i / cols, column i % cols", "[png]") {
  auto images = at::arange(5, at::kFloat).view({5, 1, 1, 1}).expand({5, 1, 2, 3}).contiguous() / 10;  // (5, 1, 2, 3)
  auto grid = vlm::image_grid(images, /*cols=*/3, /*padding=*/1, /*pad_value=*/-1);
  REQUIRE(grid.sizes() == at::IntArrayRef({1, 2 * 3 + 1, 3 * 4 + 1}));
  CHECK(grid[0][1][1].item<float>() == Approx(0.0));
  CHECK(grid[0][1][5].item<float>() == Approx(0.1));
  CHECK(grid[0][4][1].item<float>() == Approx(0.3));   // image 3: second row, first column
  CHECK(grid[0][5][7].item<float>() == Approx(0.4));   // image 4: second row, second column
  CHECK(grid[0][4][9].item<float>() == Approx(-1.0));  // the empty sixth cell
  CHECK(grid[0][0][0].item<float>() == Approx(-1.0));  // padding
}

TEST_CASE("write_png writes a file a PNG decoder reads back pixel for pixel", "[png]") {
  vlm::testing::TempDir dir;
  auto gray = at::linspace(0, 1, 6 * 5).view({6, 5});  // (H, W)
  vlm::write_png(dir.file("g.png"), gray);
  int w = 0, h = 0, c = 0;
  unsigned char* data = stbi_load(dir.file("g.png").c_str(), &w, &h, &c, 0);
  REQUIRE(data != nullptr);
  CHECK(w == 5);
  CHECK(h == 6);
  CHECK(c == 1);
  CHECK(static_cast<int>(data[0]) == 0);
  CHECK(static_cast<int>(data[29]) == 255);
  CHECK(static_cast<int>(data[7]) == static_cast<int>(std::lround(7.0 / 29 * 255)));
  stbi_image_free(data);
  CHECK_THROWS_WITH(vlm::write_png(dir.file("x.png"), at::zeros({2, 4, 4})), Catch::Contains("x.png"));
  CHECK_THROWS_WITH(vlm::write_png(dir.file("g.png") + "/x.png", gray), Catch::Contains("g.png"));  // parent is a file
}

TEST_CASE("A scatter plot draws each point in its label's colour", "[png]") {
  auto points = at::tensor({0.0f, 0.0f, 1.0f, 1.0f}).view({2, 2});
  auto labels = at::tensor({0, 3}, at::kLong);
  vlm::ScatterOptions o;
  o.width = 300;
  o.height = 300;
  auto rgb = vlm::scatter_plot(points, labels, o);
  REQUIRE(rgb.sizes() == at::IntArrayRef({3, 300, 300}));
  // Point (0, 0) sits at the bottom-left of the plot area, (1, 1) at the top-right (margins 20, legend 90).
  CHECK(rgb[0][279][20].item<float>() == Approx(0.122f));  // tab10 blue for label 0
  CHECK(rgb[2][279][20].item<float>() == Approx(0.706f));
  CHECK(rgb[0][20][189].item<float>() == Approx(0.839f));  // tab10 red for label 3
  CHECK(rgb[0][150][100].item<float>() == 1.0f);          // background
}
