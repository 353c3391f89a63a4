// Two label fields in one line: Colored MNIST's data, its format, exact classification of each field against a
// brute-force reference, and an Engine trained on a few hundred coloured images that reads and draws both fields.
#include <catch2/catch.hpp>

#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/data/colored_mnist.h"
#include "vlm/data/datasets.h"
#include "vlm/data/records.h"
#include "vlm/engine/engine.h"
#include "vlm/eval/classify.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace {

const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

vlm::SequenceFormat colour_format(const std::string& alphabet = vlm::kDefaultImageAlphabet) {
  return vlm::SequenceFormat::image_and_labels(
      {vlm::FieldSpec::label_field("colour", vlm::colour_names()), vlm::FieldSpec::label_field("number", kDigits)},
      alphabet, 8, 48);
}

// Digit d is a bright bar over rows [2 + 2d, 6 + 2d) plus noise, tinted with a colour drawn per image.
vlm::LabeledImages coloured_bars(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  auto digits = at::arange(n) % 10;
  auto images = at::rand({n, 1, 28, 28}) * 0.2;
  for (int64_t i = 0; i < n; ++i) images[i][0].narrow(0, 2 + 2 * digits[i].item<int64_t>(), 4).fill_(1.0);
  return vlm::tint({images, digits}, at::randint(4, {n}, at::kLong));
}

// 8 letters: the colour ('A' + its index, read from which channels are lit), then the brightness of 7 row bands of
// [2 + 3k, 5 + 3k) quantised to A..Z; decoding paints the bands in the colour.
class ColourBandCodec : public vlm::TokenCodec {
 public:
  std::string kind() const override { return "test-colour-bands"; }
  std::string alphabet() const override { return vlm::kDefaultImageAlphabet; }
  int64_t length() const override { return 8; }
  static int64_t colour_of(const at::Tensor& image) {  // (3, H, W)
    auto lit = image.sum({1, 2});                       // (3)
    const double top = lit.max().item<double>();
    const bool r = lit[0].item<double>() > 0.5 * top, g = lit[1].item<double>() > 0.5 * top;
    const bool b = lit[2].item<double>() > 0.5 * top;
    return b ? 2 : (r && g) ? 3 : r ? 0 : 1;
  }
  std::vector<std::string> encode(const at::Tensor& images) const override {
    auto grey = images.amax(1);  // (N, H, W)
    auto bands = grey.narrow(1, 2, 21).reshape({images.size(0), 7, 3 * 28}).mean(2);  // (N, 7)
    auto levels = (bands * 25).round().clamp(0, 25).to(at::kLong).contiguous();
    std::vector<std::string> out;
    for (int64_t i = 0; i < levels.size(0); ++i) {
      std::string s(1, static_cast<char>('A' + colour_of(images[i])));
      for (int64_t k = 0; k < 7; ++k) s += static_cast<char>('A' + levels[i][k].item<int64_t>());
      out.push_back(s);
    }
    return out;
  }
  at::Tensor decode(const std::vector<std::string>& texts) const override {
    auto out = at::zeros({static_cast<int64_t>(texts.size()), 3, 28, 28});
    for (size_t i = 0; i < texts.size(); ++i) {
      VLM_CHECK(texts[i].size() == 8 && texts[i][0] >= 'A' && texts[i][0] <= 'D', "ColourBandCodec: bad '", texts[i],
                "'");
      const auto rgb = vlm::colour_rgb(texts[i][0] - 'A');
      for (int64_t k = 0; k < 7; ++k)
        for (int64_t c = 0; c < 3; ++c)
          out[i][c].narrow(0, 2 + 3 * k, 3).fill_(rgb[c] * (texts[i][k + 1] - 'A') / 25.0);
    }
    return out;
  }
  void save(const std::string&, const nlohmann::json&) const override {}
};

}  // namespace

