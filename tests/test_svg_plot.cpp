#include <catch2/catch.hpp>

#include <regex>

#include "test_helpers.h"
#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/io/svg_plot.h"

namespace {
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("A line chart draws one point per value, error bars and an escaped title", "[plot]") {
  vlm::plot::Series a{"exact", {500, 1000, 2000}, {0.78, 0.85, 0.93}, {0.01, 0.01, 0.005}};
  vlm::plot::Series b{"sampled", {500, 1000, 2000}, {0.7, 0.8, 0.9}, {}};
  auto svg = vlm::plot::line_chart({a, b}, {"Accuracy <test>", "iteration", "accuracy"});
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(count(svg, "<circle") == 6);
  CHECK(count(svg, "<polyline") == 2);
  CHECK(count(svg, "<path d=\"M") == 3);  // only series a has error bars
  CHECK(svg.find("Accuracy &lt;test&gt;") != std::string::npos);
  CHECK_THROWS_AS(vlm::plot::line_chart({{"bad", {1, 2}, {1}, {}}}, {}), vlm::Error);
}

TEST_CASE("A point's vertical position follows its value", "[plot]") {
  vlm::plot::ChartOptions o{"", "", "", 640, 420, 0.0, 1.0};
  auto svg = vlm::plot::line_chart({{"s", {0, 1}, {0.0, 1.0}, {}}}, o);
  std::regex cy("cy=\"([0-9.]+)\"");
  std::vector<double> ys;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cy); it != std::sregex_iterator(); ++it)
    ys.push_back(std::stod((*it)[1]));
  REQUIRE(ys.size() == 2);
  CHECK(ys[0] == Approx(420 - 55));  // y = 0 at the bottom of the frame
  CHECK(ys[1] == Approx(40));        // y = 1 at the top
}

TEST_CASE("A heatmap writes every cell value and a logo stacks letters by frequency", "[plot]") {
  auto svg = vlm::plot::heatmap({{5, 1}, {0, 7}}, {"0", "1"}, {"0", "1"}, {"confusion", "predicted", "true"});
  CHECK(count(svg, "<rect x=") == 4);
  CHECK(svg.find(">7</text>") != std::string::npos);

  // One panel, two positions: position 1 is all 'A' (full information), position 2 is uniform over 2 letters.
  std::vector<std::vector<std::map<char, double>>> counts = {{{{'A', 10}}, {{'B', 5}, {'C', 5}}}};
  auto logo = vlm::plot::sequence_logo({"digit 0"}, counts, 4, "logo");
  CHECK(count(logo, ">A</text>") == 1);
  CHECK(count(logo, ">B</text>") == 1);
  // The full-information letter is scaled to log2(4) = 2 bits, each half-letter to 0.5 * (2 - 1) = 0.5 bit.
  std::regex scale("scale\\(([0-9.]+),([0-9.]+)\\)[^>]*>([A-Z])<");
  std::map<char, double> sy;
  for (auto it = std::sregex_iterator(logo.begin(), logo.end(), scale); it != std::sregex_iterator(); ++it)
    sy[(*it)[3].str()[0]] = std::stod((*it)[2]);
  REQUIRE(sy.size() == 3);
  CHECK(sy['A'] / sy['B'] == Approx(4.0).epsilon(0.01));
  CHECK(sy['B'] == Approx(sy['C']));
}

TEST_CASE("save_svg writes the file", "[plot]") {
  vlm::testing::TempDir dir;
  auto svg = vlm::plot::bar_chart({"a", "b"}, {1, 2}, {"usage", "code", "count"});
  vlm::plot::save_svg(dir.file("x.svg"), svg);
  CHECK(vlm::read_text_file(dir.file("x.svg")) == svg);
}
