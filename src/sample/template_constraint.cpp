#include "vlm/sample/template_constraint.h"

#include <limits>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

TemplateConstraint::TemplateConstraint(Template tmpl, const CharTokenizer& tok, int64_t image_length) {
  const std::string& alphabet = tok.image_alphabet();
  VLM_CHECK(!alphabet.empty(), "TemplateConstraint: the tokenizer has no image alphabet");
  VLM_CHECK(image_length > 0, "TemplateConstraint: image_length must be positive, got ", image_length);
  auto literal = [&](const std::string& s) {
    for (char c : s) slots_.emplace_back(1, c);
  };
  auto image = [&] {
    for (int64_t i = 0; i < image_length; ++i) slots_.push_back(alphabet);
  };
  const std::string digits = "0123456789";
  if (tmpl == Template::kGenerate) {
    literal("number:");
    slots_.push_back(digits);
    literal(", image:");
    image();
  } else {
    literal("image:");
    image();
    literal(", number:");
    slots_.push_back(digits);
  }
  literal(".");

  const float ninf = -std::numeric_limits<float>::infinity();
  masks_ = at::full({length(), tok.vocab_size()}, ninf);
  auto m = masks_.accessor<float, 2>();
  for (int64_t p = 0; p < length(); ++p)
    for (char c : slots_[p]) m[p][tok.id(c)] = 0.0f;  // throws naming a character the vocabulary lacks
}

at::Tensor TemplateConstraint::additive_mask(int64_t position) const {
  VLM_CHECK(position >= 0 && position < length(), "TemplateConstraint: position ", position,
            " is outside the template of length ", length());
  return masks_[position];
}

bool TemplateConstraint::allows(int64_t position, char c) const {
  return position >= 0 && position < length() && slots_[position].find(c) != std::string::npos;
}

bool TemplateConstraint::matches(const std::string& text) const {
  if (static_cast<int64_t>(text.size()) != length()) return false;
  for (int64_t p = 0; p < length(); ++p)
    if (!allows(p, text[p])) return false;
  return true;
}

}  // namespace vlm
