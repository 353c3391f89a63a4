#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/eval/evaluator.h"
#include "vlm/eval/metrics.h"
#include "vlm/io/png.h"
#include "vlm/io/png_read.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace {
const vlm::SequenceFormat& fmt_seed() {
  static const vlm::SequenceFormat f = vlm::SequenceFormat::seed();
  return f;
}
vlm::CharTokenizer tok() { return vlm::CharTokenizer::for_format(fmt_seed()); }
// The seed's format with image strings of 1 to 8 letters: prompts of several lengths, the same vocabulary.
const vlm::SequenceFormat& fmt_variable() {
  static const vlm::SequenceFormat f = [] {
    auto image = vlm::FieldSpec::codec_field("image", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0);
    image.max_length = 8;
    return vlm::SequenceFormat({image, fmt_seed().field(1)}, {fmt_seed().template_pattern(0), fmt_seed().template_pattern(1)});
  }();
  return f;
}
std::string classification_prompt(const std::string& image) { return "image:" + image + ", number:"; }
// Records to classify: the image letters, the label field left to the classifier.
std::vector<vlm::Record> records_of(const std::vector<std::string>& images) {
  std::vector<vlm::Record> out;
  for (const auto& s : images) out.push_back({0, {s, "0"}});
  return out;
}
vlm::GPT tiny_gpt(uint64_t seed) {
  vlm::seed_everything(seed);
  return vlm::GPT(vlm::GPTOptions().vocab_size(tok().vocab_size()).block_size(32).n_layer(2).n_head(2).n_embd(32));
}
std::vector<std::string> random_strings(int64_t n, uint64_t seed, int length = 8) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) {
    std::string s;
    for (int k = 0; k < length; ++k) s += static_cast<char>('A' + rng() % 26);
    out.push_back(s);
  }
  return out;
}
// The label of a string in the learnable task: its first letter, mod 10.
int64_t rule(const std::string& s) { return (s[0] - 'A') % 10; }

// A tiny GPT trained (full batch, a few hundred Adam steps) on "image:XXXXXXXX, number:d." with d = rule(image):
// it then answers the classification prompts of its training strings correctly, greedily.
vlm::GPT trained_gpt(const std::vector<std::string>& images) {
  auto model = tiny_gpt(5);
  auto t = tok();
  std::vector<int64_t> ids;
  for (const auto& s : images) {
    auto e = t.encode(classification_prompt(s) + std::to_string(rule(s)) + ".");
    ids.insert(ids.end(), e.begin(), e.end());
  }
  const int64_t T = static_cast<int64_t>(ids.size() / images.size());
  auto data = at::tensor(ids, at::kLong).view({static_cast<int64_t>(images.size()), T});
  auto x = data.narrow(1, 0, T - 1), y = data.narrow(1, 1, T - 1);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-2));
  model->train();
  for (int step = 0; step < 300; ++step) {
    auto logits = model->forward(x);
    auto loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  model->eval();
  return model;
}

// Brute force: a full forward on one prompt, log-softmax over the whole vocabulary at its last position, the ten
// digit tokens picked out.
at::Tensor brute_force_digit_log_probs(vlm::GPT& model, const vlm::CharTokenizer& t, const std::string& image) {
  at::NoGradGuard no_grad;
  auto x = at::tensor(t.encode(classification_prompt(image)), at::kLong).view({1, -1});
  auto lp = at::log_softmax(model->forward(x)[0][-1], -1);
  std::vector<double> out;
  for (int d = 0; d < 10; ++d) out.push_back(lp[t.encode(std::to_string(d))[0]].item<double>());
  return at::tensor(out, at::kDouble);
}

// Greedy decoding by full forwards (no cache): the first two characters after the prompt.
std::string brute_force_greedy(vlm::GPT& model, const vlm::CharTokenizer& t, const std::string& prompt, int n) {
  at::NoGradGuard no_grad;
  auto ids = t.encode(prompt);
  std::string out;
  for (int i = 0; i < n; ++i) {
    auto x = at::tensor(ids, at::kLong).view({1, -1});
    int64_t next = model->forward(x)[0][-1].argmax().item<int64_t>();
    ids.push_back(next);
    out += t.decode({next});
  }
  return out;
}

