#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <set>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/models/gpt.h"
#include "vlm/sample/constrained_rows.h"
#include "vlm/sample/sampler.h"
#include "vlm/text/format_automaton.h"
#include "vlm/text/sequence_format.h"

namespace {
const vlm::SequenceFormat& seed_format() {
  static const vlm::SequenceFormat f = vlm::SequenceFormat::seed();
  return f;
}
vlm::CharTokenizer tok() { return vlm::CharTokenizer::for_format(seed_format()); }
std::string gen_prompt(int64_t label) { return seed_format().prompt({1, {"", std::to_string(label)}}, 1, 0); }
vlm::GPT tiny_gpt(uint64_t seed = 0) {
  vlm::seed_everything(seed);
  return vlm::GPT(vlm::GPTOptions().vocab_size(tok().vocab_size()).block_size(32).n_layer(2).n_head(2).n_embd(32));
}
}  // namespace

TEST_CASE("Greedy generation with and without the key/value cache gives identical tokens", "[sampler]") {
  auto model = tiny_gpt(1);
  std::vector<std::string> prompts = {"number:3, image:", "number:8, image:", "image:ABCD", "image:ZZZZ"};
  vlm::Sampler cached(model, tok(), vlm::SamplerOptions().greedy(true).use_cache(true));
  vlm::Sampler uncached(model, tok(), vlm::SamplerOptions().greedy(true).use_cache(false));
  auto a = cached.complete(prompts), b = uncached.complete(prompts);
  REQUIRE(a.size() == 4);
  CHECK(a == b);
  // Without a stop character an untrained model runs to the block size: 32 - prompt length tokens.
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].find('.') == std::string::npos) CHECK(a[i].size() == 32 - prompts[i].size());
  // Identical prompts (the evaluator's generation batches) run their prompt once and share it through the cache.
  std::vector<std::string> same(3, "number:5, image:");
  auto c = cached.complete(same), d = uncached.complete(same);
  CHECK(c == d);
  CHECK(c[0] == uncached.complete({"number:5, image:"})[0]);
}

TEST_CASE("Constrained decoding never leaves the format", "[sampler]") {
  auto model = tiny_gpt(2);  // untrained: left alone it would emit anything
  const auto& f = seed_format();
  for (uint64_t seed = 0; seed < 20; ++seed) {
    vlm::Sampler s(model, tok(), vlm::SamplerOptions().temperature(2.0).seed(seed));
    auto out = s.complete(std::vector<std::string>(8, gen_prompt(seed % 10)), &f);
    for (const auto& c : out) {
      CHECK(vlm::format_matches(f, gen_prompt(seed % 10) + c));
      CHECK(c.size() == 9);  // 8 letters and '.', nothing after
    }
    auto answers = s.complete({"image:ABCDEFGH, number:", "image:", "num"}, &f);
    CHECK(vlm::format_matches(f, "image:ABCDEFGH, number:" + answers[0]));
    CHECK(vlm::format_matches(f, "image:" + answers[1]));
    CHECK(vlm::format_matches(f, "num" + answers[2]));
  }
  // Word labels: only whole words of the vocabulary come out.
  const auto fashion = vlm::SequenceFormat::image_and_label("item", {"tshirt", "trouser", "sneaker", "bag"}, "ABCD", 4);
  const auto ftok = vlm::CharTokenizer::for_format(fashion);
  vlm::seed_everything(6);
  vlm::GPT fmodel(vlm::GPTOptions().vocab_size(ftok.vocab_size()).block_size(32).n_layer(1).n_head(2).n_embd(16));
  vlm::Sampler fs(fmodel, ftok, vlm::SamplerOptions().temperature(3.0).seed(1));
  std::set<std::string> words;
  for (const auto& c : fs.complete(std::vector<std::string>(64, "image:ABCD, item:"), &fashion)) {
    CHECK(vlm::format_matches(fashion, "image:ABCD, item:" + c));
    words.insert(c);
  }
  CHECK(words.size() >= 3);  // sampled, not forced to one word
  vlm::Sampler s(model, tok());
  CHECK_THROWS_WITH(s.complete({"number:x"}, &f), Catch::Contains("leaves the sequence format at column 8"));
  CHECK_THROWS_WITH(s.complete({"number:1"}, &fashion), Catch::Contains("not the tokenizer's"));
}

TEST_CASE("Unconstrained sampling from an untrained model produces invalid images, which the format detects",
          "[sampler]") {
  auto model = tiny_gpt(3);
  vlm::Sampler s(model, tok(), vlm::SamplerOptions().seed(5));
  auto out = s.complete(std::vector<std::string>(32, gen_prompt(1)));
  int invalid = 0;
  for (const auto& c : out) invalid += !vlm::format_matches(seed_format(), gen_prompt(1) + c);
  CHECK(invalid > 0);
}

