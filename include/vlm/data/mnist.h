#pragma once
// MNIST-shaped data sets: a directory with the four standard IDX files, each raw or `.gz`:
//   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
// Any image size works; the seed's splits are fractions so that other data sets split the same way.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "vlm/data/labeled_images.h"

namespace vlm {

/// `dir/stem` or `dir/stem.gz`, whichever exists; throws naming both and the --data_dir fix if neither does.
std::string find_idx_file(const std::string& dir, const std::string& stem);

/// Reads an image file and a label file and checks that they agree in count and that every label is in
/// 0..num_classes-1 (an error names the label file, the index and the value).
LabeledImages load_labeled_images(const std::string& images_path, const std::string& labels_path,
                                  int64_t num_classes = 10);

/// Loads the four standard files from `data_dir`. `limit_train`/`limit_test` > 0 keep only the first rows.
/// Labels outside 0..num_classes-1 anywhere in the files are rejected at load time.
TrainTest load_mnist(const std::string& data_dir, int64_t limit_train = 0, int64_t limit_test = 0,
                 int64_t num_classes = 10);

}  // namespace vlm
