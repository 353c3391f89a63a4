#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>

#include "synthetic_mnist.h"
#include "test_helpers.h"
#include "vlm/core/atomic_file.h"
#include "vlm/core/runtime.h"
#include "vlm/data/idx.h"
#include "vlm/eval/token_probe.h"
#include "vlm/io/png_read.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/pipeline/stage.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/train/gpt_trainer.h"

namespace fs = std::filesystem;

namespace {

vlm::PipelineOptions tiny(const std::string& data, const std::string& run) {
  vlm::PipelineOptions o;
  o.apply_preset("tiny");
  o.data_dir = data;
  o.run_dir = run;
  o.threads = 1;
  return o;
}

std::string stage_json(const std::string& run, const std::string& stage) {
  return vlm::read_text_file(run + "/" + stage + "/stage.json");
}
}  // namespace

TEST_CASE("A stage is skipped only when its configuration and every output checksum match", "[pipeline][stage]") {
  vlm::testing::TempDir dir;
  {
    vlm::Stage s(dir.str(), "s", {{"a", 1}});
    CHECK_FALSE(s.up_to_date());
    vlm::write_text_atomically(s.path("out.txt"), "hello");
    s.complete({"out.txt"}, 0.5);
    CHECK(s.up_to_date());
    CHECK_FALSE(s.up_to_date(/*force=*/true));
  }
  CHECK_FALSE(vlm::Stage(dir.str(), "s", {{"a", 2}}).up_to_date());
  vlm::Stage again(dir.str(), "s", {{"a", 1}});
  CHECK(again.up_to_date());
  vlm::write_text_atomically(again.path("out.txt"), "hellO");
  CHECK_FALSE(again.up_to_date());
  CHECK(again.why().find("corrupt") != std::string::npos);
  fs::remove(again.path("out.txt"));
  CHECK_FALSE(again.up_to_date());
  CHECK(again.why().find("missing") != std::string::npos);
  vlm::write_text_atomically(again.path("stage.json"), "{ not json");
  CHECK_FALSE(again.up_to_date());
}

