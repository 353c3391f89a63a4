// ImageTokenCodec: codes <-> text by hand and by round trip, clear rejection of bad strings and alphabets, and a
// tokenizer checkpoint that loads back to the same codes and images.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace {
// A model whose codebook went through the k-means init, so codes depend on the image.
vlm::VQVAE initialised_model(const std::string& variant) {
  at::manual_seed(21);
  vlm::VQVAE model(vlm::VQVAEOptions::preset(variant));
  model->train();
  model->forward(at::rand({64, 1, 28, 28}));
  model->eval();
  return model;
}
}  // namespace

TEST_CASE("Codes map to letters as the seed writes them", "[codec]") {
  const std::string az = vlm::kDefaultImageAlphabet;
  CHECK(vlm::codes_to_text(at::arange(8, at::kLong), az) == "ABCDEFGH");  // the seed's own example
  CHECK(vlm::codes_to_text(at::tensor({25, 0, 12}, at::kLong), az) == "ZAM");
  CHECK(at::equal(vlm::text_to_codes("RNMIBNTY", az, 8), at::tensor({17, 13, 12, 8, 1, 13, 19, 24}, at::kLong)));
}

TEST_CASE("Codes survive a round trip through text, with any alphabet", "[codec]") {
  at::manual_seed(22);
  auto codes = at::randint(26, {100, 8}, at::kLong);
  for (std::string alphabet : {std::string(vlm::kDefaultImageAlphabet), std::string("abcdefghijklmnopqrstuvwxyz")}) {
    auto texts = vlm::codes_to_texts(codes, alphabet);
    REQUIRE(texts.size() == 100);
    CHECK(texts[0].size() == 8);
    CHECK(at::equal(vlm::texts_to_codes(texts, alphabet, 8), codes));
  }
}

TEST_CASE("A bad token string is rejected with the string, the position and the alphabet", "[codec][errors]") {
  const std::string az = vlm::kDefaultImageAlphabet;
  CHECK_THROWS_WITH(vlm::text_to_codes("ABCDEFG", az, 8),
                    Catch::Contains("\"ABCDEFG\"") && Catch::Contains("expected exactly 8"));
  CHECK_THROWS_WITH(vlm::text_to_codes("ABCDEFGHI", az, 8), Catch::Contains("9 letters"));
  CHECK_THROWS_WITH(vlm::text_to_codes("ABC1EFGH", az, 8),
                    Catch::Contains("'1' at position 3") && Catch::Contains(az) && Catch::Contains("ABC1EFGH"));
  CHECK_THROWS_WITH(vlm::texts_to_codes({"ABCDEFGH", "abcdefgh"}, az, 8), Catch::Contains("'a' at position 0"));
  auto codec = vlm::ImageTokenCodec(initialised_model("mlp"));
  CHECK_THROWS_WITH(codec.decode_text({"ABCDEFG#"}), Catch::Contains("'#' at position 7"));
}

TEST_CASE("The alphabet is checked against the codebook size", "[codec][errors]") {
  CHECK_NOTHROW(vlm::check_alphabet(vlm::kDefaultImageAlphabet, 26));
  CHECK_THROWS_WITH(vlm::check_alphabet("ABCDEFGHIJKLMNOPQRSTUVWXY", 26), Catch::Contains("26 codes"));
  CHECK_THROWS_WITH(vlm::check_alphabet("AACDEFGHIJKLMNOPQRSTUVWXYZ", 26), Catch::Contains("appears twice"));
  CHECK_THROWS_WITH(vlm::check_alphabet("ABC EFGHIJKLMNOPQRSTUVWXYZ", 26), Catch::Contains("position 3"));
  CHECK_THROWS_AS(vlm::ImageTokenCodec(initialised_model("mlp"), "ABC"), vlm::Error);
}

TEST_CASE("Images go to text and back through the model, in any batch size", "[codec]") {
  auto codec = vlm::ImageTokenCodec(initialised_model("mlp"));
  at::manual_seed(23);
  auto images = at::rand({37, 1, 28, 28});
  auto texts = codec.encode_text(images);
  REQUIRE(texts.size() == 37);
  CHECK(at::equal(codec.encode_codes(images, 5), codec.encode_codes(images, 1024)));
  CHECK(at::equal(vlm::texts_to_codes(texts, codec.alphabet(), 8), codec.model()->quantize(images)));
  auto back = codec.decode_text(texts, 6);
  CHECK(back.sizes() == at::IntArrayRef({37, 1, 28, 28}));
  CHECK(at::allclose(back, codec.model()->decode_codes(codec.model()->quantize(images))));
  CHECK(codec.encode_text_one(images[4]) == texts[4]);
  CHECK(at::allclose(codec.decode_text_one(texts[4]), back[4]));
}

TEST_CASE("Saving and loading a tokenizer gives identical codes and images", "[codec][checkpoint]") {
  vlm::testing::TempDir dir;
  at::manual_seed(24);
  auto images = at::rand({20, 1, 28, 28});
  for (const char* variant : {"mlp", "conv"}) {
    DYNAMIC_SECTION(variant) {
      auto codec = vlm::ImageTokenCodec(initialised_model(variant), "abcdefghijklmnopqrstuvwxyz");
      codec.save(dir.file("tok.pt"), {{"note", "test"}});
      auto loaded = vlm::ImageTokenCodec::load(dir.file("tok.pt"));
      CHECK(loaded.alphabet() == "abcdefghijklmnopqrstuvwxyz");
      CHECK(loaded.codes_per_image() == 8);
      CHECK(loaded.model()->options.variant() == variant);
      CHECK(loaded.meta()["note"] == "test");
      CHECK(loaded.model()->quantizer->initialized());
      auto codes = codec.encode_codes(images);
      CHECK(at::equal(loaded.encode_codes(images), codes));
      CHECK(at::equal(loaded.decode_codes(codes), codec.decode_codes(codes)));
      CHECK(loaded.encode_text(images) == codec.encode_text(images));
    }
  }
  CHECK_THROWS_WITH(vlm::ImageTokenCodec::load(dir.file("absent.pt")), Catch::Contains("absent.pt"));
}