// A VQ-VAE whose codebook went through the k-means init (codes depend on the image), and an untrained classifier.
vlm::ImageTokenCodec small_codec() {
  at::manual_seed(21);
  vlm::VQVAE model(vlm::VQVAEOptions::preset("mlp"));
  model->train();
  model->forward(at::rand({64, 1, 28, 28}));
  model->eval();
  return vlm::ImageTokenCodec(model);
}
vlm::ImageClassifier small_classifier() {
  at::manual_seed(22);
  vlm::ImageClassifier c;
  c->eval();
  return c;
}
// The classifier's answer for one image, by its own forward (not classifier_probabilities).
int64_t predict_one(vlm::ImageClassifier& c, const at::Tensor& image) {
  at::NoGradGuard no_grad;
  c->eval();
  return c->forward(image.unsqueeze(0))[0].argmax().item<int64_t>();
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
  const std::vector<std::string> digits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  auto m = vlm::classification_metrics(pred, labels, digits);
  CHECK(m.accuracy == Approx(3.0 / 6));
  CHECK(m.invalid == 1);
  CHECK(m.confusion[4][9] == 2);
  REQUIRE_FALSE(m.top_confusions.empty());
  CHECK(m.top_confusions[0].truth == 4);
  CHECK(m.top_confusions[0].predicted == 9);
  CHECK(m.top_confusions[0].rate == Approx(2.0 / 3));
  auto probs = at::zeros({6, 10});
  for (int i = 0; i < 6; ++i) probs[i][pred[i].item<int64_t>() < 0 ? 0 : pred[i].item<int64_t>()] = 0.6, probs[i][4] += 0.4;
  auto m2 = vlm::classification_metrics(pred.clamp_min(0), labels, digits, probs);
  CHECK(m.to_json()["top_confusions"][0]["true"] == "4");  // named by the label words
  CHECK_THROWS_WITH(vlm::classification_metrics(pred, labels, {"a"}), Catch::Contains("two classes"));
  CHECK(m2.top2_accuracy == Approx(5.0 / 6));  // the 9 predicted for a true 9 with 4 second; row 4 (-1->0) misses 9
}

TEST_CASE("Exact classification equals a full forward per prompt, batched by length", "[evaluator][classify]") {
  auto model = tiny_gpt(11);
  model->train();  // the call must run in eval mode and restore this
  auto t = tok();
  auto images = random_strings(9, 3);
  for (auto& s : random_strings(4, 4, 7)) images.push_back(s);  // a second prompt length, interleaved batches
  const int64_t N = static_cast<int64_t>(images.size());
  auto labels = at::randint(0, 10, {N}, at::kLong);
  auto exact = vlm::classify_exact(model, t, fmt_variable(), records_of(images), labels, /*batch_size=*/3);
  CHECK(model->is_training());
  model->eval();
  REQUIRE(exact.predicted.size() == images.size());
  REQUIRE(exact.log_probs.sizes() == at::IntArrayRef({N, 10}));
  int64_t right = 0;
  for (int64_t i = 0; i < N; ++i) {
    auto expected = brute_force_digit_log_probs(model, t, images[i]);
    CHECK(exact.log_probs[i].to(at::kDouble).allclose(expected, 1e-4, 1e-5));
    CHECK(exact.predicted[i] == expected.argmax().item<int64_t>());
    CHECK(exact.probs[i].to(at::kDouble).allclose(at::softmax(expected, 0), 1e-4, 1e-5));
    right += exact.predicted[i] == labels[i].item<int64_t>();
  }
  REQUIRE(exact.has_labels);
  CHECK(exact.metrics.n == N);
  CHECK(exact.metrics.accuracy == Approx(double(right) / N));
  CHECK(exact.to_json()["accuracy"] == exact.metrics.accuracy);
  CHECK(exact.to_json().contains("seconds"));

  auto unlabeled = vlm::classify_exact(model, t, fmt_variable(), records_of(images));
  CHECK_FALSE(unlabeled.has_labels);
  CHECK(unlabeled.predicted == exact.predicted);
  CHECK(unlabeled.to_json()["n"] == N);
  CHECK_FALSE(unlabeled.to_json().contains("accuracy"));
  CHECK_THROWS_WITH(vlm::classify_exact(model, t, fmt_variable(), records_of(images), at::zeros({3}, at::kLong)),
                    Catch::Contains("labels"));
  CHECK_THROWS_WITH(vlm::classify_exact(model, t, fmt_seed(), records_of(images)), Catch::Contains("needs 8 letters"));
}

