#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/eval/evaluator.h"
#include "vlm/eval/metrics.h"
#include "vlm/io/png.h"
#include "vlm/io/png_read.h"
#include "vlm/text/sequences.h"

namespace {
vlm::CharTokenizer tok() { return vlm::CharTokenizer::for_sequences(vlm::kSeedImageAlphabet); }
vlm::GPT tiny_gpt(uint64_t seed) {
  vlm::seed_everything(seed);
  return vlm::GPT(vlm::GPTOptions().vocab_size(tok().vocab_size()).block_size(32).n_layer(2).n_head(2).n_embd(32));
}
std::vector<std::string> random_strings(int64_t n, uint64_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    std::string s;
    for (int k = 0; k < 8; ++k) s += static_cast<char>('A' + rng() % 26);
    out.push_back(s);
  }
  return out;
}
}  // namespace

TEST_CASE("The standard error of an accuracy follows the binomial formula", "[metrics]") {
  CHECK(vlm::standard_error(0.9, 100) == Approx(0.03));
  CHECK(vlm::standard_error(0.5, 10000) == Approx(0.005));
  CHECK(vlm::standard_error(1.0, 7) == 0.0);
  CHECK_THROWS_AS(vlm::standard_error(0.5, 0), vlm::Error);
}

TEST_CASE("Expected calibration error on a hand-computed case", "[metrics]") {
  // Two examples at confidence 0.9 (one right, one wrong) and two at 0.6 (both right), 10 bins:
  // bin (0.8, 0.9]: |0.5 - 0.9| * 2/4 = 0.2; bin (0.5, 0.6]: |1.0 - 0.6| * 2/4 = 0.2; ECE = 0.4.
  auto probs = at::tensor({0.9, 0.1, 0.9, 0.1, 0.6, 0.4, 0.4, 0.6}, at::kDouble).view({4, 2});
  auto labels = at::tensor({0, 1, 0, 1}, at::kLong);
  CHECK(vlm::expected_calibration_error(probs, labels, 10) == Approx(0.4));
  auto perfect = at::tensor({1.0, 0.0, 0.0, 1.0}, at::kDouble).view({2, 2});
  CHECK(vlm::expected_calibration_error(perfect, at::tensor({0, 1}, at::kLong), 10) == Approx(0.0));
}

TEST_CASE("Classification metrics count confusions, invalid answers and top-2", "[metrics]") {
  auto labels = at::tensor({4, 4, 4, 9, 9, 7}, at::kLong);
  auto pred = at::tensor({4, 9, 9, 9, -1, 7}, at::kLong);
  auto m = vlm::classification_metrics(pred, labels);
  CHECK(m.accuracy == Approx(3.0 / 6));
  CHECK(m.invalid == 1);
  CHECK(m.confusion[4][9] == 2);
  REQUIRE_FALSE(m.top_confusions.empty());
  CHECK(m.top_confusions[0].truth == 4);
  CHECK(m.top_confusions[0].predicted == 9);
  CHECK(m.top_confusions[0].rate == Approx(2.0 / 3));
  auto probs = at::zeros({6, 10});
  for (int i = 0; i < 6; ++i) probs[i][pred[i].item<int64_t>() < 0 ? 0 : pred[i].item<int64_t>()] = 0.6, probs[i][4] += 0.4;
  auto m2 = vlm::classification_metrics(pred.clamp_min(0), labels, probs);
  CHECK(m2.top2_accuracy == Approx(5.0 / 6));  // the 9 predicted for a true 9 with 4 second; row 4 (-1->0) misses 9
}

TEST_CASE("Exact classification equals brute-force scoring of the ten completions", "[evaluator]") {
  auto model = tiny_gpt(11);
  model->eval();
  auto t = tok();
  auto images = random_strings(12, 3);
  auto labels = at::randint(0, 10, {12}, at::kLong);
  auto exact = vlm::classify_exact(model, t, images, labels, 5);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < images.size(); ++i) {
    // Score each full sequence "image:ABCDEFGH, number:d." by its total log-likelihood; the shared prefix cancels,
    // so the best digit must match the single-pass argmax.
    double best = -1e30;
    int64_t best_d = -1;
    for (int d = 0; d < 10; ++d) {
      auto ids = t.encode(vlm::classification_prompt(images[i]) + std::to_string(d));
      auto x = at::tensor(ids, at::kLong).view({1, -1});
      auto lp = at::log_softmax(model->forward(x.narrow(1, 0, x.size(1) - 1)), -1);  // (1, T-1, V)
      double total = lp.squeeze(0).gather(1, x.narrow(1, 1, x.size(1) - 1).t()).sum().item<double>();
      if (total > best) best = total, best_d = d;
    }
    CHECK(exact.predicted[i].item<int64_t>() == best_d);
  }
  CHECK(exact.probs.sum(1).allclose(at::ones({12})));
}

TEST_CASE("A sampled answer parses only as a single digit and a dot", "[evaluator]") {
  CHECK(vlm::parse_digit_answer("7.") == 7);
  CHECK(vlm::parse_digit_answer("0.###") == 0);
  CHECK(vlm::parse_digit_answer("77.") == -1);
  CHECK(vlm::parse_digit_answer("A.") == -1);
  CHECK(vlm::parse_digit_answer("7") == -1);
}

TEST_CASE("A generated grid PNG reads back with the right size", "[evaluator][png]") {
  vlm::testing::TempDir dir;
  auto grid = vlm::image_grid(at::rand({10 * 12, 1, 28, 28}), 12);  // digits as rows, 12 samples each
  vlm::write_png(dir.file("g.png"), grid);
  auto back = vlm::read_image_gray(dir.file("g.png"));
  CHECK(back.size(2) == 12 * (28 + 2) + 2);
  CHECK(back.size(1) == 10 * (28 + 2) + 2);
  CHECK_THROWS_WITH(vlm::read_image_gray(dir.file("missing.png")), Catch::Contains("missing.png"));
}

TEST_CASE("A whole evaluation of an untrained model writes its summary and figures", "[evaluator]") {
  vlm::testing::TempDir dir;
  vlm::EvaluationInputs in;
  in.model = tiny_gpt(12);
  in.tokenizer = tok();
  in.test_strings = random_strings(40, 5);
  in.test_labels = at::arange(40) % 10;
  std::unordered_set<std::string> train(in.test_strings.begin(), in.test_strings.end());
  in.train_strings = &train;
  vlm::EvaluatorOptions o;
  o.out_dir = dir.file("eval");
  o.samples_per_digit = 4;
  o.naive_prompts = 3;
  auto s = vlm::run_evaluation(in, o);
  CHECK(s["classification_exact"]["n"] == 40);
  CHECK(s["generation"]["invalid_rate_constrained"] == 0.0);
  CHECK(s["generation"]["memorised_fraction"].get<double>() <= 1.0);
  for (auto f : {"summary.json", "confusion.svg", "token_logo.svg", "codebook_usage.svg"})
    CHECK(std::filesystem::exists(dir.file(std::string("eval/") + f)));
}
