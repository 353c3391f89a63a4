// A modality that is not an image, defined here and nowhere in the library: a 1-D signal codec, two codec fields of
// it and a label in one line, a tiny GPT trained on the lines, classification and generation through the library.
#include <catch2/catch.hpp>

#include <random>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/data/token_dataset.h"
#include "vlm/eval/evaluator.h"
#include "vlm/io/checkpoint.h"
#include "vlm/text/format_automaton.h"
#include "vlm/tokenizer/token_codec.h"
#include "vlm/train/gpt_trainer.h"

namespace {

// A signal of 12 samples in [0, 1] -> 6 letters: the mean of each pair of samples, quantised to 4 levels a..d.
class SignalCodec : public vlm::TokenCodec {
 public:
  static constexpr const char* kKind = "test-signal";
  std::string kind() const override { return kKind; }
  std::string alphabet() const override { return "abcd"; }
  int64_t length() const override { return 6; }
  std::vector<std::string> encode(const at::Tensor& signals) const override {
    VLM_CHECK(signals.dim() == 2 && signals.size(1) == 12, "SignalCodec: (N, 12) signals expected");
    auto pairs = signals.view({-1, 6, 2}).mean(2);                              // (N, 6)
    auto levels = (pairs * 4).floor().clamp(0, 3).to(at::kLong).contiguous();  // (N, 6)
    std::vector<std::string> out;
    for (int64_t i = 0; i < levels.size(0); ++i) {
      std::string s;
      for (int64_t k = 0; k < 6; ++k) s += static_cast<char>('a' + levels[i][k].item<int64_t>());
      out.push_back(s);
    }
    return out;
  }
  at::Tensor decode(const std::vector<std::string>& texts) const override {
    auto out = at::empty({static_cast<int64_t>(texts.size()), 12});
    for (size_t i = 0; i < texts.size(); ++i) {
      VLM_CHECK(texts[i].size() == 6, "SignalCodec: 6 letters expected, got '", texts[i], "'");
      for (int64_t k = 0; k < 12; ++k) out[i][k] = (texts[i][k / 2] - 'a' + 0.5) / 4.0;
    }
    return out;
  }
  void save(const std::string& path, const nlohmann::json& extra = nlohmann::json::object()) const override {
    vlm::CheckpointWriter(kKind, 1, extra).save(path);
  }
  static std::unique_ptr<vlm::TokenCodec> load(const std::string& path, c10::Device) {
    vlm::CheckpointReader(path, kKind, 1);  // checks kind and version
    return std::make_unique<SignalCodec>();
  }
};
const vlm::CodecRegistration kRegistration(SignalCodec::kKind, &SignalCodec::load);

const std::vector<std::string> kShapes = {"rise", "fall", "flat"};

// n signals of shape c (0 rise, 1 fall, 2 flat) with noise.
at::Tensor signals(const std::vector<int64_t>& shape, std::mt19937& rng) {
  std::normal_distribution<float> noise(0.0f, 0.04f);
  auto out = at::empty({static_cast<int64_t>(shape.size()), 12});
  for (size_t i = 0; i < shape.size(); ++i)
    for (int64_t k = 0; k < 12; ++k) {
      const float t = k / 11.0f, v = shape[i] == 0 ? t : shape[i] == 1 ? 1 - t : 0.5f;
      out[i][k] = std::min(1.0f, std::max(0.0f, v + noise(rng)));
    }
  return out;
}

// The grader of the domain: the sign of the slope.
at::Tensor slope_grader(const at::Tensor& s) {
  auto slope = s.narrow(1, 8, 4).mean(1) - s.narrow(1, 0, 4).mean(1);  // (N)
  return at::where(slope > 0.25, at::zeros_like(slope), at::where(slope < -0.25, at::ones_like(slope),
                                                                   at::full_like(slope, 2))).to(at::kLong);
}

}  // namespace

