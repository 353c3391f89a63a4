#include "vlm/data/colored_mnist.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "vlm/core/check.h"

namespace vlm {

const std::vector<std::string>& colour_names() {
  static const std::vector<std::string> names = {"red", "green", "blue", "yellow"};
  return names;
}

std::array<float, 3> colour_rgb(int64_t k) {
  static const std::array<std::array<float, 3>, 4> rgb = {{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}}};
  VLM_CHECK(k >= 0 && k < static_cast<int64_t>(rgb.size()), "colour_rgb: no colour ", k);
  return rgb[static_cast<size_t>(k)];
}

at::Tensor draw_colours(int64_t n, uint64_t split) {
  // Its own generator: the colours do not depend on the global seed or on what ran before.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0xC0105EEDULL + split);
  return at::randint(static_cast<int64_t>(colour_names().size()), {n}, gen, at::kLong);
}

LabeledImages tint(const LabeledImages& grey, const at::Tensor& colours) {
  VLM_CHECK(grey.images.dim() == 4 && grey.channels() == 1, "tint: expected grey images (N, 1, H, W), got ",
            grey.images.sizes());
  VLM_CHECK(grey.labels.dim() == 1, "tint: expected one label per image, got labels ", grey.labels.sizes());
  VLM_CHECK(colours.dim() == 1 && colours.size(0) == grey.size(), "tint: ", grey.size(), " images but ",
            colours.numel(), " colours");
  const int64_t K = static_cast<int64_t>(colour_names().size());
  auto table = at::empty({K, 3}, at::kFloat);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < 3; ++c) table[k][c] = colour_rgb(k)[static_cast<size_t>(c)];
  auto rgb = table.index_select(0, colours.to(at::kLong)).view({-1, 3, 1, 1});  // (N, 3, 1, 1)
  return {grey.images * rgb, at::stack({colours.to(at::kLong), grey.labels.to(at::kLong)}, 1)};
}

TrainTest colored_mnist(const TrainTest& grey) {
  return {tint(grey.train, draw_colours(grey.train.size(), 0)), tint(grey.test, draw_colours(grey.test.size(), 1))};
}

}  // namespace vlm
