#include <catch2/catch.hpp>

#include "vlm/core/check.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"

using vlm::CharTokenizer;

TEST_CASE("CharTokenizer's vocabulary is every character of the format, sorted", "[char_tokenizer]") {
  auto tok = CharTokenizer::for_format(vlm::SequenceFormat::seed());
  // space # , . 0-9 : A-Z a b e g i m n r u  (hand-listed from the two templates)
  CHECK(tok.chars() == " #,.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZabegimnru");
  CHECK(tok.vocab_size() == 50);
  CHECK(tok.pad_id() == 1);
  CHECK(tok.id('0') == 4);
  CHECK(tok.id('9') == 13);
  CHECK(tok.id('A') == 15);
  // Another tokenizer's 16 letters give another, equally deterministic vocabulary.
  auto hex = CharTokenizer::for_format(vlm::SequenceFormat::seed("ABCDEFGHIJKLMNOP"));
  CHECK(hex.vocab_size() == 40);
  CHECK_FALSE(hex.contains('Z'));
}

TEST_CASE("CharTokenizer round-trips every line either template can produce", "[char_tokenizer]") {
  const auto format = vlm::SequenceFormat::seed();
  auto tok = CharTokenizer::for_format(format);
  for (int64_t label = 0; label < 10; ++label) {
    for (int64_t t : {0, 1}) {
      std::string text = format.format({t, {"ZYXWVUTA", std::to_string(label)}});
      auto ids = tok.encode(text);
      REQUIRE(ids.size() == 32);
      CHECK(tok.decode(ids) == text);
    }
  }
}

TEST_CASE("CharTokenizer rejects an unknown character naming it and its position", "[char_tokenizer]") {
  auto tok = CharTokenizer::for_format(vlm::SequenceFormat::seed());
  try {
    tok.encode("image:ABxD");
    FAIL("no error");
  } catch (const vlm::Error& e) {
    std::string m = e.what();
    CHECK(m.find("'x'") != std::string::npos);
    CHECK(m.find("position 8") != std::string::npos);
  }
  CHECK_THROWS_AS(tok.decode({50}), vlm::Error);
  CHECK_THROWS_AS(CharTokenizer("abca"), vlm::Error);
}

TEST_CASE("CharTokenizer survives a JSON round trip and rejects other tokenizers' JSON", "[char_tokenizer]") {
  const auto format = vlm::SequenceFormat::image_and_label("item", {"bag", "boot"}, "ABCDEFGHIJKLMNOP", 8, 32)
                          .with_block_size(32);
  auto tok = CharTokenizer::for_format(vlm::SequenceFormat({vlm::FieldSpec::codec_field("x", "01", 2),
                                                            vlm::FieldSpec::label_field("y", {"a"})},
                                                           {"{x}={y};"}, 8, '_'));
  CHECK(tok.pad() == '_');
  auto back = CharTokenizer::from_json(nlohmann::json::parse(tok.to_json().dump()));
  CHECK(back == tok);
  CHECK(back.pad_id() == tok.pad_id());
  auto seed_tok = CharTokenizer::for_format(format);
  CHECK(CharTokenizer::from_json(seed_tok.to_json()).encode("item:bag, image:P.") == seed_tok.encode("item:bag, image:P."));
  CHECK_THROWS_AS(CharTokenizer::from_json({{"type", "bpe"}}), vlm::Error);
}
