#pragma once
// Classification with the GPT: predicting a label field of a sequence format from the fields written before it.
//
//   auto c = vlm::classify_exact(model, tokenizer, format, records);          // predicted classes + log-likelihoods
//   auto m = vlm::classify_exact(model, tokenizer, format, records, labels);  // ... and the metrics
//
// Exact: for each record, the prompt up to the label field ("image:ABCDEFGH, number:") runs once, and each word w of
// the field's vocabulary is scored by its exact log-likelihood log p(w | prompt) under the model's full softmax (a
// word that begins another word, "shirt" before "shirts", also by the character that ends the field), so
// multi-character words ("sneaker") work; the posterior is the softmax over the words. For one-character words
// (the digits) that is the single forward pass of the seed's argmax. classify_sampled() is the seed's way (sample the
// answer and parse it); accuracy_over_checkpoints() runs classify_exact on a series of checkpoints.
// Every function runs on the model's device (model->wte->weight.device()) and returns CPU results.
//
// Data-parallel (a ProcessGroup of W > 1 ranks, every rank calling with the same records): rank r classifies the
// contiguous share [N r / W, N (r+1) / W) of the records and the per-record results are gathered, so every rank
// returns the figures of all N. Exact classification then equals one process's to within summation order; sampled
// classification draws rank r's answers from its own stream (rank 0 keeps one process's), equal in distribution.
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
#include "vlm/text/sequence_format.h"

namespace vlm {

class ProcessGroup;

struct ExactClassification {
  std::vector<int64_t> predicted;  ///< the class (index of the word) per record
  std::vector<std::string> words;  ///< the label field's vocabulary
  at::Tensor log_probs;            ///< (N, C) float: log p(word | prompt) under the full softmax
  at::Tensor probs;                ///< (N, C) float: the posterior over the C words (softmax of log_probs)
  bool has_labels = false;         ///< metrics are filled only when labels were given
  ClassificationMetrics metrics;
  double seconds = 0;
  /// metrics.to_json() plus "seconds" (just {"n", "seconds"} without labels).
  nlohmann::json to_json() const;
};

/// Classifies the records' `label_field` (-1: the format's first label field) from the codec fields before it in its
/// reading template (SequenceFormat::reading_template); label fields that template writes before it are not read
/// from the records but summed over (colour before number: p(number) = sum over colours of p(colour, number)).
/// Prompts of equal length share a batch of up to `batch_size`; with `labels` (N) int64 class indices (an undefined tensor = none) also
/// computes the metrics. The model is put in eval mode for the call and its previous mode restored. With a `group`,
/// sharded across its ranks (above); `seconds` is then the wall time of the whole, gather included.
ExactClassification classify_exact(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                   const std::vector<Record>& records, const at::Tensor& labels = {},
                                   int64_t batch_size = 512, int64_t label_field = -1, ProcessGroup* group = nullptr);

/// Classifies every label field at once: the posterior over their combinations (vlm::LabelCombinations, e.g. "red 7"),
/// each field scored after the ones the reading template writes before it. `labels` are combination indices. For a
/// format with one label field it is classify_exact.
ExactClassification classify_joint(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                   const std::vector<Record>& records, const at::Tensor& labels = {},
                                   int64_t batch_size = 512, ProcessGroup* group = nullptr);

/// Fraction of predictions equal to labels.
double classification_accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels);

/// Writes the confusion matrix heatmap (SVG) of exact or sampled metrics.
void write_confusion_svg(const std::string& path, const ClassificationMetrics& metrics, const std::string& title);

/// The seed's way: complete the prompt ("image:ABCDEFGH, number:") by sampling, without constraint, up to the
/// character that ends the field; the answer counts when it is exactly one of the words.
struct SampledClassification {
  std::vector<int64_t> predicted;  ///< -1 for an answer that is not a word of the field
  ClassificationMetrics metrics;   ///< invalid = answers that are not a word
  double seconds = 0;
  nlohmann::json to_json() const;  ///< metrics.to_json() plus "seconds"
};
SampledClassification classify_sampled(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                       const std::vector<Record>& records, const at::Tensor& labels,
                                       SamplerOptions options, int64_t label_field = -1, ProcessGroup* group = nullptr);
/// The class of a sampled completion ("7." -> 7, "sneaker." -> 7): the word before `delimiter`, -1 if none.
int64_t parse_word_answer(const FieldSpec& field, const std::string& completion, char delimiter);

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
/// Loads each GPT checkpoint onto `device`, classifies exactly (classify_joint in the checkpoint's own format: `labels`
/// are combination indices, the classes for one label field), records its "iter".
CheckpointAccuracy accuracy_over_checkpoints(const std::vector<std::string>& checkpoints,
                                             const std::vector<Record>& records, const at::Tensor& labels,
                                             int64_t batch_size = 512, c10::Device device = c10::kCPU,
                                             ProcessGroup* group = nullptr);
void write_accuracy_over_checkpoints_svg(const std::string& path, const CheckpointAccuracy& accuracy);

}  // namespace vlm