TEST_CASE("The whole pipeline runs end to end on a small data set, resumes, and redoes a corrupt stage",
          "[pipeline]") {
  vlm::testing::TempDir dir;
  fs::create_directories(dir.file("data"));
  vlm::testing::write_synthetic_mnist(dir.file("data"), 600, 100);
  const std::string run = dir.file("run");
  auto o = tiny(dir.file("data"), run);
  // Enough steps for the tiny models to learn the synthetic digits (seconds).
  o.vq_train.max_epochs = 6;
  o.clf_train.max_epochs = 6;
  o.gpt_model.n_embd(32);
  o.gpt_train.max_iters = o.gpt_train.lr_decay_iters = 400;
  o.gpt_train.eval_interval = o.gpt_train.checkpoint_interval = 200;
  o.gpt_train.learning_rate = 1e-2;
  o.gpt_train.min_lr = 1e-3;
  auto summary = vlm::run_pipeline(o);

  // It learned: chance is 0.1 on ten balanced classes.
  CHECK(summary["vq_probe_10nn_accuracy"].get<double>() > 0.6);
  CHECK(summary["test_accuracy"].get<double>() > 0.6);
  CHECK(summary["generation_invalid_rate"] == 0.0);
  // The summary's accuracy is the model's: recomputed here one prompt at a time, by a full forward of each prompt
  // and the argmax over the ten digits' logits.
  {
    auto gpt = vlm::load_gpt_checkpoint(run + "/gpt/best.pt");
    int64_t right = 0;
    auto seqs = gpt.format.read(run + "/tokens/test.txt");
    for (const auto& s : seqs) {
      auto ids = gpt.tokenizer.encode("image:" + s.values[0] + ", number:");
      auto logits = gpt.model->forward(at::tensor(ids, at::kLong).view({1, -1}));  // (1, T, V)
      auto last = logits[0][-1];
      int64_t best = 0;
      for (int64_t d = 1; d < 10; ++d)
        if (last[gpt.tokenizer.id(char('0' + d))].item<float>() > last[gpt.tokenizer.id(char('0' + best))].item<float>())
          best = d;
      right += std::to_string(best) == s.values[1];
    }
    CHECK(summary["test_accuracy"].get<double>() == Approx(double(right) / seqs.size()));
  }
  auto on_disk = nlohmann::json::parse(vlm::read_text_file(run + "/summary.json"));
  CHECK(on_disk["test_accuracy"] == summary["test_accuracy"]);
  CHECK(vlm::read_text_file(run + "/report.md").find("graded generation accuracy") != std::string::npos);
  const auto format = vlm::SequenceFormat::load(run + "/tokens/format.json");
  CHECK(format == vlm::SequenceFormat::seed());  // MNIST's format is the seed's, byte for byte
  auto train = format.read(run + "/tokens/train.txt");
  auto test = format.read(run + "/tokens/test.txt");
  CHECK(train.size() == 500);
  CHECK(test.size() == 100);
  CHECK(train[0].values[0].size() == 8);
  auto codec = vlm::ImageTokenCodec::load(run + "/vqvae/vqvae.pt");
  CHECK(codec.codes_per_image() == 8);
  auto gpt = vlm::load_gpt_checkpoint(run + "/gpt/best.pt");
  CHECK(gpt.tokenizer.vocab_size() == gpt.model->options.vocab_size());
  auto grid = vlm::read_image_gray(run + "/eval/generated.png");
  CHECK(grid.size(1) == 10 * 30 + 2);  // ten digit rows of 28 px + 2 px padding
  for (const char* f : {"eval/confusion.svg", "eval/accuracy_over_checkpoints.svg", "eval/token_logo.svg",
                        "vqvae/recon.png", "gpt/ckpt_200.pt", "gpt/ckpt_400.pt"})
    CHECK(fs::exists(run + "/" + std::string(f)));

  // A second run does no training: every stage record is left untouched.
  std::map<std::string, std::string> before;
  for (const char* s : {"data", "vqvae", "tokens", "classifier", "gpt", "eval"}) before[s] = stage_json(run, s);
  auto mtime = fs::last_write_time(run + "/gpt/best.pt");
  vlm::run_pipeline(o);
  for (const auto& [s, text] : before) CHECK(stage_json(run, s) == text);
  CHECK(fs::last_write_time(run + "/gpt/best.pt") == mtime);

  // A damaged checkpoint is noticed and the stage redone, not trusted.
  {
    std::ofstream f(run + "/gpt/best.pt", std::ios::binary | std::ios::trunc);
    f << "garbage";
  }
  vlm::run_pipeline(o);
  CHECK(stage_json(run, "gpt") != before["gpt"]);
  CHECK(stage_json(run, "vqvae") == before["vqvae"]);
  CHECK_NOTHROW(vlm::load_gpt_checkpoint(run + "/gpt/best.pt"));
}

TEST_CASE("A stage is redone exactly when an option it depends on changes", "[pipeline]") {
  vlm::testing::TempDir dir;
  fs::create_directories(dir.file("data"));
  vlm::testing::write_synthetic_mnist(dir.file("data"), 300, 50);
  const std::string run = dir.file("run");
  auto o = tiny(dir.file("data"), run);
  o.limit_train = 300;
  o.limit_test = 50;
  o.eval.samples_per_class = 1;
  vlm::run_pipeline(o);
  std::map<std::string, std::string> before;
  for (const char* s : {"data", "vqvae", "tokens", "classifier", "gpt", "eval"}) before[s] = stage_json(run, s);

  // An evaluation option redoes the evaluation only.
  o.eval.gen_temperature = 0.5;
  vlm::run_pipeline(o);
  for (const char* s : {"data", "vqvae", "tokens", "classifier", "gpt"}) CHECK(stage_json(run, s) == before[s]);
  CHECK(stage_json(run, "eval") != before["eval"]);

  // 16 letters per image need a longer block: the tokens are padded to the GPT's block size, and the tokenizer,
  // tokens, GPT and evaluation are redone while the reference classifier is not.
  o.vq_model.n_codes(16).quantizer().groups(16);
  o.gpt_model.block_size(40);
  vlm::run_pipeline(o);
  CHECK(stage_json(run, "classifier") == before["classifier"]);
  for (const char* s : {"vqvae", "tokens", "gpt"}) CHECK(stage_json(run, s) != before[s]);
  std::ifstream f(run + "/tokens/train.txt");
  std::string line;
  std::getline(f, line);
  CHECK(line.size() == 40);
  CHECK(vlm::SequenceFormat::load(run + "/tokens/format.json").read(run + "/tokens/train.txt")[0].values[0].size() == 16);

  // --vq.variant selects that variant's own defaults (not the conv sizes under the mlp name) and redoes the stage.
  vlm::PipelineOptions p;
  vlm::Flags flags("vlm run", "test");
  p.register_flags(flags);
  REQUIRE(flags.parse({"--preset=tiny", "--vq.hidden_dim=96", "--vq.variant=mlp"}));
  CHECK(p.vq_model.variant() == "mlp");
  CHECK(p.vq_model.quantizer().embedding_dim() == vlm::VQVAEOptions::preset("mlp").quantizer().embedding_dim());
  CHECK(p.vq_model.quantizer().groups() == 1);
  CHECK(p.vq_model.hidden_dim() == 96);  // an explicit flag still wins, whatever its position
  CHECK(p.vq_train.learning_rate == vlm::VQVAETrainOptions::preset("mlp").learning_rate);
}