TEST_CASE("Colored MNIST tints each digit with a reproducible colour and keeps both labels", "[colored]") {
  const auto grey = vlm::LabeledImages{at::rand({6, 1, 28, 28}), at::tensor({3, 1, 4, 1, 5, 9}, at::kLong)};
  const auto colours = at::tensor({0, 1, 2, 3, 3, 0}, at::kLong);
  const auto c = vlm::tint(grey, colours);
  REQUIRE(c.images.sizes() == at::IntArrayRef({6, 3, 28, 28}));
  CHECK(at::equal(c.images[0][0], grey.images[0][0]));  // red: the grey image in R, nothing else
  CHECK(c.images[0][1].abs().sum().item<double>() == 0);
  CHECK(at::equal(c.images[3][1], grey.images[3][0]));  // yellow: R and G
  CHECK(c.images[3][2].abs().sum().item<double>() == 0);
  CHECK(at::equal(c.labels, at::tensor({0, 3, 1, 1, 2, 4, 3, 1, 3, 5, 0, 9}, at::kLong).view({6, 2})));
  CHECK(c.label_columns() == 2);
  CHECK(at::equal(c.combined_labels({4, 10}), at::tensor({3, 11, 24, 31, 35, 9}, at::kLong)));
  CHECK_THROWS_WITH(c.combined_labels({4, 5}), Catch::Contains("column 1 is not in [0, 5)"));

  // The colours: the same for the same split every time, uniform, independent of the global seed.
  at::manual_seed(1);
  const auto a = vlm::draw_colours(4000, 0);
  at::manual_seed(2);
  CHECK(at::equal(a, vlm::draw_colours(4000, 0)));
  CHECK(!at::equal(a, vlm::draw_colours(4000, 1)));
  for (int64_t k = 0; k < 4; ++k) CHECK(std::abs(a.eq(k).sum().item<double>() / 4000 - 0.25) < 0.03);

  // The registered data set writes both fields in one line, each template within its block of 48.
  const auto& d = vlm::image_dataset("colored");
  CHECK(d.num_classes() == 40);
  const auto format = d.format(vlm::kDefaultImageAlphabet, 8, d.block_size);
  CHECK(format.format_unpadded({0, {"ABCDEFGH", "yellow", "7"}}) == "image:ABCDEFGH, colour:yellow, number:7.");
  CHECK(format.format_unpadded({1, {"ABCDEFGH", "red", "0"}}) == "colour:red, number:0, image:ABCDEFGH.");
  CHECK(format.reading_template(format.field_index("colour")) == 0);
  CHECK(format.reading_template(format.field_index("number")) == 0);
  CHECK(format.prompt_for(0, {"", "blue", "3"}) == "colour:blue, number:3, image:");
  CHECK_THROWS_WITH(vlm::image_dataset("nope"), Catch::Contains("mnist, fashion, colored"));

  // Combinations are numbered with the first label field most significant, as combined_labels does.
  const auto classes = vlm::label_combinations(format);
  CHECK(classes.count() == 40);
  CHECK(classes.name(format, 27) == "blue 7");
  CHECK(classes.classes(27) == std::vector<int64_t>{2, 7});
  CHECK(classes.index({3, 9}) == 39);
  CHECK(classes.find(format, "yellow 9") == 39);
  CHECK(classes.find(format, "purple 9") == -1);

  // records_of fills each label field from its label column.
  ColourBandCodec codec;
  auto records = vlm::records_of(format, codec, c, 3);
  CHECK(records[4].values[1] == "yellow");
  CHECK(records[4].values[2] == "5");
  CHECK_THROWS_WITH(vlm::records_of(format, codec, grey), Catch::Contains("1 label columns, the format 2"));
}

TEST_CASE("Classifying one of two label fields sums over the other, as the brute-force joint says", "[colored]") {
  vlm::seed_everything(3);
  const auto format = colour_format();
  vlm::CharTokenizer tok(format.vocabulary());
  vlm::GPT model(vlm::GPTOptions().vocab_size(tok.vocab_size()).block_size(48).n_layer(1).n_head(2).n_embd(16));
  model->eval();
  std::vector<vlm::Record> records;
  for (const char* letters : {"ABCDEFGH", "ZZYYXXWW", "QWERTYUI"})
    records.push_back({0, {letters, "green", "2"}});  // the label values must not be read
  const auto joint = vlm::classify_joint(model, tok, format, records);
  REQUIRE(joint.log_probs.sizes() == at::IntArrayRef({3, 40}));

  // Brute force: each whole line, one forward pass, the log-probabilities of the label words' characters.
  torch::NoGradGuard no_grad;
  auto colour_lp = at::zeros({3, 4}, at::kDouble);
  for (size_t i = 0; i < records.size(); ++i)
    for (int64_t k = 0; k < 40; ++k) {
      const auto c = vlm::label_combinations(format).classes(k);
      const std::string colour = vlm::colour_names()[c[0]], digit = kDigits[c[1]];
      const std::string head = "image:" + records[i].values[0] + ", colour:";
      const std::string line = head + colour + ", number:" + digit;
      auto ids = tok.encode(line);
      auto lp = at::log_softmax(model->forward(at::tensor(ids, at::kLong).view({1, -1})), -1)[0];  // (T, V)
      auto score = [&](size_t from, size_t n) {
        double sum = 0;
        for (size_t p = from; p < from + n; ++p) sum += lp[p - 1][ids[p]].item<double>();
        return sum;
      };
      const double colour_part = score(head.size(), colour.size());
      INFO("record " << i << ", " << line);
      CHECK(joint.log_probs[i][k].item<double>() == Approx(colour_part + score(line.size() - 1, 1)).margin(1e-4));
      if (c[1] == 0) colour_lp[i][c[0]] = colour_part;
    }
  // The number alone: the joint summed over the colours; the colour alone: its own prompt.
  const auto number = vlm::classify_exact(model, tok, format, records, {}, 512, format.field_index("number"));
  CHECK(at::allclose(number.log_probs, joint.log_probs.view({3, 4, 10}).logsumexp(1), 1e-4, 1e-4));
  const auto colour = vlm::classify_exact(model, tok, format, records, {}, 512, format.field_index("colour"));
  CHECK(at::allclose(colour.log_probs.to(at::kDouble), colour_lp, 1e-4, 1e-4));
}

