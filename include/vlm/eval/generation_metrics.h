#pragma once
// Generation and what is measured on it, each usable alone:
//
//   auto gen  = vlm::generate_digits(model, tokenizer, 8, 100, SamplerOptions().temperature(0.8), /*constrained=*/true);
//   auto free = vlm::generate_digits(model, tokenizer, 8, 100, options, /*constrained=*/false);
//   auto m    = vlm::generation_metrics(gen, free, &train_strings);    // invalid rates, distinct, memorised
//   auto g    = vlm::grade_generation(codec, classifier, gen);         // decode + reference classifier, per digit
//   auto c    = vlm::reference_classifier_ceiling(codec, classifier, test_images, test_labels);
//
// The model runs on its own device; results are on the CPU.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "vlm/models/digit_classifier.h"
#include "vlm/models/gpt.h"
#include "vlm/sample/sampler.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace vlm {

/// Generated image strings for every digit, N each, under a template constraint or not.
struct Generation {
  std::vector<std::vector<std::string>> completions;  ///< [digit][sample], the text after "number:d, image:"
  std::vector<std::vector<std::string>> images;       ///< [digit][sample], letters only; "" when invalid
  int64_t invalid = 0, total = 0;
  int64_t tokens = 0;
  double seconds = 0;
  /// All image strings, digit by digit ("" for the invalid ones).
  std::vector<std::string> all_images() const;
};
Generation generate_digits(GPT& model, const CharTokenizer& tokenizer, int64_t image_length, int64_t per_digit,
                           const SamplerOptions& options, bool constrained);

/// Fraction of distinct strings among `strings` (a repeated string counts once; "" is a string like any other).
double distinct_fraction(const std::vector<std::string>& strings);
/// Fraction of `strings` that occur in `train`.
double memorised_fraction(const std::vector<std::string>& strings, const std::unordered_set<std::string>& train);

struct GenerationMetrics {
  int64_t samples_per_digit = 0;
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
/// digit asked for (an invalid string counts as not recognised).
struct GradedGeneration {
  double graded_accuracy = 0;
  std::vector<double> per_digit;     ///< 10 entries; NaN for a digit with no samples
  std::vector<int64_t> recognised;   ///< 10 counts
  std::vector<int64_t> samples;      ///< 10 counts
  nlohmann::json to_json() const;    ///< {"graded_accuracy", "graded_accuracy_per_digit"}
};
GradedGeneration grade_generation(const ImageTokenCodec& codec, DigitClassifier& classifier, const Generation& gen);
void write_graded_accuracy_svg(const std::string& path, const GradedGeneration& graded);

/// The ceiling the tokenizer allows: the reference classifier on real test images and on their VQ-VAE reconstructions.
struct ReferenceCeiling {
  double accuracy_real_test = 0, accuracy_vqvae_reconstructions = 0;
  nlohmann::json to_json() const;
};
ReferenceCeiling reference_classifier_ceiling(const ImageTokenCodec& codec, DigitClassifier& classifier,
                                              const at::Tensor& images, const at::Tensor& labels);

/// Decoded images of `gen`, one row per digit, `columns` per row (invalid = black, missing = grey), as a PNG.
void write_generation_grid(const std::string& path, const ImageTokenCodec& codec, const Generation& gen,
                           int64_t columns);

}  // namespace vlm
