// Writes the seed corpus of fuzz_checkpoint (fuzz/corpus/fuzz_checkpoint/): small valid checkpoints and damaged
// variants. Usage: make_checkpoint_seeds <dir>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include "vlm/core/atomic_file.h"
#include "vlm/io/checkpoint.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  at::manual_seed(0);
  torch::nn::Linear model(3, 2), wide(4, 2);
  vlm::CheckpointWriter("toy", 1, {{"in", 3}}).add_module("model", *model).add_tensor("t", at::arange(4.0))
      .save(dir + "/valid.pt");
  vlm::CheckpointWriter("gpt", 7, {{"n_layer", 4}}).save(dir + "/header_only.pt");
  vlm::CheckpointWriter("toy", 1).add_module("model", *wide).save(dir + "/wrong_shape.pt");
  {
    torch::NoGradGuard ng;
    model->weight[0][1] = NAN;
  }
  vlm::CheckpointWriter("toy", 1).add_module("model", *model).add_tensor("t", at::full({2}, INFINITY))
      .save(dir + "/nan_weight.pt");
  // Damaged copies of the valid file: truncated, and one byte flipped in the middle.
  const std::string valid = vlm::read_text_file(dir + "/valid.pt");
  vlm::write_text_atomically(dir + "/truncated.pt", valid.substr(0, valid.size() / 2));
  std::string flipped = valid;
  flipped[flipped.size() / 2] ^= 0x5a;
  vlm::write_text_atomically(dir + "/flipped.pt", flipped);
  std::printf("wrote seeds to %s (valid.pt is %zu bytes)\n", dir.c_str(), valid.size());
  return 0;
}
