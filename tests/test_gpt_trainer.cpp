#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/eval/classify.h"
#include "vlm/io/checkpoint.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/train/gpt_trainer.h"

namespace {

// Random 8-letter images whose label is a function of the first letter, so that the task is learnable.
std::vector<vlm::Record> synthetic(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<vlm::Record> out;
  for (int64_t i = 0; i < n; ++i) {
    std::string image;
    for (int k = 0; k < 8; ++k) image += static_cast<char>('A' + rng() % 26);
    const std::string label = std::to_string((image[0] - 'A') % 10);
    out.push_back({rng() % 2 ? 1 : 0, {image, label}});
  }
  return out;
}

const vlm::SequenceFormat& seed_format() {
  static const vlm::SequenceFormat f = vlm::SequenceFormat::seed();
  return f;
}

vlm::GPTOptions tiny_model(double dropout = 0.0) {
  return vlm::GPTOptions().block_size(32).n_layer(2).n_head(2).n_embd(32).dropout(dropout);
}

vlm::GPTTrainOptions tiny_train(const std::string& out_dir) {
  vlm::GPTTrainOptions o;
  o.out_dir = out_dir;
  o.batch_size = 8;
  o.max_iters = 20;
  o.learning_rate = 3e-3;
  o.min_lr = 3e-4;
  o.warmup_iters = 2;
  o.lr_decay_iters = 40;
  o.eval_interval = 10;
  o.eval_iters = 2;
  o.eval_classify = 16;
  o.checkpoint_interval = 10;
  o.log_interval = 5;
  o.quiet = true;
  return o;
}

const vlm::CharTokenizer& tokenizer() {
  static vlm::CharTokenizer tok = vlm::CharTokenizer::for_format(seed_format());
  return tok;
}

vlm::TokenDataset tokens(const std::vector<vlm::Record>& records) {
  return vlm::TokenDataset::build(seed_format(), records);
}

vlm::GPTTrainer make(const vlm::GPTTrainOptions& o, const vlm::GPTOptions& m, const std::vector<vlm::Record>& data) {
  return vlm::GPTTrainer(m, o, tokens(data), tokens(data));
}

}  // namespace

TEST_CASE("The learning rate warms up linearly, then follows the cosine to min_lr", "[gpt_trainer]") {
  vlm::GPTTrainOptions o;
  o.learning_rate = 1e-3;
  o.min_lr = 1e-4;
  o.warmup_iters = 100;
  o.lr_decay_iters = 5000;
  CHECK(vlm::learning_rate_at(o, 0) == Approx(1e-3 / 101));
  CHECK(vlm::learning_rate_at(o, 99) == Approx(1e-3 * 100 / 101));
  CHECK(vlm::learning_rate_at(o, 100) == Approx(1e-3));
  CHECK(vlm::learning_rate_at(o, 2550) == Approx(0.55e-3));  // half way: min + (max - min) / 2
  CHECK(vlm::learning_rate_at(o, 1325) == Approx(1e-4 + 0.9e-3 * 0.5 * (1 + std::cos(M_PI / 4))));
  CHECK(vlm::learning_rate_at(o, 5000) == Approx(1e-4));
  CHECK(vlm::learning_rate_at(o, 9000) == Approx(1e-4));
  o.decay_lr = false;
  CHECK(vlm::learning_rate_at(o, 0) == Approx(1e-3));
}

TEST_CASE("Without an out_dir the trainer trains in memory and writes nothing, and lr_decay_iters 0 is max_iters",
          "[gpt_trainer]") {
  vlm::GPTTrainOptions lr;
  lr.learning_rate = 1e-3, lr.min_lr = 1e-4, lr.warmup_iters = 100, lr.max_iters = 300, lr.lr_decay_iters = 0;
  CHECK(vlm::learning_rate_at(lr, 200) == Approx(0.55e-3));  // half way from 100 to 300
  CHECK(vlm::learning_rate_at(lr, 300) == Approx(1e-4));
  lr.max_iters = 100;  // decay would end where the warm-up does
  CHECK_THROWS_AS(lr.validate(), vlm::Error);

  vlm::testing::TempDir dir;
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.str());  // anything written relative to the working directory lands here
  auto data = synthetic(8, 2);
  auto o = tiny_train("");
  o.max_iters = 60;
  o.lr_decay_iters = 0;
  o.learning_rate = 1e-2;
  double before = 0, after = 0;
  int64_t checkpoints = 0;
  {
    vlm::GPTTrainer trainer(tiny_model(), o, tokens(data), tokens(data));
    trainer.hooks().on_checkpoint = [&](int64_t, const std::string&) { ++checkpoints; };
    CHECK_FALSE(trainer.writes_files());
    before = trainer.evaluate().train_loss;
    after = trainer.train().last_eval.train_loss;
  }
  std::filesystem::current_path(cwd);
  CHECK(after < 0.5 * before);
  CHECK(checkpoints == 0);
  CHECK(std::filesystem::is_empty(dir.str()));
  o.init_from = "resume";  // nothing to resume from
  CHECK_THROWS_AS(o.validate(), vlm::Error);
}