TEST_CASE("Pipeline flags reject unknown keys and presets, and a missing run is a clear error", "[pipeline][errors]") {
  vlm::PipelineOptions o;
  vlm::Flags f("vlm run", "test");
  o.register_flags(f);
  CHECK_THROWS_WITH(f.parse({"--gpt.n_layers=3"}), Catch::Contains("unknown flag --gpt.n_layers"));
  CHECK_THROWS_WITH(f.parse({"--preset=huge"}), Catch::Contains("unknown preset"));
  CHECK_THROWS_WITH(f.parse({"--vq.variant=resnet"}), Catch::Contains("--vq.variant=resnet is not one of conv, mlp"));
  o.force_stages = "gpt,bogus";
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("unknown stage 'bogus'"));
  o.force_stages = "";
  o.limit_train = -5;
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("--limit_train"));
  o.limit_train = 0;
  REQUIRE(f.parse({"--preset=seed", "--gpt.max_iters=7"}));
  CHECK(o.gpt_model.n_layer() == 8);
  CHECK(o.gpt_train.max_iters == 7);
  CHECK_THROWS_WITH(vlm::RunPaths::of("/nonexistent/run"), Catch::Contains("does not exist"));
}

TEST_CASE("Presets are files of flags: the built-in ones hold the main job's values, and a file of one's own runs",
          "[pipeline][flags][presets]") {
  vlm::PipelineOptions o;  // the default preset
  CHECK(vlm::PipelineOptions::preset_names() == std::vector<std::string>{"default", "unsupervised", "seed", "tiny"});
  // The default job's values as the preset file writes them, over the named groups it starts from.
  CHECK(o.vq_model.variant() == "conv");
  CHECK(o.vq_train.max_epochs == 8);  // the conv variant's own is 15
  CHECK(vlm::VQVAETrainOptions::preset("conv").max_epochs == 15);
  CHECK(o.clf_train.max_epochs == 3);
  CHECK(o.gpt_model.n_layer() == 4);
  CHECK(o.gpt_model.n_embd() == 128);
  CHECK(o.gpt_model.block_size() == 32);
  CHECK(o.gpt_train.max_iters == 4000);
  CHECK(o.gpt_train.eval_interval == 800);
  CHECK(o.gpt_train.checkpoint_interval == 800);
  CHECK(o.gpt_snapshots == 5);
  CHECK(o.vq_train.label_weight > 0);
  // unsupervised: default's, then its own.
  vlm::PipelineOptions u;
  u.apply_preset("unsupervised");
  CHECK(u.vq_train.label_weight == 0);
  CHECK(u.vq_train.pseudo_clusters == 20);
  CHECK(u.vq_train.pseudo_weight == 0.05);
  CHECK(u.vq_train.decoder_epochs == 2);
  CHECK(!u.vq_train.invariant_recon);
  CHECK(u.vq_train.max_epochs == 8);
  CHECK(u.gpt_train.eval_interval == 800);
  CHECK(u.preset == "unsupervised");
  // The data set's block size survives a preset applied after it.
  vlm::PipelineOptions c;
  c.apply_dataset("colored");
  c.apply_preset("tiny");
  CHECK(c.gpt_model.block_size() == 48);
  CHECK(c.gpt_model.n_embd() == 16);
  CHECK(c.limit_train == 600);

  // A file of one's own, on top of a built-in one, through the command line; flags given still win.
  vlm::testing::TempDir dir;
  const std::string mine = dir.file("mine.json");
  vlm::write_text_atomically(mine, R"({"description": "longer", "base": "default", "flags": {"gpt.max_iters": 6000,
    "gpt.lr_decay_iters": 6000, "vq.invariant_recon": true, "gpt.template_mode": "once"}})");
  vlm::PipelineOptions f_opts;
  vlm::Flags f("vlm run", "test");
  f_opts.register_flags(f);
  REQUIRE(f.parse({"--gpt.lr_decay_iters=5000", "--preset=" + mine}));
  CHECK(f_opts.gpt_train.max_iters == 6000);
  CHECK(f_opts.gpt_train.lr_decay_iters == 5000);
  CHECK(f_opts.vq_train.invariant_recon);
  CHECK(f_opts.gpt_train.template_mode == "once");
  CHECK(f_opts.gpt_model.n_layer() == 4);  // from the base
  CHECK(f.preset() == mine);
  CHECK(f.usage().find("FILE") != std::string::npos);

  // Mistakes name the file and the key.
  auto write = [&](const std::string& name, const std::string& text) {
    vlm::write_text_atomically(dir.file(name), text);
    return dir.file(name);
  };
  vlm::PipelineOptions e;
  CHECK_THROWS_WITH(e.apply_preset(write("a.json", R"({"flags": {"gpt.n_layers": 3}})")),
                    Catch::Contains("a.json") && Catch::Contains("unknown flag --gpt.n_layers"));
  CHECK_THROWS_WITH(e.apply_preset(write("b.json", R"({"flags": {}, "flag": {}})")),
                    Catch::Contains("b.json") && Catch::Contains("unknown key 'flag'"));
  CHECK_THROWS_WITH(e.apply_preset(write("c.json", R"({"flags": {"gpt.max_iters": "many"}})")),
                    Catch::Contains("c.json") && Catch::Contains("gpt.max_iters"));
  CHECK_THROWS_WITH(e.apply_preset(write("d.json", R"({"base": "huge", "flags": {}})")),
                    Catch::Contains("unknown preset 'huge'"));
  CHECK_THROWS_WITH(e.apply_preset(dir.file("none.json")), Catch::Contains("no such file"));
  CHECK_THROWS_WITH(e.apply_preset(write("e.json", "{not json")), Catch::Contains("not JSON"));
  const std::string loop = dir.file("loop.json");
  vlm::write_text_atomically(loop, R"({"base": ")" + loop + R"(", "flags": {}})");
  CHECK_THROWS_WITH(e.apply_preset(loop), Catch::Contains("more than 8 deep"));
}

