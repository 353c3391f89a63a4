#pragma once
// Classification figures a paper would report: accuracy with its standard error, top-2, the confusion matrix and
// its largest off-diagonal cells (named by the label words), and the expected calibration error of the posterior.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace vlm {

/// Binomial standard error of an accuracy p measured on n examples: sqrt(p (1 - p) / n).
double standard_error(double p, int64_t n);

/// Expected calibration error: examples binned by their top probability into `bins` equal-width bins; the
/// example-weighted mean of |accuracy - mean confidence| over the bins. probs (N, C) rows summing to 1, labels (N).
double expected_calibration_error(const at::Tensor& probs, const at::Tensor& labels, int64_t bins = 15);

struct ConfusionCell {
  int64_t truth = 0, predicted = 0, count = 0;
  double rate = 0;  ///< count / examples of this true class
};

struct ClassificationMetrics {
  int64_t n = 0;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  ///< the label field's words (empty: class indices are the names)
  double accuracy = 0, std_error = 0;
  double top2_accuracy = -1;  ///< -1 when no probabilities were given
  double ece = -1;            ///< -1 when no probabilities were given
  int64_t invalid = 0;        ///< predictions that were not a class (e.g. an unparsable sampled answer)
  std::vector<std::vector<int64_t>> confusion;  ///< [truth][predicted]
  std::vector<ConfusionCell> top_confusions;    ///< largest off-diagonal cells, by rate
  nlohmann::json to_json() const;
};

/// predicted (N) int64 with -1 for invalid answers, labels (N) int64 in [0, C) for the C = class_names.size() classes;
/// probs (N, C) optional (undefined tensor = none).
ClassificationMetrics classification_metrics(const at::Tensor& predicted, const at::Tensor& labels,
                                             std::vector<std::string> class_names, const at::Tensor& probs = {},
                                             int64_t top_confusions = 6);

}  // namespace vlm
