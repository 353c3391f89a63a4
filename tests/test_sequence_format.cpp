#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <iterator>
#include <random>

#include <nlohmann/json.hpp>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/text/format_automaton.h"
#include "vlm/text/sequence_format.h"

using vlm::FieldSpec;
using vlm::Record;
using vlm::SequenceFormat;

namespace {

const std::vector<std::string> kFashionWords = {"tshirt", "trouser", "pullover", "dress", "coat",
                                                "sandal", "shirt",   "sneaker",  "bag",   "boot"};

SequenceFormat fashion() {
  return SequenceFormat::image_and_label("item", kFashionWords, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 8, 32);
}

// Three fields, two of them codec fields, variable length, words that begin other words, one template only.
SequenceFormat signal_pair() {
  FieldSpec x = FieldSpec::codec_field("x", "abcd", 6);
  FieldSpec y = FieldSpec::codec_field("y", "abcd", 0);
  y.max_length = 5;
  return SequenceFormat({x, FieldSpec::label_field("rel", {"up", "upper", "flat"}), y}, {"x={x};rel={rel};y={y}|"},
                        40, '~');
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const vlm::Error& e) {
    return e.what();
  }
  return "no error";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("The seed's format writes the seed's exact lines and its vocabulary", "[format]") {
  const SequenceFormat f = SequenceFormat::seed();
  CHECK(f.format({0, {"ABCDEFGH", "7"}}) == "image:ABCDEFGH, number:7.#######");
  CHECK(f.format({1, {"RNMIBNTY", "5"}}) == "number:5, image:RNMIBNTY.#######");
  CHECK(f.vocabulary() == " #,.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZabegimnru");  // nanoGPT's prepare.py of the seed
  CHECK(f.max_line_length() == 25);
  CHECK(f.prompt({0, {"OJHFGGTE", ""}}, 0, 1) == "image:OJHFGGTE, number:");
  CHECK(f.prompt({1, {"", "4"}}, 1, 0) == "number:4, image:");
  CHECK(f.template_ending_with(1) == 0);
  CHECK(f.template_ending_with(0) == 1);
  CHECK(f.delimiter_after(0, 1) == '.');
  CHECK(f.delimiter_after(1, 1) == ',');
  CHECK_THROWS_WITH(f.with_block_size(24), Catch::Contains("more than the block size 24"));
  CHECK_THROWS_WITH(f.format({0, {"ABCDEFG", "7"}}), Catch::Contains("needs 8 letters, got 7"));
  CHECK_THROWS_WITH(f.format({0, {"ABCDEFGH", "12"}}), Catch::Contains("not a word of field 'number'"));
}

TEST_CASE("The seed's own files parse and write back byte for byte", "[format]") {
  // The first 300 lines of ../shared/seed-tokens/{train,valid}.txt, committed as fixtures.
  const SequenceFormat f = SequenceFormat::seed();
  for (const char* name : {"train_head.txt", "valid_head.txt"}) {
    const std::string path = std::string(VLM_FIXTURE_DIR) + "/seed-tokens/" + name;
    const std::string original = slurp(path);
    REQUIRE(!original.empty());
    auto records = f.read(path);
    CHECK(records.size() == 300);
    vlm::testing::TempDir dir;
    f.write(dir.file("back.txt"), records);
    CHECK(slurp(dir.file("back.txt")) == original);
  }
}

TEST_CASE("Formats round-trip for several field layouts", "[format]") {
  std::mt19937 rng(3);
  auto random_letters = [&](const std::string& alphabet, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  SECTION("word labels, two templates") {
    const SequenceFormat f = fashion();
    CHECK(f.format({0, {"ABCDEFGH", "sneaker"}}) == "image:ABCDEFGH, item:sneaker.###");
    CHECK(f.format({1, {"ABCDEFGH", "pullover"}}) == "item:pullover, image:ABCDEFGH.##");
    for (int i = 0; i < 200; ++i) {
      Record r{static_cast<int64_t>(rng() % 2),
               {random_letters("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 8), kFashionWords[rng() % kFashionWords.size()]}};
      CHECK(f.parse(f.format(r)) == r);
    }
  }
  SECTION("three fields, two codec fields, a variable-length field, words that begin others, one template") {
    const SequenceFormat f = signal_pair();
    CHECK(f.vocabulary() == ";=abcdeflprtuxy|~");
    for (int i = 0; i < 200; ++i) {
      Record r{0, {random_letters("abcd", 6), std::vector<std::string>{"up", "upper", "flat"}[rng() % 3],
                   random_letters("abcd", 1 + rng() % 5)}};
      CHECK(f.parse(f.format(r)) == r);
    }
    CHECK(f.parse("x=abcdab;rel=up;y=a|~~~").values == std::vector<std::string>{"abcdab", "up", "a"});
    CHECK(f.parse("x=abcdab;rel=upper;y=abcda|").values[1] == "upper");
  }
  SECTION("JSON round trip, strict keys") {
    for (const SequenceFormat& f : {SequenceFormat::seed(), fashion(), signal_pair()}) {
      CHECK(SequenceFormat::from_json(f.to_json()) == f);
      vlm::testing::TempDir dir;
      f.save(dir.file("f.json"));
      CHECK(SequenceFormat::load(dir.file("f.json")) == f);
    }
    auto j = SequenceFormat::seed().to_json();
    j["fields"][1]["wrds"] = {"a", "b"};
    CHECK_THROWS_WITH(SequenceFormat::from_json(j, "f.json"), Catch::Contains("f.json: fields[1]: unknown key 'wrds'"));
    j = SequenceFormat::seed().to_json();
    j["templates"] = {"image:{image}, number:{number}.", "number:{numbr}, image:{image}."};
    CHECK_THROWS_WITH(SequenceFormat::from_json(j, "f.json"), Catch::Contains("no field 'numbr'"));
  }
}

TEST_CASE("Ambiguous formats are refused when they are built", "[format]") {
  auto image = FieldSpec::codec_field("image", "ABC", 2);
  auto number = FieldSpec::label_field("number", {"1", "2"});
  CHECK_THROWS_WITH(SequenceFormat({image, number}, {"image:{image}, number:{number}."}, 8),
                    Catch::Contains("block size"));
  CHECK_THROWS_WITH(SequenceFormat({image, number}, {"image:{image}{number}."}),
                    Catch::Contains("need literal text between them"));
  CHECK_THROWS_WITH(SequenceFormat({image, number}, {"image:{image}."}), Catch::Contains("appears 0 times"));
  CHECK_THROWS_WITH(SequenceFormat({image, FieldSpec::label_field("n", {"a.b", "c"})}, {"{image}:{n}."}),
                    Catch::Contains("field's end would be ambiguous"));
  CHECK_THROWS_WITH(SequenceFormat({FieldSpec::codec_field("image", "AB#", 2), number}, {"{image}:{number}."}),
                    Catch::Contains("pad character"));
  CHECK_THROWS_WITH(SequenceFormat({image, FieldSpec::label_field("n", {"a", "a"})}, {"{image}:{n}."}),
                    Catch::Contains("lists 'a' twice"));
}

TEST_CASE("Parser errors name the file, the line and the column", "[format]") {
  const SequenceFormat f = SequenceFormat::seed();
  CHECK(error_of([&] { f.parse("image:ABCDEFGH, number:x.###", "t.txt", 3); }) ==
        "t.txt:3:24: expected a word of field 'number' (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), found 'x' in "
        "\"image:ABCDEFGH, number:x.###\"");
  CHECK_THAT(error_of([&] { f.parse("picture:ABC, number:7.", "t.txt", 1); }),
             Catch::StartsWith("t.txt:1:1: expected \"image:"));
  CHECK_THAT(error_of([&] { f.parse("image:ABCDEFG, number:7.", "t.txt", 9); }),
             Catch::StartsWith("t.txt:9:14: expected a letter of field 'image'"));
  CHECK_THAT(error_of([&] { f.parse("number:7, image:ABCDEFGH", "t.txt", 2); }),
             Catch::StartsWith("t.txt:2:25: expected \".\""));
  CHECK_THAT(error_of([&] { f.parse("number:7, image:ABCDEFGH.x", "t.txt", 2); }),
             Catch::StartsWith("t.txt:2:26: expected the end of the line"));
  CHECK_THAT(error_of([&] { f.parse("####", "t.txt", 5); }), Catch::StartsWith("t.txt:5:1: empty line"));
  CHECK_THAT(error_of([&] { fashion().parse("image:ABCDEFGH, item:snaker.", "f.txt", 1); }),
             Catch::StartsWith("f.txt:1:22: expected a word of field 'item'"));
  vlm::testing::TempDir dir;
  std::ofstream(dir.file("bad.txt")) << "image:ABCDEFGH, number:7.#######\nimage:ABCDEFGH, number:x.#######\n";
  CHECK_THAT(error_of([&] { f.read(dir.file("bad.txt")); }), Catch::StartsWith(dir.file("bad.txt") + ":2:24:"));
  std::ofstream(dir.file("blank.txt")) << "image:ABCDEFGH, number:7.#######\n\n";
  CHECK_THAT(error_of([&] { f.read(dir.file("blank.txt")); }), Catch::Contains(":2:1: empty line"));
  CHECK_THAT(error_of([&] { f.read(dir.file("missing.txt")); }), Catch::Contains("cannot open"));
}

TEST_CASE("The format cursor allows exactly the lines of the format", "[format]") {
  SECTION("the seed: forced literals, alphabet letters, digits") {
    const SequenceFormat f = SequenceFormat::seed();
    vlm::FormatCursor c(f);
    CHECK(c.allowed() == "in");  // image: or number:
    c.push("number:");
    CHECK(c.allowed() == "0123456789");
    c.push("7, image:ABCDEFG");
    CHECK(c.allowed() == "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    CHECK_FALSE(c.complete());
    c.push("H");
    CHECK(c.allowed() == ".");
    c.push(".");
    CHECK(c.complete());
    CHECK(c.allowed() == "#");
    CHECK_THROWS_WITH(vlm::FormatCursor(f).push("image:AB,"), Catch::Contains("column 9"));
  }
  SECTION("word labels: only continuations of words, then the delimiter") {
    const SequenceFormat f = fashion();
    vlm::FormatCursor c(f);
    c.push("image:ABCDEFGH, item:");
    CHECK(c.allowed() == "bcdpst");
    c.push("s");
    CHECK(c.allowed() == "ahn");  // sandal, shirt, sneaker
    c.push("hirt");
    CHECK(c.allowed() == ".");
    vlm::FormatCursor t(f);
    t.push("item:t");
    CHECK(t.allowed() == "rs");
  }
  SECTION("a variable-length field and words that begin other words") {
    const SequenceFormat f = signal_pair();
    vlm::FormatCursor c(f);
    c.push("x=abcdab;rel=up");
    CHECK(c.allowed() == ";p");  // "up" is complete, "upper" goes on
    c.push(";y=");
    CHECK(c.allowed() == "abcd");
    c.push("a");
    CHECK(c.allowed() == "abcd|");
    c.push("bcda");
    CHECK(c.allowed() == "|");  // max_length reached
  }
  SECTION("random walks through the automaton are always lines of the format") {
    std::mt19937 rng(11);
    for (const SequenceFormat& f : {SequenceFormat::seed(), fashion(), signal_pair()}) {
      for (int i = 0; i < 300; ++i) {
        vlm::FormatCursor c(f);
        std::string text;
        while (true) {
          std::string next = c.allowed();
          REQUIRE_FALSE(next.empty());
          const char ch = next[rng() % next.size()];
          if (ch == f.pad()) break;
          REQUIRE(c.try_push(ch));
          text += ch;
        }
        CHECK(c.complete());
        CHECK(vlm::format_matches(f, text));
        CHECK(f.format(f.parse(text)).substr(0, text.size()) == text);
      }
    }
  }
}

TEST_CASE("Template modes parse and records draw templates reproducibly", "[format]") {
  CHECK(vlm::parse_template_mode("once") == vlm::TemplateMode::kOnce);
  CHECK(vlm::parse_template_mode("fresh") == vlm::TemplateMode::kFresh);
  CHECK(vlm::parse_template_mode("all") == vlm::TemplateMode::kAll);
  CHECK(vlm::parse_template_mode("both") == vlm::TemplateMode::kAll);
  CHECK_THROWS_AS(vlm::parse_template_mode("twice"), vlm::Error);
  const SequenceFormat f = SequenceFormat::seed();
  std::vector<std::vector<std::string>> values = {std::vector<std::string>(2000, "ABCDEFGH"),
                                                  std::vector<std::string>(2000, "1")};
  auto a = vlm::make_records(f, values, 5), b = vlm::make_records(f, values, 5);
  int64_t second = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i] == b[i]);
    second += a[i].tmpl == 1;
  }
  CHECK(second > 900);  // 1000 expected, sd 22
  CHECK(second < 1100);
  values[1][7] = "x";
  CHECK_THROWS_WITH(vlm::make_records(f, values, 5), Catch::Contains("not a word of field 'number'"));
}

TEST_CASE("prompt_for asks for a field through the template that ends with it, and answer reads the reply", "[format]") {
  const SequenceFormat seed = SequenceFormat::seed();
  const int64_t image = seed.field_index("image"), number = seed.field_index("number");
  CHECK(seed.prompt_for(image, {"", "7"}) == "number:7, image:");
  CHECK(seed.prompt_for(number, {"HKCXQMAF", ""}) == "image:HKCXQMAF, number:");
  CHECK(seed.answer(image, "number:7, image:", "HKCXQMAF.") == "HKCXQMAF");
  CHECK(seed.answer(number, "image:HKCXQMAF, number:", "3.") == "3");
  // Not a line of the format: too short, a wrong letter, no full stop.
  CHECK(seed.answer(image, "number:7, image:", "HKCX.").empty());
  CHECK(seed.answer(image, "number:7, image:", "HKCXQMA1.").empty());
  CHECK(seed.answer(number, "image:HKCXQMAF, number:", "3").empty());
  CHECK_THROWS_AS(seed.prompt_for(image, {"", "12"}), vlm::Error);  // not a word of the label field
  // Fields the template does not write before the asked one are ignored; a template must end with the field.
  const SequenceFormat pair = signal_pair();
  CHECK(pair.prompt_for(2, {"abcdab", "upper", "ignored?"}) == "x=abcdab;rel=upper;y=");
  CHECK(pair.answer(2, "x=abcdab;rel=upper;y=", "abc|") == "abc");
  CHECK(error_of([&] { pair.prompt_for(0, {"", "", ""}); }).find("no template writes field 'x' last") !=
        std::string::npos);
}
