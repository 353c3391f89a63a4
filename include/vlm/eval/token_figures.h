#pragma once
// What the image tokens look like on a test set: letters per position for each digit (the sequence logo) and how
// often each code is used (codebook usage).
//
//   auto u = vlm::token_usage(test_strings, test_labels, codec->alphabet(), label_field.words, 1000);
//   vlm::write_token_figures(u, "runs/x/eval");   // token_logo.svg, codebook_usage.svg
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace vlm {

struct TokenUsage {
  std::string alphabet;
  int64_t strings = 0;          ///< strings counted for the usage
  int64_t logo_examples = 0;    ///< strings counted for the logo (the first ones)
  std::vector<double> frequency;  ///< per alphabet letter: its share of all letters of all strings
  int64_t codes_used = 0;         ///< letters of the alphabet that occur at all
  std::vector<std::string> class_names;
  /// [class][position] letter -> count over the first logo_examples strings
  std::vector<std::vector<std::map<char, double>>> position_counts;
  nlohmann::json to_json() const;  ///< {"strings", "codes_used", "frequency": {letter: share}}
};

/// strings: a codec field's letters, of equal length; labels (N) int64 classes of `class_names` (others are left out
/// of the logo).
TokenUsage token_usage(const std::vector<std::string>& strings, const at::Tensor& labels, const std::string& alphabet,
                       std::vector<std::string> class_names, int64_t logo_examples = 1000);

/// Writes token_logo.svg and codebook_usage.svg into out_dir.
void write_token_figures(const TokenUsage& usage, const std::string& out_dir);

}  // namespace vlm