TEST_CASE("A trained GPT classifies its task exactly and by sampling, as brute force says", "[evaluator][classify]") {
  auto images = random_strings(30, 7);
  auto model = trained_gpt(images);
  auto t = tok();
  std::vector<int64_t> truth;
  for (const auto& s : images) truth.push_back(rule(s));
  auto labels = at::tensor(truth, at::kLong);

  auto exact = vlm::classify_exact(model, t, fmt_seed(), records_of(images), labels, 8);
  CHECK(exact.metrics.accuracy == 1.0);
  CHECK(vlm::classification_accuracy(exact.predicted, truth) == 1.0);

  // Greedy "sampling": each answer must be what greedy decoding by full forwards writes, parsed.
  auto sampled = vlm::classify_sampled(model, t, fmt_seed(), records_of(images), labels,
                                       vlm::SamplerOptions().greedy(true));
  REQUIRE(sampled.predicted.size() == images.size());
  int64_t right = 0, invalid = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    int64_t expected =
        vlm::parse_word_answer(fmt_seed().field(1), brute_force_greedy(model, t, classification_prompt(images[i]), 2), '.');
    CHECK(sampled.predicted[i] == expected);
    right += expected == truth[i], invalid += expected < 0;
  }
  CHECK(right == static_cast<int64_t>(images.size()));  // the trained model answers "d." for every string
  CHECK(sampled.metrics.accuracy == Approx(double(right) / images.size()));
  CHECK(sampled.metrics.invalid == invalid);
  CHECK(sampled.to_json()["n"] == images.size());

  // Labels shifted by one: exact accuracy must drop to zero (a test that can fail).
  auto wrong = vlm::classify_exact(model, t, fmt_seed(), records_of(images), (labels + 1) % 10);
  CHECK(wrong.metrics.accuracy == 0.0);
}

TEST_CASE("A sampled answer parses only as a whole word and the delimiter", "[evaluator]") {
  const auto& number = fmt_seed().field(1);
  CHECK(vlm::parse_word_answer(number, "7.", '.') == 7);
  CHECK(vlm::parse_word_answer(number, "0.###", '.') == 0);
  CHECK(vlm::parse_word_answer(number, "77.", '.') == -1);
  CHECK(vlm::parse_word_answer(number, "A.", '.') == -1);
  CHECK(vlm::parse_word_answer(number, "7", '.') == -1);
  CHECK(vlm::parse_word_answer(number, "", '.') == -1);
  const auto item = vlm::FieldSpec::label_field("item", {"shirt", "tshirt", "bag"});
  CHECK(vlm::parse_word_answer(item, "tshirt.", '.') == 1);
  CHECK(vlm::parse_word_answer(item, "shirt.", '.') == 0);
  CHECK(vlm::parse_word_answer(item, "shir.", '.') == -1);
}

TEST_CASE("Distinct and memorised fractions on hand-built strings", "[evaluator][generation]") {
  std::vector<std::string> s = {"AAAAAAAA", "AAAAAAAA", "BBBBBBBB", "CCCCCCCC", ""};
  std::unordered_set<std::string> train = {"AAAAAAAA", "CCCCCCCC", "ZZZZZZZZ"};
  CHECK(vlm::distinct_fraction(s) == Approx(4.0 / 5));
  CHECK(vlm::memorised_fraction(s, train) == Approx(3.0 / 5));
  CHECK(vlm::memorised_fraction(s, {}) == 0.0);
  CHECK_THROWS_AS(vlm::distinct_fraction({}), vlm::Error);

  // generation_metrics over hand-built generations: rates and fractions from the counts.
  vlm::Generation gen, free_gen;
  gen.values.assign(10, {});
  free_gen.values.assign(10, {});
  gen.values[0] = {"AAAAAAAA", "AAAAAAAA"};
  gen.values[1] = {"BBBBBBBB", "CCCCCCCC"};
  gen.total = 4;
  free_gen.values[0] = {"", "DDDDDDDD"};
  free_gen.values[1] = {"", ""};
  free_gen.total = 4, free_gen.invalid = 3;
  auto opts = vlm::SamplerOptions().temperature(0.7).top_k(5);
  auto m = vlm::generation_metrics(gen, free_gen, opts, &train);
  CHECK(m.samples_per_class == 2);
  CHECK(m.invalid_rate_constrained == 0.0);
  CHECK(m.invalid_rate_unconstrained == Approx(0.75));
  CHECK(m.distinct_fraction == Approx(3.0 / 4));
  REQUIRE(m.memorised_fraction.has_value());
  CHECK(*m.memorised_fraction == Approx(3.0 / 4));
  auto j = m.to_json();
  CHECK(j["temperature"] == 0.7);
  CHECK(j["top_k"] == 5);
  CHECK(j["memorised_fraction"].get<double>() == Approx(0.75));
  CHECK_FALSE(vlm::generation_metrics(gen, free_gen, opts).to_json().contains("memorised_fraction"));
}

