// Loads an MNIST-format data set, validates it and prints what the pipeline will see: the first stage of the main job.
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "vlm/data/mnist.h"

int main(int argc, char** argv) {
  return vlm::examples::run_main("check_data", [&] {
    vlm::examples::CommonOptions common;
    vlm::Flags flags("check_data", "Validate an MNIST-format IDX data set and print its splits.");
    vlm::examples::add_common_flags(flags, common);
    if (!flags.parse(argc, argv)) return 0;
    vlm::examples::start(flags, common);

    vlm::TrainTest mnist = vlm::load_mnist(common.data_dir);
    auto split = vlm::split_train_validation(mnist.train);
    auto describe = [](const char* name, const vlm::LabeledImages& d) {
      auto counts = at::bincount(d.labels, {}, 10);
      std::string hist;
      for (int64_t k = 0; k < counts.size(0); ++k) hist += fmt::format("{}{}", k ? " " : "", counts[k].item<int64_t>());
      fmt::print("{:<11} {:>6} images {}x{}  mean pixel {:.4f}  per-label counts [{}]\n", name, d.size(), d.height(),
                 d.width(), d.images.mean().item<float>(), hist);
    };
    describe("train", split.train);
    describe("validation", split.validation);
    describe("test", mnist.test);
    return 0;
  });
}
