#pragma once
// Classification with the GPT. One function runs the model for exact classification:
//
//   auto c = vlm::classify_exact(model, tokenizer, images);          // predicted digits + log-probabilities
//   auto m = vlm::classify_exact(model, tokenizer, images, labels);  // ... and the metrics (accuracy, ECE, confusion)
//
// For each image-letter string, one forward pass on "image:ABCDEFGH, number:" and the argmax of the next-token
// logits restricted to the ten digit tokens (no sampling, no generation loop). classify_sampled() is the seed's way
// (sample the answer and parse it); accuracy_over_checkpoints() runs classify_exact on a series of checkpoints.
// Every function runs on the model's device (model->wte->weight.device()) and returns CPU results.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/eval/metrics.h"
#include "vlm/models/gpt.h"
#include "vlm/sample/sampler.h"
#include "vlm/text/char_tokenizer.h"

namespace vlm {

struct ExactClassification {
  std::vector<int64_t> predicted;  ///< the digit per image
  at::Tensor log_probs;            ///< (N, 10) float: log p(digit | prompt) under the full next-token softmax
  at::Tensor probs;                ///< (N, 10) float: the posterior over the ten digits (renormalised)
  bool has_labels = false;         ///< metrics are filled only when labels were given
  ClassificationMetrics metrics;
  double seconds = 0;
  /// metrics.to_json() plus "seconds" (just {"n", "seconds"} without labels).
  nlohmann::json to_json() const;
};

/// Classifies images in batches of `batch_size` prompts (prompts of equal length share a batch); with `labels` (N)
/// int64 (an undefined tensor = none) also computes the metrics. The model is put in eval mode for the call and its
/// previous mode restored.
ExactClassification classify_exact(GPT& model, const CharTokenizer& tokenizer, const std::vector<std::string>& images,
                                   const at::Tensor& labels = {}, int64_t batch_size = 512);

/// Fraction of predictions equal to labels.
double classification_accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels);

/// Writes the confusion matrix heatmap (SVG) of exact or sampled metrics.
void write_confusion_svg(const std::string& path, const ClassificationMetrics& metrics, const std::string& title);

/// The seed's way: complete "image:ABCDEFGH, number:" by sampling, parse the text before '.', compare.
struct SampledClassification {
  std::vector<int64_t> predicted;  ///< -1 for an answer that is not a single digit
  ClassificationMetrics metrics;   ///< invalid = answers that are not a single digit
  double seconds = 0;
  nlohmann::json to_json() const;  ///< metrics.to_json() plus "seconds"
};
SampledClassification classify_sampled(GPT& model, const CharTokenizer& tokenizer,
                                       const std::vector<std::string>& images, const at::Tensor& labels,
                                       const SamplerOptions& options);
/// Parses a sampled answer "7." -> 7; anything else -> -1.
int64_t parse_digit_answer(const std::string& completion);

/// Exact accuracy of each checkpoint of a training run (for the accuracy-over-training chart).
struct CheckpointAccuracy {
  struct Row {
    std::string checkpoint;
    int64_t iter = 0;
    double accuracy = 0, std_error = 0;
  };
  std::vector<Row> rows;
  nlohmann::json to_json() const;  ///< an array of {"checkpoint", "iter", "accuracy", "std_error"}
};
/// Loads each GPT checkpoint onto `device`, classifies exactly, records its "iter" meta.
CheckpointAccuracy accuracy_over_checkpoints(const std::vector<std::string>& checkpoints,
                                             const std::vector<std::string>& images, const at::Tensor& labels,
                                             int64_t batch_size = 512, c10::Device device = c10::kCPU);
void write_accuracy_over_checkpoints_svg(const std::string& path, const CheckpointAccuracy& accuracy);

}  // namespace vlm