TEST_CASE("Constrained generation is never invalid: unconstrained validity matches an independent check",
          "[evaluator][generation]") {
  auto model = tiny_gpt(13);  // untrained: unconstrained text is mostly not an image
  auto t = tok();
  auto opts = vlm::SamplerOptions().temperature(1.5).seed(3);
  auto gen = vlm::generate_per_class(model, t, fmt_seed(), 0, 1, 6, opts, /*constrained=*/true);
  CHECK(gen.invalid == 0);
  CHECK(gen.total == 60);
  CHECK(gen.words == fmt_seed().field(1).words);
  for (const auto& row : gen.values) {
    REQUIRE(row.size() == 6);
    for (const auto& s : row) {
      REQUIRE(s.size() == 8);
      for (char c : s) CHECK((c >= 'A' && c <= 'Z'));
    }
  }
  auto free_gen = vlm::generate_per_class(model, t, fmt_seed(), 0, 1, 6, opts, /*constrained=*/false);
  int64_t invalid = 0;
  for (int d = 0; d < 10; ++d)
    for (int i = 0; i < 6; ++i) {
      const auto& c = free_gen.completions[d][i];
      bool ok = c.size() == 9 && c[8] == '.';
      for (int k = 0; ok && k < 8; ++k) ok = c[k] >= 'A' && c[k] <= 'Z';
      invalid += !ok;
      CHECK(free_gen.values[d][i] == (ok ? c.substr(0, 8) : std::string()));
    }
  CHECK(free_gen.invalid == invalid);
  CHECK(invalid > 0);  // an untrained model writes invalid strings unless constrained
  auto m = vlm::generation_metrics(gen, free_gen, opts);
  CHECK(m.invalid_rate_unconstrained == Approx(invalid / 60.0));
  CHECK(m.invalid_rate_constrained == 0.0);
}

TEST_CASE("Graded generation counts the classifier's answers on decoded strings, per digit", "[evaluator][codec]") {
  auto codec = small_codec();
  auto classifier = small_classifier();
  // A pool of strings, each with the classifier's answer on its decoded image (one image at a time).
  auto pool = random_strings(300, 9);
  std::vector<int64_t> answer;
  for (const auto& s : pool) answer.push_back(predict_one(classifier, codec.decode_text_one(s)));
  // Row d: up to (d % 3 + 1) strings the classifier reads as d, two it reads as something else, one invalid "".
  vlm::Generation gen;
  gen.words = fmt_seed().field(1).words;
  gen.values.assign(10, {});
  std::vector<int64_t> hits(10, 0);
  int64_t total_hits = 0, total = 0;
  for (int64_t d = 0; d < 10; ++d) {
    int64_t others = 0;
    for (size_t i = 0; i < pool.size(); ++i) {
      if (answer[i] == d && hits[d] < d % 3 + 1) gen.values[d].push_back(pool[i]), ++hits[d];
      else if (answer[i] != d && others < 2) gen.values[d].push_back(pool[i]), ++others;
    }
    gen.values[d].push_back("");
    total_hits += hits[d], total += static_cast<int64_t>(gen.values[d].size());
  }
  gen.total = total, gen.invalid = 10;
  auto graded = vlm::grade_generation(codec, *vlm::classifier_grader(classifier), gen);
  REQUIRE(graded.per_class.size() == 10);
  for (int64_t d = 0; d < 10; ++d) {
    CHECK(graded.recognised[d] == hits[d]);
    CHECK(graded.per_class[d] == Approx(double(hits[d]) / gen.values[d].size()));
  }
  CHECK(graded.graded_accuracy == Approx(double(total_hits) / total));
  CHECK(total_hits > 0);  // the pool must give some hits, or this test checks only zeros
  auto j = graded.to_json();
  CHECK(j["graded_accuracy"].get<double>() == Approx(graded.graded_accuracy));
  CHECK(j["graded_accuracy_per_class"].size() == 10);
  CHECK(j["graded_accuracy_per_class"]["3"].get<double>() == Approx(graded.per_class[3]));

  vlm::testing::TempDir dir;
  vlm::write_graded_accuracy_svg(dir.file("g.svg"), graded);
  vlm::write_generation_grid(dir.file("grid.png"), codec, gen, 5);
  auto png = vlm::read_image_gray(dir.file("grid.png"));
  CHECK(png.size(2) == 5 * (28 + 2) + 2);
  CHECK(png.size(1) == 10 * (28 + 2) + 2);
  CHECK(std::filesystem::exists(dir.file("g.svg")));
}

