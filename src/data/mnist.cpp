#include "vlm/data/mnist.h"

#include <cmath>
#include <filesystem>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/data/idx.h"

namespace vlm {

std::string find_idx_file(const std::string& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  VLM_CHECK(fs::is_directory(dir), "--data_dir='", dir,
            "' is not a directory: it must hold the MNIST IDX files (scripts/setup.sh fetches them into data/mnist)");
  fs::path raw = fs::path(dir) / stem, gz = fs::path(dir) / (stem + ".gz");
  if (fs::exists(raw)) return raw.string();
  if (fs::exists(gz)) return gz.string();
  VLM_FAIL("--data_dir='", dir, "' has no '", stem, "' (nor '", stem,
           ".gz'); expected the four standard IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte,"
           " t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (raw or .gz)");
}

LabeledImages load_labeled_images(const std::string& images_path, const std::string& labels_path,
                                  int64_t num_classes) {
  IdxReadOptions image_opts;
  image_opts.min_rank = 3;
  IdxReadOptions label_opts;
  label_opts.max_rank = 1;
  IdxArray images = read_idx(images_path, image_opts);
  IdxArray labels = read_idx(labels_path, label_opts);
  check_idx_labels(labels, num_classes, labels_path);
  VLM_CHECK(images.count() == labels.count(), "'", images_path, "' holds ", images.count(), " images but '",
            labels_path, "' holds ", labels.count(), " labels: they must agree");
  LabeledImages out{idx_to_image_tensor(images, images_path), idx_to_label_tensor(labels, labels_path)};
  return out;
}

TrainTest load_mnist(const std::string& data_dir, int64_t limit_train, int64_t limit_test, int64_t num_classes) {
  TrainTest m;
  m.train = load_labeled_images(find_idx_file(data_dir, "train-images-idx3-ubyte"),
                                find_idx_file(data_dir, "train-labels-idx1-ubyte"), num_classes)
                .head(limit_train);
  m.test = load_labeled_images(find_idx_file(data_dir, "t10k-images-idx3-ubyte"),
                               find_idx_file(data_dir, "t10k-labels-idx1-ubyte"), num_classes)
               .head(limit_test);
  VLM_CHECK(m.train.height() == m.test.height() && m.train.width() == m.test.width(), "--data_dir='", data_dir,
            "': train images are ", m.train.height(), "x", m.train.width(), " but test images are ",
            m.test.height(), "x", m.test.width());
  return m;
}

}  // namespace vlm
