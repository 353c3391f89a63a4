#pragma once
// Generation and what is measured on it, each usable alone. For a codec field (the image) and a label field (the
// number) of a sequence format, generation completes the prompt of the template that ends with the codec field
// ("number:7, image:") for every word of the label field:
//
//   auto gen  = vlm::generate_per_class(model, tok, format, image, number, 100, options, /*constrained=*/true);
//   auto free = vlm::generate_per_class(model, tok, format, image, number, 100, options, /*constrained=*/false);
//   auto m    = vlm::generation_metrics(gen, free, options, &train_strings);   // invalid rates, distinct, memorised
//   auto g    = vlm::grade_generation(*codec, *grader, gen);   // decode + reference classifier, per class
//   auto c    = vlm::reference_classifier_ceiling(*codec, *grader, test_items, test_labels);
//
// A grader is any reference classifier of the domain (vlm/eval/grader.h): items (N, ...) -> (N, C) probabilities.
// The model runs on its own device; results are on the CPU.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "vlm/eval/grader.h"
#include "vlm/models/gpt.h"
#include "vlm/sample/sampler.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_codec.h"

namespace vlm {

class ProcessGroup;

/// Generated values of a codec field for every class of a label field, N each, under the format's constraint or not.
struct Generation {
  std::vector<std::string> words;                     ///< the classes, one row each
  std::vector<std::vector<std::string>> completions;  ///< [class][sample], the text after the prompt
  std::vector<std::vector<std::string>> values;       ///< [class][sample], the codec field's letters; "" when invalid
  int64_t invalid = 0, total = 0;
  int64_t tokens = 0;
  double seconds = 0;
  /// All values, class by class ("" for the invalid ones).
  std::vector<std::string> all_values() const;
};
/// `per_class` completions per class of the prompt of the template that ends with `codec_field`; that template must
/// write only label fields before it. The classes are the combinations of those label fields' words (vlm::
/// LabelCombinations: "red 7", ...; the words themselves for one field); with `label_field` >= 0 the template must
/// write that field alone. A completion is valid when prompt + completion parses as a
/// line of the format. With `only_class` >= 0, only that class's row is generated (the others stay empty).
Generation generate_per_class(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                              int64_t codec_field, int64_t label_field, int64_t per_class,
                              const SamplerOptions& options, bool constrained, int64_t only_class = -1);
/// Whether generate_per_class can run on this format and pair of fields (else why not in `reason`).
bool can_generate_per_class(const SequenceFormat& format, int64_t codec_field, int64_t label_field,
                            std::string* reason = nullptr);

/// Fraction of distinct strings among `strings` (a repeated string counts once; "" is a string like any other).
double distinct_fraction(const std::vector<std::string>& strings);
/// Fraction of `strings` that occur in `train`.
double memorised_fraction(const std::vector<std::string>& strings, const std::unordered_set<std::string>& train);

struct GenerationMetrics {
  int64_t samples_per_class = 0;
  double temperature = 1.0;
  int64_t top_k = 0;
  double invalid_rate_constrained = 0, invalid_rate_unconstrained = 0;
  double distinct_fraction = 0;                ///< of the constrained strings
  std::optional<double> memorised_fraction;    ///< of the constrained strings; only with training strings
  double seconds = 0;                          ///< constrained generation's time
  nlohmann::json to_json() const;
};
/// Metrics of a constrained and an unconstrained generation (`train` may be null: no memorisation).
GenerationMetrics generation_metrics(const Generation& constrained, const Generation& unconstrained,
                                     const SamplerOptions& options,
                                     const std::unordered_set<std::string>* train = nullptr);


/// Generated strings decoded by the codec and graded by the reference classifier: the fraction recognised as the
/// class asked for (an invalid string counts as not recognised).
struct GradedGeneration {
  std::vector<std::string> words;
  double graded_accuracy = 0;
  std::vector<double> per_class;     ///< one per word; NaN for a class with no samples
  std::vector<int64_t> recognised;   ///< counts per class
  std::vector<int64_t> samples;      ///< counts per class
  nlohmann::json to_json() const;    ///< {"graded_accuracy", "graded_accuracy_per_class": {word: accuracy}}
};
GradedGeneration grade_generation(const TokenCodec& codec, const Grader& grader, const Generation& gen);
void write_graded_accuracy_svg(const std::string& path, const GradedGeneration& graded);

/// The ceiling the codec allows: the reference classifier on real test items and on their codec round trips. With a
/// data-parallel `group` every rank calls it with the same items and grades its contiguous share; the counts are summed.
struct ReferenceCeiling {
  double accuracy_real_test = 0, accuracy_codec_reconstructions = 0;
  nlohmann::json to_json() const;
};
ReferenceCeiling reference_classifier_ceiling(const TokenCodec& codec, const Grader& grader,
                                              const at::Tensor& items, const at::Tensor& labels,
                                              ProcessGroup* group = nullptr);

/// Decoded values of `gen`, one row per class, `columns` per row (invalid = black), as a PNG, when the codec draws
/// its items (TokenCodec::write_grid_png); returns whether it wrote one.
bool write_generation_grid(const std::string& path, const TokenCodec& codec, const Generation& gen, int64_t columns);

}  // namespace vlm
