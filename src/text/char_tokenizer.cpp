#include "vlm/text/char_tokenizer.h"

#include <algorithm>
#include <set>

#include "vlm/core/check.h"

namespace vlm {

namespace {
// Printable, so that error messages and decoded text stay readable.
std::string printable(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u >= 32 && u < 127) return std::string("'") + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02x", u);
  return buf;
}
}  // namespace

CharTokenizer CharTokenizer::for_format(const SequenceFormat& format) {
  CharTokenizer tok(format.vocabulary());
  tok.pad_ = format.pad();
  return tok;
}

CharTokenizer::CharTokenizer(std::string chars) : chars_(std::move(chars)) {
  VLM_CHECK(!chars_.empty(), "CharTokenizer: empty vocabulary");
  ids_.fill(-1);
  for (size_t i = 0; i < chars_.size(); ++i) {
    auto& slot = ids_[static_cast<unsigned char>(chars_[i])];
    VLM_CHECK(slot < 0, "CharTokenizer: character ", printable(chars_[i]), " appears twice in the vocabulary");
    slot = static_cast<int64_t>(i);
  }
}

int64_t CharTokenizer::id(char c) const {
  int64_t i = ids_[static_cast<unsigned char>(c)];
  VLM_CHECK(i >= 0, "CharTokenizer: character ", printable(c), " is not in the vocabulary \"", chars_, "\"");
  return i;
}

char CharTokenizer::character(int64_t id) const {
  VLM_CHECK(id >= 0 && id < vocab_size(), "CharTokenizer: token id ", id, " is outside the vocabulary of size ",
            vocab_size());
  return chars_[static_cast<size_t>(id)];
}

std::vector<int64_t> CharTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    int64_t t = ids_[static_cast<unsigned char>(text[i])];
    VLM_CHECK(t >= 0, "CharTokenizer: unknown character ", printable(text[i]), " at position ", i, " of \"", text,
              "\" (vocabulary \"", chars_, "\")");
    out[i] = t;
  }
  return out;
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) out[i] = character(ids[i]);
  return out;
}

nlohmann::json CharTokenizer::to_json() const {
  return {{"type", "char"}, {"chars", chars_}, {"pad", std::string(1, pad_)}};
}

CharTokenizer CharTokenizer::from_json(const nlohmann::json& j) {
  VLM_CHECK(j.is_object() && j.value("type", "") == "char" && j.contains("chars") && j["chars"].is_string(),
            "CharTokenizer: stored tokenizer is not a character tokenizer: ", j.dump());
  CharTokenizer tok(j["chars"].get<std::string>());
  const std::string pad = j.value("pad", "#");  // checkpoints before the format stored "image_alphabet" instead
  VLM_CHECK(pad.size() == 1, "CharTokenizer: stored pad must be one character, got \"", pad, "\"");
  tok.pad_ = pad[0];
  return tok;
}

}  // namespace vlm
