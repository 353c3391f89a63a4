#include "vlm/data/datasets.h"

#include "vlm/core/check.h"

namespace vlm {

namespace {
const std::vector<ImageDataset>& all() {
  static const std::vector<ImageDataset> sets = {
      {"mnist", "data/mnist", "runs/mnist", "number", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
      // Zalando's class names (T-shirt/top ... Ankle boot), one lower-case word each so that the format stays simple.
      {"fashion",
       "/usr/share/datasets/fashion-mnist",
       "runs/fashion",
       "item",
       {"tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"}},
  };
  return sets;
}
}  // namespace

const ImageDataset& image_dataset(const std::string& name) {
  for (const auto& d : all())
    if (d.name == name) return d;
  VLM_FAIL("--dataset must be mnist or fashion, got '", name, "' (other MNIST-shaped data: --data_dir and --format)");
}

std::vector<std::string> image_dataset_names() {
  std::vector<std::string> out;
  for (const auto& d : all()) out.push_back(d.name);
  return out;
}

}  // namespace vlm
