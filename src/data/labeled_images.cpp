#include "vlm/data/labeled_images.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

LabeledImages LabeledImages::slice(int64_t begin, int64_t end) const {
  const int64_t n = size();
  end = std::min(end, n);
  VLM_CHECK(begin >= 0 && begin <= end, "LabeledImages::slice: bad range [", begin, ", ", end, ") of ", n, " rows");
  return {images.slice(0, begin, end), labels.slice(0, begin, end)};
}

LabeledImages LabeledImages::head(int64_t n) const { return n <= 0 ? *this : slice(0, std::min(n, size())); }

TrainValidation split_train_validation(const LabeledImages& all, double validation_fraction) {
  VLM_CHECK(validation_fraction > 0 && validation_fraction < 1, "validation fraction must be in (0, 1), got ",
            validation_fraction);
  const int64_t n = all.size();
  const int64_t v = static_cast<int64_t>(std::llround(n * validation_fraction));
  VLM_CHECK(v >= 1 && n - v >= 1, "cannot split ", n, " images into train and validation (fraction ",
            validation_fraction, ")");
  return {all.slice(0, n - v), all.slice(n - v, n)};
}

at::Tensor LabeledImages::label_column(int64_t k) const {
  VLM_CHECK(labels.defined(), "LabeledImages: no labels");
  VLM_CHECK(k >= 0 && k < label_columns(), "LabeledImages: no label column ", k, " (labels ", labels.sizes(), ")");
  return labels.dim() == 1 ? labels : labels.select(1, k);
}

at::Tensor LabeledImages::combined_labels(const std::vector<int64_t>& sizes) const {
  VLM_CHECK(static_cast<int64_t>(sizes.size()) == label_columns(), "LabeledImages: ", label_columns(),
            " label columns, but classes were given for ", sizes.size());
  at::Tensor out = at::zeros({size()}, at::kLong);
  for (size_t k = 0; k < sizes.size(); ++k) {
    auto column = label_column(static_cast<int64_t>(k)).to(at::kLong);
    VLM_CHECK(size() == 0 || (column.min().item<int64_t>() >= 0 && column.max().item<int64_t>() < sizes[k]),
              "LabeledImages: label column ", k, " is not in [0, ", sizes[k], ")");
    out = out * sizes[k] + column;
  }
  return out;
}

std::vector<std::string> label_words(const LabeledImages& data, const std::vector<std::string>& words,
                                     int64_t column) {
  auto labels = data.label_column(column).to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = labels.data_ptr<int64_t>();
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(labels.numel()));
  for (int64_t i = 0; i < labels.numel(); ++i) {
    VLM_CHECK(p[i] >= 0 && p[i] < static_cast<int64_t>(words.size()), "label ", p[i], " of image ", i, " has no word (",
              words.size(), " words)");
    out.push_back(words[static_cast<size_t>(p[i])]);
  }
  return out;
}

}  // namespace vlm
