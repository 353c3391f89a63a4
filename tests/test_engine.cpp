// vlm::Engine, the high-level object: trained in memory on a codec and data defined here, it classifies, generates
// through the format exactly as the evaluator's sampler does, and grades with a grader of its own.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/data/records.h"
#include "vlm/engine/engine.h"
#include "vlm/eval/generation_metrics.h"
#include "vlm/sample/sampler.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace {

// Digit d is a bright bar over rows [2 + 2d, 6 + 2d) plus noise (as tests/synthetic_mnist.h draws them).
vlm::LabeledImages bars(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  auto labels = at::arange(n) % 10;
  auto images = at::rand({n, 1, 28, 28}) * 0.2;
  for (int64_t i = 0; i < n; ++i) images[i][0].narrow(0, 2 + 2 * labels[i].item<int64_t>(), 4).fill_(1.0);
  return {images, labels};
}

// 8 letters: the brightness of row bands [2 + 3k, 5 + 3k), quantised to A..Z.
class BandCodec : public vlm::TokenCodec {
 public:
  std::string kind() const override { return "test-bands"; }
  std::string alphabet() const override { return vlm::kDefaultImageAlphabet; }
  int64_t length() const override { return 8; }
  std::vector<std::string> encode(const at::Tensor& images) const override {
    auto bands = images.narrow(2, 2, 24).reshape({images.size(0), 8, 3 * 28}).mean(2);  // (N, 8)
    auto levels = (bands * 25).round().clamp(0, 25).to(at::kLong).contiguous();
    std::vector<std::string> out;
    for (int64_t i = 0; i < levels.size(0); ++i) {
      std::string s;
      for (int64_t k = 0; k < 8; ++k) s += static_cast<char>('A' + levels[i][k].item<int64_t>());
      out.push_back(s);
    }
    return out;
  }
  at::Tensor decode(const std::vector<std::string>& texts) const override {
    auto out = at::zeros({static_cast<int64_t>(texts.size()), 1, 28, 28});
    for (size_t i = 0; i < texts.size(); ++i) {
      VLM_CHECK(texts[i].size() == 8, "BandCodec: 8 letters expected, got '", texts[i], "'");
      for (int64_t k = 0; k < 8; ++k) out[i][0].narrow(0, 2 + 3 * k, 3).fill_((texts[i][k] - 'A') / 25.0);
    }
    return out;
  }
  void save(const std::string&, const nlohmann::json&) const override {}
};

// The class whose bar rows are brightest, as a one-hot probability.
class BarGrader : public vlm::Grader {
 public:
  at::Tensor probabilities(const at::Tensor& images) const override {
    std::vector<at::Tensor> scores;
    for (int64_t d = 0; d < 10; ++d) scores.push_back(images.narrow(2, 2 + 2 * d, 4).mean({1, 2, 3}));
    return at::one_hot(at::stack(scores, 1).argmax(1), 10).to(at::kFloat);
  }
  int64_t num_classes() const override { return 10; }
};

}  // namespace

TEST_CASE("An Engine trained in memory classifies and generates through the format", "[engine]") {
  vlm::seed_everything(5);
  auto codec = std::make_shared<BandCodec>();
  const auto format = vlm::SequenceFormat::seed();
  const auto train = bars(400, 1), validation = bars(100, 2), test = bars(200, 3);

  // records_of writes the codec's letters and the label words through the format.
  auto records = vlm::records_of(format, *codec, test.head(3), 9);
  REQUIRE(records.size() == 3);
  CHECK(records[1].values[format.field_index("image")] == codec->encode(test.images.narrow(0, 1, 1))[0]);
  CHECK(records[1].values[format.field_index("number")] == "1");
  CHECK_THROWS_WITH(vlm::records_of(vlm::SequenceFormat::seed("ABCD", 8), *codec, test), Catch::Contains("'image'"));

  vlm::GPTTrainOptions o;  // no out_dir: in memory
  o.batch_size = 32, o.max_iters = 250, o.learning_rate = 5e-3, o.min_lr = 5e-4, o.warmup_iters = 10;
  o.eval_interval = 0, o.eval_iters = 2, o.eval_classify = 0, o.final_classify = 0, o.quiet = true;
  auto engine = vlm::Engine::train(codec, format, train, validation,
                                   vlm::GPTOptions().n_layer(2).n_head(2).n_embd(48), o);
  CHECK(engine.item_shape() == std::vector<int64_t>{1, 28, 28});
  CHECK(engine.words().size() == 10);

  // Classification: the posterior is a distribution, its argmax is predict(), accuracy far above chance (0.1).
  auto probs = engine.classify(engine.encode(test.images));  // (200, 10)
  CHECK(probs.sizes() == at::IntArrayRef({200, 10}));
  CHECK(at::allclose(probs.sum(1), at::ones({200}), 1e-4, 1e-4));
  CHECK(at::equal(probs.argmax(1), engine.predict(test.images)));
  CHECK(engine.accuracy(test) > 0.9);
  CHECK_THROWS_WITH(engine.encode(at::zeros({2, 28, 28})), Catch::Contains("[1, 28, 28]"));

  // Generation: exactly what the evaluator's sampler draws for one class alone, every line one of the format.
  auto drawn = engine.generate("4", 12, 0.8, 0, 21);
  auto options = vlm::SamplerOptions().temperature(0.8).seed(21);
  auto reference = vlm::generate_per_class(engine.model(), engine.tokenizer(), format, engine.codec_field(),
                                           engine.label_field(), 12, options, /*constrained=*/true, 4);
  CHECK(drawn.letters == reference.values[4]);
  for (const auto& l : drawn.letters) CHECK_NOTHROW(format.check_value(engine.codec_field(), l));
  CHECK_THROWS_WITH(engine.generate("12", 1), Catch::Contains("'12' is not a class"));

  // Grading needs a grader; with one, most drawn fours show a four.
  CHECK_THROWS_WITH(engine.grade(engine.decode(drawn.letters)), Catch::Contains("no grader"));
  vlm::Engine graded(codec, format, engine.model(), engine.tokenizer(), std::make_shared<BarGrader>(), "bars");
  auto grades = graded.grade(graded.decode(drawn.letters)).argmax(1);
  CHECK(grades.eq(4).sum().item<int64_t>() >= 10);
  CHECK(graded.describe()["name"] == "bars");

  // The parts must fit: a format whose image field the codec does not write is refused by name.
  CHECK_THROWS_WITH(vlm::Engine(codec, vlm::SequenceFormat::seed("ABCD", 8), engine.model(), engine.tokenizer()),
                    Catch::Contains("field 'image'"));
}
