#include <catch2/catch.hpp>

#include <fstream>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/text/sequences.h"

using vlm::Sequence;
using vlm::Template;

TEST_CASE("Sequences are written in the seed's exact format, padded to 32", "[sequences]") {
  CHECK(vlm::format_sequence({Template::kClassify, "ABCDEFGH", 7}) == "image:ABCDEFGH, number:7.#######");
  CHECK(vlm::format_sequence({Template::kGenerate, "RNMIBNTY", 5}) == "number:5, image:RNMIBNTY.#######");
  CHECK(vlm::format_sequence({Template::kGenerate, "AB", 5}, 20) == "number:5, image:AB.#");
  CHECK(vlm::classification_prompt("OJHFGGTE") == "image:OJHFGGTE, number:");
  CHECK(vlm::generation_prompt(4) == "number:4, image:");
  CHECK_THROWS_AS(vlm::format_sequence({Template::kClassify, "ABCDEFGH", 7}, 24), vlm::Error);
}

TEST_CASE("Lines of the seed's files parse into template, image letters and label", "[sequences]") {
  // The first lines of ../shared/seed-tokens/train.txt.
  auto a = vlm::parse_sequence("number:5, image:RNMIBNTY.#######");
  CHECK(a.tmpl == Template::kGenerate);
  CHECK(a.image == "RNMIBNTY");
  CHECK(a.label == 5);
  auto b = vlm::parse_sequence("image:OJHFGGTE, number:7.#######\r");
  CHECK(b.tmpl == Template::kClassify);
  CHECK(b.image == "OJHFGGTE");
  CHECK(b.label == 7);
  // Generic over the alphabet, the image length and the label width.
  auto c = vlm::parse_sequence("image:pq, number:12.");
  CHECK(c.image == "pq");
  CHECK(c.label == 12);
}

TEST_CASE("Malformed lines are errors naming the file and line", "[sequences]") {
  vlm::testing::TempDir dir;
  const std::string path = dir.file("bad.txt");
  std::ofstream(path) << "image:ABCDEFGH, number:7.#######\nimage:ABCDEFGH, number:x.#######\n";
  try {
    vlm::read_sequences(path);
    FAIL("no error");
  } catch (const vlm::Error& e) {
    CHECK(std::string(e.what()).find(path + ":2") != std::string::npos);
  }
  for (const char* bad : {"", "####", "image:ABC, number:7", "picture:ABC, number:7.", "image:, number:7.",
                          "image:A B, number:7.", "number:7 image:AB.", "image:AB#C, number:1."})
    CHECK_THROWS_AS(vlm::parse_sequence(bad, "x:1"), vlm::Error);
  CHECK_THROWS_AS(vlm::read_sequences(dir.file("missing.txt")), vlm::Error);
}

TEST_CASE("Sequence files round-trip through write and read", "[sequences]") {
  vlm::testing::TempDir dir;
  std::vector<Sequence> seqs = {{Template::kClassify, "ABCDEFGH", 0}, {Template::kGenerate, "ZZZZZZZZ", 9},
                                {Template::kGenerate, "MNOPABCD", 3}};
  vlm::write_sequences(dir.file("s.txt"), seqs);
  auto back = vlm::read_sequences(dir.file("s.txt"));
  REQUIRE(back.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(back[i].tmpl == seqs[i].tmpl);
    CHECK(back[i].image == seqs[i].image);
    CHECK(back[i].label == seqs[i].label);
  }
}

TEST_CASE("Template modes parse and the seed's once-draw is a reproducible 50/50", "[sequences]") {
  CHECK(vlm::parse_template_mode("once") == vlm::TemplateMode::kOnce);
  CHECK(vlm::parse_template_mode("fresh") == vlm::TemplateMode::kFresh);
  CHECK(vlm::parse_template_mode("both") == vlm::TemplateMode::kBoth);
  CHECK_THROWS_AS(vlm::parse_template_mode("twice"), vlm::Error);
  std::vector<std::string> images(2000, "ABCDEFGH");
  std::vector<int64_t> labels(2000, 1);
  auto a = vlm::make_sequences(images, labels, 5), b = vlm::make_sequences(images, labels, 5);
  int64_t generate = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].tmpl == b[i].tmpl);
    generate += a[i].tmpl == Template::kGenerate;
  }
  CHECK(generate > 900);  // 1000 expected, sd 22
  CHECK(generate < 1100);
}