TEST_CASE("Batches are whole sequences from their first character and never span two", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(40, 1);
  for (const char* mode : {"once", "fresh", "both"}) {
    for (bool ignore_padding : {false, true}) {
      auto o = tiny_train(dir.str());
      o.template_mode = mode;
      o.ignore_padding = ignore_padding;
      o.batch_size = 64;
      vlm::GPTTrainer trainer(tiny_model(), o, tokens(data), tokens(data));
      const int64_t T = trainer.train_tokens_per_row();
      CHECK(T == (ignore_padding ? 24 : 31));  // "number:7, image:ABCDEFGH." is 25 characters
      int64_t templates_seen[2] = {0, 0};
      for (int rep = 0; rep < 3; ++rep) {
        auto b = trainer.get_batch();
        REQUIRE(b.x.sizes() == at::IntArrayRef({64, T}));
        for (int64_t r = 0; r < 64; ++r) {
          const auto i = b.index[r].item<int64_t>();
          const auto t = b.templates[r].item<int64_t>();
          ++templates_seen[t];
          if (std::string(mode) == "once") CHECK(t == static_cast<int64_t>(data[i].tmpl));
          vlm::Record rec = data[i];
          rec.tmpl = t;
          const std::string expected = seed_format().format(rec);
          std::vector<int64_t> xs(b.x[r].data_ptr<int64_t>(), b.x[r].data_ptr<int64_t>() + T);
          CHECK(tokenizer().decode(xs) == expected.substr(0, T));
          for (int64_t p = 0; p < T; ++p) {
            const char target = expected[p + 1];
            const int64_t y = b.y[r][p].item<int64_t>();
            if (ignore_padding && target == '#')
              CHECK(y == -1);
            else
              CHECK(y == tokenizer().id(target));
          }
        }
      }
      if (std::string(mode) != "once") {
        CHECK(templates_seen[0] > 40);
        CHECK(templates_seen[1] > 40);
      }
    }
  }
}

TEST_CASE("A tiny model overfits a few sequences and then classifies them", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(8, 2);
  auto o = tiny_train(dir.str());
  o.template_mode = "both";
  o.max_iters = 150;
  o.lr_decay_iters = 150;
  o.learning_rate = 1e-2;
  o.eval_interval = 0;
  o.checkpoint_interval = 0;
  o.eval_iters = 1;
  o.eval_classify = -1;
  vlm::GPTTrainer trainer(tiny_model(), o, tokens(data), tokens(data));
  auto first = trainer.evaluate();
  auto s = trainer.train();
  CHECK(first.train_loss > 2.5);  // about ln(50) at initialisation
  CHECK(s.last_eval.train_loss < 0.5 * first.train_loss);
  CHECK(s.last_eval.val_accuracy == 1.0);
  // The classifier agrees with the per-position argmax of a plain forward on the prompt.
  auto c = vlm::classify_exact(trainer.model(), tokenizer(), seed_format(), data, /*labels=*/{}, 3);
  for (size_t i = 0; i < data.size(); ++i) CHECK(std::to_string(c.predicted[i]) == data[i].values[1]);
  CHECK(c.log_probs.sizes() == at::IntArrayRef({8, 10}));
  CHECK((c.log_probs.exp().sum(1) <= 1.0 + 1e-5).all().item<bool>());
}

TEST_CASE("A checkpoint loads back into a model with identical logits", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(16, 3);
  auto o = tiny_train(dir.str());
  o.max_iters = 5;
  vlm::GPTTrainer trainer(tiny_model(0.1).bias(true), o, tokens(data), tokens(data));
  trainer.train();
  auto loaded = vlm::load_gpt_checkpoint(trainer.checkpoint_path());
  CHECK(loaded.tokenizer == tokenizer());
  CHECK(loaded.meta["iter"] == 5);
  CHECK(vlm::options_to_json(loaded.model->options) == vlm::options_to_json(trainer.model()->options));
  trainer.model()->eval();
  auto idx = at::randint(50, {4, 31}, at::kLong);
  CHECK(at::equal(trainer.model()->forward(idx), loaded.model->forward(idx)));
  CHECK(std::filesystem::exists(trainer.best_checkpoint_path()));
  CHECK_THROWS_AS(vlm::CheckpointReader(trainer.checkpoint_path(), "vqvae", 1), vlm::Error);
}

