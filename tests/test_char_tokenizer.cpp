#include <catch2/catch.hpp>

#include "vlm/core/check.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequences.h"

using vlm::CharTokenizer;

TEST_CASE("CharTokenizer's vocabulary is every template character plus the image alphabet, sorted", "[char_tokenizer]") {
  auto tok = CharTokenizer::for_sequences(vlm::kSeedImageAlphabet);
  // space # , . 0-9 : A-Z a b e g i m n r u  (hand-listed from the two templates)
  CHECK(tok.chars() == " #,.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZabegimnru");
  CHECK(tok.vocab_size() == 50);
  CHECK(tok.pad_id() == 1);
  CHECK(tok.digit_ids()[0] == 4);
  CHECK(tok.digit_ids()[9] == 13);
  CHECK(tok.id('A') == 15);
  // Another tokenizer's 16 letters give another, equally deterministic vocabulary.
  auto hex = CharTokenizer::for_sequences("ABCDEFGHIJKLMNOP");
  CHECK(hex.vocab_size() == 40);
  CHECK_FALSE(hex.contains('Z'));
}

TEST_CASE("CharTokenizer round-trips every sequence either template can produce", "[char_tokenizer]") {
  auto tok = CharTokenizer::for_sequences(vlm::kSeedImageAlphabet);
  for (int64_t label = 0; label < 10; ++label) {
    for (auto t : {vlm::Template::kClassify, vlm::Template::kGenerate}) {
      vlm::Sequence s{t, "ZYXWVUTA", label};
      std::string text = vlm::format_sequence(s);
      auto ids = tok.encode(text);
      REQUIRE(ids.size() == 32);
      CHECK(tok.decode(ids) == text);
    }
  }
}

TEST_CASE("CharTokenizer rejects an unknown character naming it and its position", "[char_tokenizer]") {
  auto tok = CharTokenizer::for_sequences(vlm::kSeedImageAlphabet);
  try {
    tok.encode("image:ABxD");
    FAIL("no error");
  } catch (const vlm::Error& e) {
    std::string m = e.what();
    CHECK(m.find("'x'") != std::string::npos);
    CHECK(m.find("position 8") != std::string::npos);
  }
  CHECK_THROWS_AS(tok.decode({50}), vlm::Error);
  CHECK_THROWS_AS(CharTokenizer::for_sequences("AB1"), vlm::Error);  // digits belong to the labels
  CHECK_THROWS_AS(CharTokenizer("abca"), vlm::Error);
}

TEST_CASE("CharTokenizer survives a JSON round trip and rejects other tokenizers' JSON", "[char_tokenizer]") {
  auto tok = CharTokenizer::for_sequences("ABCDEFGHIJKLMNOP");
  auto back = CharTokenizer::from_json(nlohmann::json::parse(tok.to_json().dump()));
  CHECK(back == tok);
  CHECK(back.image_alphabet() == "ABCDEFGHIJKLMNOP");
  CHECK(back.encode("number:3, image:P.") == tok.encode("number:3, image:P."));
  CHECK_THROWS_AS(CharTokenizer::from_json({{"type", "bpe"}}), vlm::Error);
}
