#pragma once
// Labelled images, of any data set: images (N, C, H, W) with one label column per label field, a data set's training
// and test files, and the seed's train / validation split. Torch types only; loading is each data set's
// (vlm/data/mnist.h reads the IDX files, vlm/data/datasets.h names the data sets).
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vlm {

/// Images `[N, C, H, W]` float in [0, 1] (C = 1 for MNIST) and labels int64 on the CPU: `[N]`, or `[N, L]` for L label
/// fields (Colored MNIST: colour, digit), one column per label field of the sequence format, in its order.
struct LabeledImages {
  at::Tensor images;
  at::Tensor labels;
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  /// L: the number of label columns (1 for labels `[N]`).
  int64_t label_columns() const { return labels.dim() == 1 ? 1 : labels.size(1); }
  /// Column k of the labels, `[N]`.
  at::Tensor label_column(int64_t k) const;
  /// One class per item for all label columns together: the mixed-radix index with column 0 most significant, column
  /// k having sizes[k] classes (vlm::LabelCombinations' numbering); the labels themselves for one column.
  at::Tensor combined_labels(const std::vector<int64_t>& sizes) const;
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  /// Rows [begin, end) as views; end is clamped to size(). Throws on begin > end or begin out of range.
  LabeledImages slice(int64_t begin, int64_t end) const;
  /// The first min(n, size()) rows; n <= 0 means all.
  LabeledImages head(int64_t n) const;
};

/// A data set's two files: the training file and the held-out test file.
struct TrainTest {
  LabeledImages train;  ///< the 60k training file on MNIST (both the VQ-VAE and the language model split it)
  LabeledImages test;   ///< t10k on MNIST, held out for all final numbers
};

/// The label of each image written as its word (`words[label]`, e.g. "sneaker"), from label column `column`; a label
/// without a word is an error.
std::vector<std::string> label_words(const LabeledImages& data, const std::vector<std::string>& words,
                                     int64_t column = 0);

/// The seed's split of the training file: the first 5/6 to train, the last 1/6 to validate
/// (train[0:50000] and train[50000:60000] on MNIST). Used by the VQ-VAE and the language model alike.
struct TrainValidation {
  LabeledImages train, validation;
};
TrainValidation split_train_validation(const LabeledImages& all, double validation_fraction = 1.0 / 6.0);

}  // namespace vlm
