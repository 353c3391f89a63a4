#pragma once
// One character, one token. The vocabulary is every character a sequence format can produce (its pad included),
// sorted by character code: deterministic, and independent of which characters happen to occur in one file. Stored
// as JSON in every GPT checkpoint.
//
//   CharTokenizer tok = CharTokenizer::for_format(SequenceFormat::seed());
//   std::vector<int64_t> ids = tok.encode("image:ABC");   // unknown characters are a clear error
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vlm/text/sequence_format.h"

namespace vlm {

class CharTokenizer {
 public:
  /// The vocabulary of a sequence format (SequenceFormat::vocabulary()), padded with its pad character.
  static CharTokenizer for_format(const SequenceFormat& format);
  /// An explicit vocabulary: the characters in order (token id = position); duplicates are an error.
  explicit CharTokenizer(std::string chars);

  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()); }
  const std::string& chars() const { return chars_; }
  bool contains(char c) const { return ids_[static_cast<unsigned char>(c)] >= 0; }
  /// The id of one character; throws naming it if it is not in the vocabulary.
  int64_t id(char c) const;
  char character(int64_t id) const;
  /// The id of the pad character (the format's; '#' for tokenizers built from a bare vocabulary).
  int64_t pad_id() const { return id(pad_); }
  char pad() const { return pad_; }

  std::vector<int64_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  nlohmann::json to_json() const;
  static CharTokenizer from_json(const nlohmann::json& j);

  bool operator==(const CharTokenizer& o) const { return chars_ == o.chars_; }

 private:
  std::string chars_;
  char pad_ = '#';
  std::array<int64_t, 256> ids_{};
};

}  // namespace vlm