TEST_CASE("Sampling is seeded: the same seed repeats, another seed differs: top-k 1 is greedy", "[sampler]") {
  auto model = tiny_gpt(4);
  std::vector<std::string> prompts(16, "number:5, image:");
  auto run = [&](vlm::SamplerOptions o) { return vlm::Sampler(model, tok(), o).complete(prompts); };
  CHECK(run(vlm::SamplerOptions().seed(9)) == run(vlm::SamplerOptions().seed(9)));
  CHECK(run(vlm::SamplerOptions().seed(9)) != run(vlm::SamplerOptions().seed(10)));
  CHECK(run(vlm::SamplerOptions().top_k(1).seed(3)) == run(vlm::SamplerOptions().greedy(true)));
}

TEST_CASE("top-k above the vocabulary size is clamped (nanoGPT's default of 200 works)", "[sampler]") {
  auto model = tiny_gpt(5);
  std::vector<std::string> prompts(4, "image:AB");
  auto big = vlm::Sampler(model, tok(), vlm::SamplerOptions().top_k(200).seed(1)).complete(prompts);
  auto none = vlm::Sampler(model, tok(), vlm::SamplerOptions().top_k(0).seed(1)).complete(prompts);
  CHECK(big == none);
  vlm::Sampler limited(model, tok(), vlm::SamplerOptions().max_new_tokens(3));
  for (const auto& c : limited.complete(prompts)) CHECK(c.size() <= 3);
}

TEST_CASE("The sampler rejects bad options and prompts", "[sampler][errors]") {
  auto model = tiny_gpt(6);
  CHECK_THROWS_AS(vlm::Sampler(model, tok(), vlm::SamplerOptions().temperature(0)), vlm::Error);
  vlm::Sampler s(model, tok());
  CHECK_THROWS_WITH(s.complete({std::string(32, 'A')}), Catch::Contains("no room"));
  CHECK_THROWS_WITH(s.complete({"image:@"}), Catch::Contains("@"));  // not in the vocabulary
}

TEST_CASE("Without a stop character the sampler generates exactly max_new_tokens, like nanoGPT's generate",
          "[sampler]") {
  auto model = tiny_gpt(7);
  vlm::Sampler s(model, tok(), vlm::SamplerOptions().max_new_tokens(10).stop('\0').use_cache(false).batch_size(1));
  for (const auto& c : s.complete({"image:ABCDEFGH, number:", "image:ABCDEFGH, number:"})) CHECK(c.size() == 10);
}

TEST_CASE("Constrained rows allow what the format allows next and finish at the line's end", "[sampler]") {
  const auto t = tok();
  const int64_t V = t.vocab_size();
  vlm::ConstrainedRows rows(seed_format(), t, {"number:7, image:", "image:ABCDEFGH, number:"});
  auto allowed = [&](int64_t row) {  // the characters the mask leaves finite
    std::string out;
    auto m = rows.mask(at::zeros({2, V}));
    for (int64_t v = 0; v < V; ++v)
      if (std::isfinite(m[row][v].item<float>())) out += t.character(v);
    return out;
  };
  CHECK(allowed(0) == "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
  CHECK(allowed(1) == "0123456789");
  auto push = [&](char a, char b) { rows.push(at::tensor({t.id(a), t.id(b)}, at::kLong)); };
  for (char c : std::string("QWERTYUI")) push(c, c == 'Q' ? '4' : '#');  // row 1: "4", then the pad ends it
  CHECK(allowed(0) == ".");
  CHECK(rows.finished(1));
  CHECK(allowed(1) == "#");
  push('.', '#');
  CHECK(rows.finished(0));  // a complete line after which only the pad may come
  CHECK(rows.all_finished());
  CHECK_THROWS_WITH(vlm::ConstrainedRows(seed_format(), t, {"number:x"}), Catch::Contains("column"));

  // The draw: greedy and top-1 are the argmax; a seeded generator draws the same twice; -inf is never drawn.
  auto logits = at::randn({64, V});
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(3), g2 = at::make_generator<at::CPUGeneratorImpl>(3);
  CHECK(at::equal(vlm::sample_next(logits, 1.0, 0, true, g1), logits.argmax(1)));
  CHECK(at::equal(vlm::sample_next(logits, 0.7, 1, false, g1), logits.argmax(1)));
  g1 = at::make_generator<at::CPUGeneratorImpl>(3);
  CHECK(at::equal(vlm::sample_next(logits, 0.8, 5, false, g1), vlm::sample_next(logits, 0.8, 5, false, g2)));
  auto masked = logits.clone();
  masked.narrow(1, 0, V - 1).fill_(-std::numeric_limits<float>::infinity());
  CHECK((vlm::sample_next(masked, 1.0, 0, false, g1) == V - 1).all().item<bool>());
}