TEST_CASE("The reference ceiling is the classifier's accuracy on real images and on reconstructions", "[evaluator][codec]") {
  auto codec = small_codec();
  auto classifier = small_classifier();
  at::manual_seed(5);
  auto images = at::rand({24, 1, 28, 28});
  // Labels = the classifier's own answers on the real images, except the first 6 (shifted): real accuracy 18/24.
  std::vector<int64_t> labels;
  int64_t recon_right = 0;
  for (int64_t i = 0; i < 24; ++i) {
    int64_t real = predict_one(classifier, images[i]);
    int64_t label = i < 6 ? (real + 1) % 10 : real;
    labels.push_back(label);
    auto recon = codec.decode_text_one(codec.encode_text_one(images[i]));
    recon_right += predict_one(classifier, recon) == label;
  }
  auto c = vlm::reference_classifier_ceiling(codec, *vlm::classifier_grader(classifier), images,
                                             at::tensor(labels, at::kLong));
  CHECK(c.accuracy_real_test == Approx(18.0 / 24));
  CHECK(c.accuracy_codec_reconstructions == Approx(recon_right / 24.0));
  CHECK(c.to_json()["accuracy_real_test"].get<double>() == Approx(0.75));
}

TEST_CASE("Token usage counts letters per code and per digit and position", "[evaluator][tokens]") {
  std::vector<std::string> s = {"AB", "AC", "BB", "AA"};
  auto labels = at::tensor({3, 3, 5, 12}, at::kLong);  // 12 is no digit: counted in usage, not in the logo
  auto u = vlm::token_usage(s, labels, "ABCD", fmt_seed().field(1).words, /*logo_examples=*/3);
  REQUIRE(u.frequency.size() == 4);
  CHECK(u.frequency[0] == Approx(4.0 / 8));
  CHECK(u.frequency[1] == Approx(3.0 / 8));
  CHECK(u.frequency[2] == Approx(1.0 / 8));
  CHECK(u.frequency[3] == 0.0);
  CHECK(u.codes_used == 3);
  CHECK(u.logo_examples == 3);
  CHECK(u.position_counts[3][0].at('A') == 2);
  CHECK(u.position_counts[3][1].at('B') == 1);
  CHECK(u.position_counts[3][1].at('C') == 1);
  CHECK(u.position_counts[5][0].at('B') == 1);
  CHECK(u.to_json()["frequency"]["A"].get<double>() == Approx(0.5));
  vlm::testing::TempDir dir;
  vlm::write_token_figures(u, dir.str());
  CHECK(std::filesystem::exists(dir.file("token_logo.svg")));
  CHECK(std::filesystem::exists(dir.file("codebook_usage.svg")));
}

TEST_CASE("The speed report counts positions and reports what it timed", "[evaluator][speed]") {
  auto model = tiny_gpt(14);
  auto t = tok();
  auto images = random_strings(10, 2);
  vlm::SpeedOptions o;
  o.naive_prompts = 3;
  o.cache_prompts = 4;
  auto r = vlm::speed_report(model, t, fmt_seed(), records_of(images), o);
  CHECK(r.naive_prompts_timed == 3);
  // "image:ABCDEFGH, number:" is 23 characters: the naive loop runs 23, 24, ..., 32 positions (block 32).
  CHECK(r.naive_positions_per_prompt == 23 + 24 + 25 + 26 + 27 + 28 + 29 + 30 + 31 + 32);
  CHECK(r.exact_positions_per_prompt == 23 - 6);  // "image:" is shared
  CHECK(r.exact_seconds > 0);
  CHECK(r.naive_seconds_extrapolated == Approx(r.naive_seconds_per_prompt * 10));
  for (auto key : {"exact_seconds", "naive_prompts_timed", "naive_seconds_per_prompt", "naive_seconds_extrapolated",
                   "exact_speedup_vs_naive", "naive_positions_per_prompt", "exact_positions_per_prompt"})
    CHECK(r.to_json().contains(key));
  for (auto key : {"tokens_per_second_cached", "tokens_per_second_uncached", "cache_speedup"})
    CHECK(r.cache_json()[key].get<double>() > 0);
  o.naive_prompts = 0, o.cache_prompts = 0;
  auto none = vlm::speed_report(model, t, fmt_seed(), records_of(images), o);
  CHECK(none.to_json().empty());
  CHECK(none.cache_json().empty());
}