TEST_CASE("Module option flags: the drivers' keys, and the pipeline's with their stage prefix", "[pipeline][flags]") {
  vlm::GPTTrainOptions train;
  vlm::GPTOptions model;
  vlm::Flags alone("train_gpt", "test");
  vlm::add_option_flags(alone, model);
  vlm::add_option_flags(alone, train);
  REQUIRE(alone.parse({"--max_iters=7", "--ignore_padding=true", "--n_layer=3", "--attention=fast"}));
  CHECK(train.max_iters == 7);
  CHECK(train.ignore_padding);
  CHECK(model.n_layer() == 3);
  CHECK(model.attention() == "fast");

  vlm::PipelineOptions o;
  vlm::Flags run("vlm run", "test");
  o.register_flags(run);
  REQUIRE(run.parse({"--gpt.max_iters=9", "--gpt.beta2=0.95", "--vq.label_weight=0.2", "--vq.min_lr=1e-5",
                     "--eval.grid_columns=5", "--eval.sampled_top_k=7"}));
  CHECK(o.gpt_train.max_iters == 9);
  CHECK(o.gpt_train.beta2 == Approx(0.95));
  CHECK(o.vq_train.label_weight == Approx(0.2));
  CHECK(o.vq_train.min_lr == Approx(1e-5));
  CHECK(o.eval.grid_columns == 5);
  CHECK(o.eval.sampled_top_k == 7);
  CHECK_THROWS_WITH(run.parse({"--max_iters=3"}), Catch::Contains("unknown flag --max_iters"));
}

