#include "vlm/data/datasets.h"

#include <deque>
#include <mutex>

#include "vlm/core/check.h"
#include "vlm/data/colored_mnist.h"

namespace vlm {

namespace {
const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

std::deque<ImageDataset>& registry() {
  // The library's own, in the order --help lists them (a deque: a later registration moves none of them).
  static std::deque<ImageDataset> sets = {
      {"mnist", "MNIST digits, the seed's lines (number:7)", "data/mnist", "runs/mnist",
       {FieldSpec::label_field("number", kDigits)}, 32, idx_loader(10), idx_inputs()},
      // Zalando's class names (T-shirt/top ... Ankle boot), one lower-case word each so that the format stays simple.
      {"fashion", "Fashion-MNIST, word labels (item:sneaker)", "/usr/share/datasets/fashion-mnist", "runs/fashion",
       {FieldSpec::label_field(
           "item", {"tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"})},
       32, idx_loader(10), idx_inputs()},
      // Made from MNIST's files. Its longest line, image:ABCDEFGH, colour:yellow, number:7. (40 characters), is padded
      // to 48.
      {"colored", "Colored MNIST, two label fields (colour:red, number:7), made from MNIST's files", "data/mnist",
       "runs/colored",
       {FieldSpec::label_field("colour", colour_names()), FieldSpec::label_field("number", kDigits)},
       48,
       [](const std::string& dir, int64_t limit_train, int64_t limit_test) {
         return colored_mnist(load_mnist(dir, limit_train, limit_test, 10));
       },
       idx_inputs()},
  };
  return sets;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

std::vector<int64_t> ImageDataset::label_sizes() const {
  std::vector<int64_t> out;
  for (const auto& l : labels) out.push_back(l.num_classes());
  return out;
}

int64_t ImageDataset::num_classes() const {
  int64_t n = 1;
  for (int64_t s : label_sizes()) n *= s;
  return n;
}

SequenceFormat ImageDataset::format(const std::string& alphabet, int64_t image_length, int64_t block) const {
  return SequenceFormat::image_and_labels(labels, alphabet, image_length, block);
}

ImageDataset::Loader idx_loader(int64_t num_classes) {
  return [num_classes](const std::string& dir, int64_t limit_train, int64_t limit_test) {
    return load_mnist(dir, limit_train, limit_test, num_classes);
  };
}

ImageDataset::Inputs idx_inputs() {
  return [](const std::string& dir) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"})
      out.emplace_back(stem, find_idx_file(dir, stem));
    return out;
  };
}

void register_image_dataset(ImageDataset d) {
  VLM_CHECK(!d.name.empty() && !d.labels.empty() && d.load && d.inputs, "register_image_dataset: '", d.name,
            "' needs a name, label fields, a loader and its input files");
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const auto& e : registry())
    VLM_CHECK(e.name != d.name, "register_image_dataset: '", d.name, "' is registered twice");
  registry().push_back(std::move(d));
}

const ImageDataset& image_dataset(const std::string& name) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const auto& d : registry())
    if (d.name == name) return d;
  std::string names;
  for (const auto& d : registry()) names += (names.empty() ? "" : ", ") + d.name;
  VLM_FAIL("--dataset must be one of ", names, ", got '", name,
           "' (other MNIST-shaped data: --data_dir and --format)");
}

std::vector<std::string> image_dataset_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> out;
  for (const auto& d : registry()) out.push_back(d.name);
  return out;
}

}  // namespace vlm