TEST_CASE("An Engine trained on a few hundred coloured images reads and draws both label fields", "[colored][engine]") {
  vlm::seed_everything(5);
  auto codec = std::make_shared<ColourBandCodec>();
  const auto format = colour_format();
  const auto train = coloured_bars(600, 1), validation = coloured_bars(100, 2), test = coloured_bars(200, 3);
  vlm::GPTTrainOptions o;
  o.batch_size = 64, o.max_iters = 600, o.learning_rate = 5e-3, o.min_lr = 5e-4, o.warmup_iters = 10;
  o.eval_interval = 0, o.eval_iters = 2, o.eval_classify = 0, o.final_classify = 0, o.quiet = true;
  auto engine = vlm::Engine::train(codec, format, train, validation,
                                   vlm::GPTOptions().n_layer(2).n_head(2).n_embd(48), o);
  CHECK(engine.item_shape() == std::vector<int64_t>{3, 28, 28});
  CHECK(engine.words().size() == 40);
  CHECK(engine.label_field_names() == std::vector<std::string>{"colour", "number"});

  // Both fields far above chance (0.25 and 0.1), and the per-field posteriors are distributions.
  const auto acc = engine.field_accuracies(test);
  INFO("colour " << acc[0] << ", number " << acc[1] << ", both " << engine.accuracy(test));
  CHECK(acc[0] > 0.9);
  CHECK(acc[1] > 0.6);
  // The seed's way, sampling the rest of the line: the number comes after a sampled colour, and parses.
  auto records = vlm::records_of(format, *codec, test, 4);
  auto sampled = vlm::classify_sampled(engine.model(), engine.tokenizer(), format, records, test.label_column(1),
                                       vlm::SamplerOptions().temperature(0.8).seed(3), format.field_index("number"));
  INFO("sampled number " << sampled.metrics.accuracy << ", " << sampled.metrics.invalid << " invalid");
  CHECK(sampled.metrics.invalid <= 5);  // sampling at T 0.8 may leave the format now and then
  CHECK(sampled.metrics.accuracy > 0.5);
  auto number = engine.classify(engine.encode(test.images), "number");  // (200, 10)
  CHECK(number.sizes() == at::IntArrayRef({200, 10}));
  CHECK(at::allclose(number.sum(1), at::ones({200}), 1e-4, 1e-4));

  // Generation conditioned on both: the drawn items show the colour and the digit asked for.
  auto drawn = engine.generate("yellow 6", 12, 0.8, 0, 21);
  auto images = engine.decode(drawn.letters);  // (12, 3, 28, 28)
  int64_t right = 0;
  for (int64_t i = 0; i < 12; ++i) {
    std::vector<double> band;
    for (int64_t d = 0; d < 10; ++d) band.push_back(images[i].narrow(1, 2 + 2 * d, 4).mean().item<double>());
    right += ColourBandCodec::colour_of(images[i]) == 3 && std::max_element(band.begin(), band.end()) - band.begin() == 6;
  }
  CHECK(right >= 9);
  CHECK_THROWS_WITH(engine.generate("6", 1), Catch::Contains("'6' is not a class"));
}