TEST_CASE("Resuming after N steps gives the parameters of an uninterrupted run", "[gpt_trainer]") {
  vlm::testing::TempDir a, b;
  auto data = synthetic(64, 4);
  auto o = tiny_train(a.str());
  o.template_mode = "fresh";  // the data RNG draws templates too
  vlm::GPTTrainer straight(tiny_model(0.2), o, tokens(data), tokens(data));
  straight.train();

  auto first = tiny_train(b.str());
  first.template_mode = "fresh";
  first.max_iters = 10;
  {
    vlm::GPTTrainer part(tiny_model(0.2), first, tokens(data), tokens(data));
    part.train();
    at::rand({100});  // whatever happens between the runs must not matter
  }
  auto second = first;
  second.max_iters = 20;
  second.init_from = "resume";
  // Another architecture than the checkpoint's is an error naming what differs, not silently the checkpoint's.
  CHECK_THROWS_WITH(make(second, tiny_model(0.2).n_layer(5), data),
                    Catch::Contains("n_layer = 5 (checkpoint: 2)") && Catch::Contains("different model"));
  vlm::GPTTrainer resumed(tiny_model(0.2), second, tokens(data), tokens(data));
  CHECK(resumed.iter() == 10);
  resumed.train();
  auto p = straight.model()->named_parameters(), q = resumed.model()->named_parameters();
  REQUIRE(p.size() == q.size());
  for (auto& item : p) {
    INFO(item.key());
    CHECK(at::equal(item.value(), q[item.key()]));
  }
  // The metrics file of the resumed run continues the first one.
  std::ifstream f(b.file("metrics.jsonl"));
  std::string line;
  int64_t last_train_iter = 0;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["kind"] == "train") last_train_iter = j["iter"];
  }
  CHECK(last_train_iter == 20);
}

TEST_CASE("A NaN in the loss stops training and leaves the last good checkpoint intact", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(16, 5);
  auto o = tiny_train(dir.str());
  vlm::GPTTrainer trainer(tiny_model(), o, tokens(data), tokens(data));
  trainer.set_loss_hook([](int64_t iter, const at::Tensor& loss) {
    return iter == 15 ? loss * std::numeric_limits<float>::quiet_NaN() : loss;
  });
  CHECK_THROWS_WITH(trainer.train(), Catch::Contains("diverged at iter 15") && Catch::Contains("ckpt.pt"));
  auto loaded = vlm::load_gpt_checkpoint(trainer.checkpoint_path());
  CHECK(loaded.meta["iter"] == 10);
  for (auto& p : loaded.model->parameters()) CHECK(at::isfinite(p).all().item<bool>());
}

TEST_CASE("Trainer options are checked with the flag named", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(4, 6);
  auto o = tiny_train(dir.str());
  o.template_mode = "sometimes";
  CHECK_THROWS_WITH(make(o, tiny_model(), data), Catch::Contains("--template_mode"));
  o = tiny_train(dir.str());
  o.batch_size = 0;
  CHECK_THROWS_WITH(make(o, tiny_model(), data), Catch::Contains("--batch_size"));
  o = tiny_train(dir.str());
  o.init_from = "resume";  // nothing to resume from
  CHECK_THROWS_AS(make(o, tiny_model(), data), vlm::Error);
}

TEST_CASE("AdamW decays the 2-D weights only, with betas (0.9, 0.99)", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(4, 7);
  vlm::GPTTrainer trainer(tiny_model().bias(true), tiny_train(dir.str()), tokens(data), tokens(data));
  auto& groups = trainer.optimizer().param_groups();
  REQUIRE(groups.size() == 2);
  auto& decayed = static_cast<torch::optim::AdamWOptions&>(groups[0].options());
  auto& plain = static_cast<torch::optim::AdamWOptions&>(groups[1].options());
  CHECK(decayed.weight_decay() == 0.1);
  CHECK(plain.weight_decay() == 0.0);
  CHECK(std::get<1>(decayed.betas()) == 0.99);
  int64_t n = 0;
  for (auto& p : groups[0].params()) {
    CHECK(p.dim() == 2);
    n += p.numel();
  }
  for (auto& p : groups[1].params()) {
    CHECK(p.dim() == 1);
    n += p.numel();
  }
  CHECK(n == trainer.model()->num_params(false));
  // 2 layers: wte, wpe, c_attn, attn.c_proj, c_fc, mlp.c_proj per layer -> 2 + 4 * 2 matrices.
  CHECK(groups[0].params().size() == 10);
}

