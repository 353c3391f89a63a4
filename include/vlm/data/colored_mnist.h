#pragma once
// Colored MNIST: each MNIST digit tinted with one of four colours, a second label field next to the digit's. Made
// deterministically from the real MNIST files (no download): the colour of image i of a split is drawn from a
// generator seeded with the split and i, uniformly and independently of the digit, and the grey image is multiplied
// by the colour's RGB value. Lines read  image:ABCDEFGH, colour:red, number:7.  (vlm::image_dataset("colored")).
//
//   vlm::TrainTest coloured = vlm::colored_mnist(vlm::load_mnist("data/mnist"));
//   // images (N, 3, 28, 28), labels (N, 2): colour, digit
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "vlm/data/mnist.h"

namespace vlm {

/// The colours' names, in class order: red, green, blue, yellow.
const std::vector<std::string>& colour_names();
/// The RGB value of colour k.
std::array<float, 3> colour_rgb(int64_t k);

/// Grey images (N, 1, H, W) -> RGB (N, 3, H, W), image i tinted with colours[i]; labels become (N, 2): colour, digit.
LabeledImages tint(const LabeledImages& grey, const at::Tensor& colours);
/// The colour of each of `n` images of a split (`split` 0 = training file, 1 = test file): uniform, reproducible.
at::Tensor draw_colours(int64_t n, uint64_t split);
/// Both splits of MNIST tinted.
TrainTest colored_mnist(const TrainTest& grey);

}  // namespace vlm