TEST_CASE("A 1-D signal codec with two codec fields in one line trains, classifies and generates", "[modality]") {
  vlm::testing::TempDir dir;
  // The registry loads a codec it was never told about in the library.
  SignalCodec().save(dir.file("signal.pt"));
  auto codec = vlm::load_codec(dir.file("signal.pt"));
  CHECK(codec->kind() == "test-signal");
  CHECK_THROWS_WITH(vlm::register_codec("test-signal", &SignalCodec::load), Catch::Contains("registered twice"));
  CHECK_FALSE(codec->write_grid_png(dir.file("no.png"), {{"abcdab"}}, 1));  // no pictures in this modality

  const vlm::SequenceFormat format({codec->field("a"), codec->field("b"), vlm::FieldSpec::label_field("shape", kShapes)},
                                   {"a:{a} b:{b} shape:{shape}.", "shape:{shape} a:{a} b:{b}."}, 32);
  auto make = [&](int64_t n, uint64_t seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::vector<int64_t> shape;
    for (int64_t i = 0; i < n; ++i) shape.push_back(static_cast<int64_t>(rng() % 3));
    std::vector<std::vector<std::string>> columns(3);
    columns[0] = codec->encode(signals(shape, rng));
    columns[1] = codec->encode(signals(shape, rng));
    for (auto c : shape) columns[2].push_back(kShapes[c]);
    return vlm::make_records(format, columns, seed);
  };
  auto train = make(600, 1), test = make(90, 2);

  vlm::GPTTrainOptions o;
  o.out_dir = dir.file("gpt");
  o.batch_size = 32;
  o.max_iters = o.lr_decay_iters = 300;
  o.learning_rate = 5e-3;
  o.min_lr = 5e-4;
  o.warmup_iters = 10;
  o.eval_interval = 0;
  o.checkpoint_interval = 0;
  o.eval_iters = 2;
  o.eval_classify = -1;
  o.quiet = true;
  vlm::seed_everything(3);
  vlm::GPTTrainer trainer(vlm::GPTOptions().block_size(32).n_layer(2).n_head(2).n_embd(48), o,
                          vlm::TokenDataset::build(format, train), vlm::TokenDataset::build(format, test));
  auto s = trainer.train();
  CHECK(s.last_eval.val_accuracy > 0.9);  // chance: 1/3

  // The evaluator over this format: word-label metrics, generation skipped with the reason (the template that ends
  // with a codec field also writes the other codec field first), no grids.
  vlm::EvaluationInputs in;
  in.model = trainer.model();
  in.tokenizer = vlm::CharTokenizer::for_format(format);
  in.format = format;
  in.test_records = test;
  in.codec = codec.get();
  in.codec_field = 1;  // b: its template writes the label and a before it
  in.grader = vlm::function_grader(slope_grader, 3);
  vlm::EvaluatorOptions eo;
  eo.out_dir = dir.file("eval");
  eo.naive_prompts = 0;
  eo.samples_per_class = 5;
  auto summary = vlm::run_evaluation(in, eo);
  CHECK(summary["classification_exact"]["accuracy"].get<double>() > 0.9);
  CHECK(summary["classification_exact"]["classes"] == nlohmann::json(kShapes));
  CHECK(summary["label_field"] == "shape");
  REQUIRE(summary["skipped"].size() == 1);
  CHECK(summary["skipped"][0].get<std::string>().find("also writes 'a' before it") != std::string::npos);

  // Generation of the second codec field given the label and the first: constrained, every line is one of the
  // format, and the decoded signal has the asked shape (graded by the slope).
  vlm::Sampler sampler(trainer.model(), in.tokenizer, vlm::SamplerOptions().temperature(0.7).seed(4));
  std::vector<std::string> prompts, asked;
  std::mt19937 rng(9);
  for (int64_t c = 0; c < 3; ++c) {
    const std::string a = codec->encode(signals({c}, rng))[0];
    for (int k = 0; k < 10; ++k) prompts.push_back("shape:" + kShapes[c] + " a:" + a + " b:"), asked.push_back(kShapes[c]);
  }
  auto done = sampler.complete(prompts, &format);
  std::vector<std::string> b_values;
  for (size_t i = 0; i < done.size(); ++i) {
    REQUIRE(vlm::format_matches(format, prompts[i] + done[i]));
    b_values.push_back(format.parse(prompts[i] + done[i]).values[1]);
  }
  auto graded = slope_grader(codec->decode(b_values));
  int64_t right = 0;
  for (size_t i = 0; i < b_values.size(); ++i) right += kShapes[graded[i].item<int64_t>()] == asked[i];
  CHECK(right >= 24);  // of 30
}