TEST_CASE("The trainer calls its hooks: every log line, every evaluation, every finished checkpoint", "[gpt_trainer]") {
  vlm::testing::TempDir dir;
  auto data = synthetic(16, 8);
  auto o = tiny_train(dir.str());  // 20 iterations, eval and checkpoint every 10, a log line every 5
  vlm::GPTTrainer trainer(tiny_model(), o, tokens(data), tokens(data));
  std::vector<int64_t> logs, evals, checkpoints;
  trainer.hooks().on_log = [&](const vlm::GPTStepLog& l) { logs.push_back(l.iter); };
  trainer.hooks().on_eval = [&](const vlm::GPTEvalResult& e) { evals.push_back(e.iter); };
  trainer.hooks().on_checkpoint = [&](int64_t iter, const std::string& path) {
    // The file is complete when the hook runs: it loads, at the iteration the hook names.
    CHECK(vlm::load_gpt_checkpoint(path).meta["iter"] == iter);
    checkpoints.push_back(iter);
  };
  trainer.train();
  CHECK(logs == std::vector<int64_t>{5, 10, 15, 20});
  CHECK(evals == std::vector<int64_t>{10, 20});
  CHECK(checkpoints == std::vector<int64_t>{10, 20});
}

TEST_CASE("Every trainer keeps its model, optimizer state and batches on the device it is given", "[gpt_trainer][device]") {
  // A CPU-only build can only ask for the CPU; the check is that nothing is left behind elsewhere either way.
  vlm::testing::TempDir dir;
  auto data = synthetic(16, 9);
  auto o = tiny_train(dir.str());
  o.max_iters = 2;
  const c10::Device device(c10::kCPU);
  vlm::GPTTrainer trainer(tiny_model(), o, tokens(data), tokens(data), device);
  trainer.train();
  CHECK(trainer.device() == device);
  for (const auto& p : trainer.model()->parameters()) CHECK(p.device() == device);
  for (const auto& [key, state] : trainer.optimizer().state()) {
    auto& adam = static_cast<torch::optim::AdamWParamState&>(*state);
    CHECK(adam.exp_avg().device() == device);
  }
  auto loaded = vlm::load_gpt_checkpoint(trainer.checkpoint_path(), device);
  for (const auto& p : loaded.model->parameters()) CHECK(p.device() == device);
}

TEST_CASE("Exact classification over word labels equals a brute-force likelihood of each word", "[gpt_trainer]") {
  // Multi-character words, words that begin other words ("up" / "upper", then scored with the '.' that ends the
  // field), prompts of two lengths (a variable-length codec field).
  vlm::FieldSpec sig = vlm::FieldSpec::codec_field("sig", "abcd", 0);
  sig.max_length = 4;
  const vlm::SequenceFormat f({sig, vlm::FieldSpec::label_field("trend", {"up", "upper", "down", "flat"})},
                              {"sig:{sig} trend:{trend}.", "trend:{trend} sig:{sig}."}, 32);
  const auto tok = vlm::CharTokenizer::for_format(f);
  vlm::seed_everything(21);
  vlm::GPT model(vlm::GPTOptions().vocab_size(tok.vocab_size()).block_size(32).n_layer(2).n_head(2).n_embd(32));
  model->eval();
  std::vector<vlm::Record> records = {{0, {"abcd", "up"}}, {0, {"ab", "flat"}}, {0, {"dddd", "upper"}},
                                      {0, {"c", "down"}},  {0, {"abca", "up"}}};
  auto c = vlm::classify_exact(model, tok, f, records, at::tensor(std::vector<int64_t>{0, 3, 1, 2, 0}), 2);
  REQUIRE(c.log_probs.sizes() == at::IntArrayRef({5, 4}));
  CHECK(c.words == std::vector<std::string>{"up", "upper", "down", "flat"});
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string prompt = "sig:" + records[i].values[0] + " trend:";
    for (int64_t w = 0; w < 4; ++w) {
      // log p(word [+ '.'] | prompt) from one plain forward over the whole text, summed character by character.
      const std::string word = c.words[w], scored = word == "up" ? word + "." : word;
      auto ids = tok.encode(prompt + scored);
      auto logp = at::log_softmax(model->forward(at::tensor(ids, at::kLong).unsqueeze(0)), -1)[0];  // (T, V)
      double expected = 0;
      for (size_t k = prompt.size(); k < ids.size(); ++k) expected += logp[k - 1][ids[k]].item<double>();
      CHECK(c.log_probs[i][w].item<double>() == Approx(expected).margin(1e-4));
    }
  }
  // The posterior is the softmax over the four words; the predictions its argmax; the metrics use the words.
  CHECK(at::allclose(c.probs, at::softmax(c.log_probs, 1)));
  CHECK(c.predicted[0] == c.log_probs[0].argmax().item<int64_t>());
  CHECK(c.metrics.class_names == c.words);
  CHECK(c.metrics.n == 5);
}