TEST_CASE("A whole evaluation composes the metric functions into summary.json and the figures", "[evaluator]") {
  vlm::testing::TempDir dir;
  auto codec = small_codec();
  auto classifier = small_classifier();
  vlm::EvaluationInputs in;
  in.model = tiny_gpt(12);
  in.tokenizer = tok();
  at::manual_seed(6);
  in.test_items = at::rand({40, 1, 28, 28});
  const auto test_strings = codec.encode_text(in.test_items);
  const auto test_labels = at::arange(40) % 10;
  for (int64_t i = 0; i < 40; ++i)
    in.test_records.push_back(vlm::Record{i % 2, {test_strings[i], std::to_string(i % 10)}});
  in.codec = &codec;
  in.grader = vlm::classifier_grader(classifier);
  vlm::EvaluatorOptions o;
  o.out_dir = dir.file("eval");
  o.samples_per_class = 4;
  o.naive_prompts = 3;
  o.grid_columns = 6;

  // The same generation the evaluator will draw (same options and seed): half of it goes into the training set.
  auto gen_opts = vlm::SamplerOptions().temperature(o.gen_temperature).top_k(o.gen_top_k).seed(o.seed)
                      .batch_size(o.batch_size);
  auto gen = vlm::generate_per_class(in.model, in.tokenizer, fmt_seed(), 0, 1, 4, gen_opts, /*constrained=*/true);
  std::unordered_set<std::string> train;
  for (int d = 0; d < 10; d += 2) train.insert(gen.values[d].begin(), gen.values[d].end());
  int64_t memorised = 0;
  for (const auto& s : gen.all_values()) memorised += train.count(s);
  in.train_strings = &train;

  auto s = vlm::run_evaluation(in, o);
  auto exact = vlm::classify_exact(in.model, in.tokenizer, fmt_seed(), in.test_records, test_labels);
  CHECK(s["classification_exact"]["n"] == 40);
  CHECK(s["classification_exact"]["accuracy"].get<double>() == Approx(exact.metrics.accuracy));
  CHECK(s["generation"]["invalid_rate_constrained"] == 0.0);
  CHECK(s["generation"]["memorised_fraction"].get<double>() == Approx(memorised / 40.0));
  CHECK(memorised >= 20);  // the even digits' strings, at least
  auto graded = vlm::grade_generation(codec, *in.grader, gen);
  CHECK(s["generation"]["graded_accuracy"].get<double>() == Approx(graded.graded_accuracy));
  auto ceiling = vlm::reference_classifier_ceiling(codec, *in.grader, in.test_items, test_labels);
  CHECK(s["reference_classifier"]["accuracy_codec_reconstructions"].get<double>() ==
        Approx(ceiling.accuracy_codec_reconstructions));
  for (auto key : {"tokens_per_second_cached", "tokens_per_second_uncached", "cache_speedup"})
    CHECK(s["generation"].contains(key));
  CHECK(s["speed"]["naive_prompts_timed"] == 3);
  CHECK(s["skipped"].empty());
  for (auto f : {"summary.json", "confusion.svg", "token_logo.svg", "codebook_usage.svg", "generated.png",
                 "generated_unconstrained.png", "graded_accuracy.svg"})
    CHECK(std::filesystem::exists(dir.file(std::string("eval/") + f)));
  auto png = vlm::read_image_gray(dir.file("eval/generated.png"));
  CHECK(png.size(2) == 6 * (28 + 2) + 2);
  CHECK(png.size(1) == 10 * (28 + 2) + 2);
}
