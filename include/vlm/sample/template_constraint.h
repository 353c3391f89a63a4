#pragma once
// Constrained decoding from the two templates: at every position of
//   number:N, image:ABCDEFGH.        (generation)      image:ABCDEFGH, number:N.   (classification)
// only the characters the template allows can be produced: fixed characters are forced, the number slot takes a
// digit, the image slots take letters of the image alphabet. A model can then never draw an invalid image (the seed
// decoded invalid letters as black squares).
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequences.h"

namespace vlm {

class TemplateConstraint {
 public:
  /// The template `tmpl` with `image_length` image letters from `tokenizer.image_alphabet()` and one digit.
  TemplateConstraint(Template tmpl, const CharTokenizer& tokenizer, int64_t image_length);

  /// Characters in the template, the final '.' included.
  int64_t length() const { return static_cast<int64_t>(slots_.size()); }
  /// (V) float: 0 where a token is allowed at absolute position `position`, -inf elsewhere.
  at::Tensor additive_mask(int64_t position) const;
  /// Whether `c` may stand at `position`.
  bool allows(int64_t position, char c) const;
  /// Whether `text` is a complete, valid instance of the template.
  bool matches(const std::string& text) const;

 private:
  std::vector<std::string> slots_;  ///< allowed characters per position
  at::Tensor masks_;                ///< (length, V)
};

}  // namespace vlm