TEST_CASE("An interrupted GPT stage continues from its last checkpoint and ends as an uninterrupted run", "[pipeline]") {
  vlm::testing::TempDir dir;
  vlm::testing::write_synthetic_mnist(dir.file("data"), 300, 50);
  const std::string run = dir.file("run");
  auto o = tiny(dir.file("data"), run);
  o.eval.samples_per_class = 1;
  vlm::run_pipeline(o);  // uninterrupted: 20 iterations, checkpoints (and snapshots) at 10 and 20
  const auto finished = vlm::load_gpt_checkpoint(run + "/gpt/ckpt.pt");
  REQUIRE(finished.meta["iter"] == 20);

  // The state a kill after iteration 10's checkpoint leaves: ckpt.pt at 10, the stage started but not recorded.
  auto record = nlohmann::json::parse(vlm::read_text_file(run + "/gpt/stage.json"));
  fs::copy_file(run + "/gpt/ckpt_10.pt", run + "/gpt/ckpt.pt", fs::copy_options::overwrite_existing);
  fs::remove(run + "/gpt/stage.json");
  vlm::write_text_atomically(run + "/gpt/stage.started.json", record["config"].dump() + "\n");
  vlm::run_pipeline(o);

  const auto resumed = vlm::load_gpt_checkpoint(run + "/gpt/ckpt.pt");
  CHECK(resumed.meta["iter"] == 20);
  // It trained iterations 10..19 only (the metrics file continues), and ends bit for bit where the first run ended.
  auto a = finished.model->named_parameters(), b = resumed.model->named_parameters();
  for (auto& p : a) {
    INFO(p.key());
    CHECK(at::equal(p.value(), b[p.key()]));
  }
  CHECK_FALSE(fs::exists(run + "/gpt/stage.started.json"));
  // A started record with another configuration is not resumed: the stage starts again from scratch.
  vlm::write_text_atomically(run + "/gpt/stage.started.json", "{\"other\": 1}\n");
  fs::remove(run + "/gpt/stage.json");
  CHECK_NOTHROW(vlm::run_pipeline(o));
  CHECK(vlm::load_gpt_checkpoint(run + "/gpt/ckpt.pt").meta["iter"] == 20);
}

TEST_CASE("The unsupervised preset's tokenizer is the same whatever the training labels say", "[pipeline]") {
  // Two data directories that differ only in the training labels (shuffled in the second): the tokenizer of the
  // unsupervised preset must come out bit-identical; the caption-aligned one (the default's) must not, which shows
  // that the check can fail.
  vlm::testing::TempDir dir;
  for (const char* d : {"data", "shuffled"}) vlm::testing::write_synthetic_mnist(dir.file(d), 300, 50);
  {
    auto labels = vlm::read_idx(dir.file("data") + "/train-labels-idx1-ubyte.gz");
    std::vector<uint8_t> shuffled(labels.data.rbegin(), labels.data.rend());  // reversed and rotated: most change
    std::rotate(shuffled.begin(), shuffled.begin() + 3, shuffled.end());
    labels.data = shuffled;
    vlm::write_idx(dir.file("shuffled") + "/train-labels-idx1-ubyte.gz", labels, /*gzip=*/true);
  }
  vlm::PipelineOptions unsupervised;
  unsupervised.apply_preset("unsupervised");
  CHECK(unsupervised.vq_train.label_weight == 0);
  auto tokenizer_of = [&](const std::string& data, const std::string& run, bool captions) {
    auto o = tiny(dir.file(data), dir.file(run));
    const auto sizes = o.vq_train;
    if (!captions) o.vq_train = unsupervised.vq_train;  // every tokenizer-training setting of the preset
    o.vq_train.max_epochs = sizes.max_epochs;
    o.vq_train.batch_size = sizes.batch_size;
    o.gpt_train.max_iters = o.gpt_train.lr_decay_iters = 4;  // the GPT is not what this test is about
    o.gpt_train.warmup_iters = 1;
    o.gpt_train.eval_interval = o.gpt_train.checkpoint_interval = 2;
    o.eval.samples_per_class = 1;
    vlm::run_pipeline(o);
    return vlm::ImageTokenCodec::load(dir.file(run) + "/vqvae/vqvae.pt").model()->parameters();
  };
  auto a = tokenizer_of("data", "u1", false), b = tokenizer_of("shuffled", "u2", false);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(at::equal(a[i], b[i]));
  auto c = tokenizer_of("data", "c1", true), d = tokenizer_of("shuffled", "c2", true);
  bool all_equal = true;
  for (size_t i = 0; i < c.size(); ++i) all_equal = all_equal && at::equal(c[i], d[i]);
  CHECK(!all_equal);
}
