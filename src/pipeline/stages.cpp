// The main job's stages (vlm/pipeline/pipeline.h): each a function of the shared context that writes its outputs
// into its own directory, with the options it depends on declared next to it in pipeline_stages().
#include <filesystem>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/data/records.h"
#include "vlm/core/runtime.h"
#include "vlm/dist/process_group.h"
#include "vlm/engine/engine.h"
#include "vlm/eval/token_probe.h"
#include "vlm/io/png.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/tokenizer/token_codec.h"

namespace vlm {
namespace fs = std::filesystem;

namespace {

void copy_file_atomically(const std::string& from, const std::string& to) {
  write_atomically(to, [&](const std::string& tmp) { fs::copy_file(from, tmp, fs::copy_options::overwrite_existing); });
}

// --- data: check and fingerprint the inputs ----------------------------------------------------------------------
nlohmann::json data_options(const PipelineContext& ctx) {
  nlohmann::json inputs = nlohmann::json::object();
  for (const auto& [name, path] : ctx.dataset.inputs(ctx.options.data_dir)) inputs[name] = file_checksum(path);
  return {{"idx_files", inputs},
          {"dataset", ctx.dataset.name},
          {"classes", ctx.dataset.label_sizes()},
          {"limit_train", ctx.options.limit_train},
          {"limit_test", ctx.options.limit_test}};
}

// data.json holds the inputs' checksums too: downstream stages hash it, so new data redoes them.
StageOutcome run_data(PipelineContext& ctx, Stage& stage) {
  nlohmann::json res = {{"train", ctx.split.train.size()},   {"validation", ctx.split.validation.size()},
                        {"test", ctx.data.test.size()},      {"height", ctx.data.train.height()},
                        {"width", ctx.data.train.width()}};
  write_text_atomically(stage.path("data.json"), nlohmann::json{{"split", res}, {"inputs", data_options(ctx)}}.dump(2) + "\n");
  return {res, {}};
}

// --- vqvae: the image tokenizer -----------------------------------------------------------------------------------
VQVAEOptions vq_model_of(const PipelineContext& ctx) {
  VQVAEOptions m = ctx.options.vq_model;
  m.image_size(ctx.data.train.height()).image_channels(ctx.data.train.channels());
  return m;
}

VQVAETrainOptions vq_train_of(const PipelineContext& ctx) {
  VQVAETrainOptions t = ctx.options.vq_train;
  t.num_classes = ctx.dataset.num_classes();  // the label head aligns codes with the classes (all label fields')
  return t;
}

nlohmann::json vqvae_options(const PipelineContext& ctx) {
  return {{"seed", ctx.options.seed},
          {"model", options_config_json(vq_model_of(ctx))},
          {"train", options_config_json(vq_train_of(ctx))}};
}

StageOutcome run_vqvae(PipelineContext& ctx, Stage& stage) {
  const auto& o = ctx.options;
  seed_everything(o.seed);
  VQVAE model(vq_model_of(ctx));
  VQVAETrainOptions to = vq_train_of(ctx);
  to.out_dir = stage.dir();  // vqvae.pt, epochs.jsonl, state.pt
  // An interrupted start with this configuration: continue after its last epoch.
  to.init_from = stage.resuming() && fs::exists(stage.path("state.pt")) ? "resume" : "scratch";
  // The tokenizer is given the training labels only for caption alignment; an unsupervised one never has them.
  LabeledImages train = ctx.combined(ctx.split.train), validation = ctx.split.validation;
  validation.labels = at::Tensor();
  if (to.label_weight == 0) train.labels = at::Tensor();
  VQVAETrainer trainer(model, to, train, validation, ctx.device);
  trainer.set_process_group(ctx.group);
  trainer.checkpoint_meta()["config"] = vqvae_options(ctx);
  trainer.hooks().on_eval = [](const VQVAEEpochLog& e) {
    fmt::print("  epoch {:>2}  train mse {:.5f}  val mse {:.5f}  perplexity {:.2f}  codes {}{}  {:.1f}s{}\n", e.epoch,
               e.train_recon, e.val_recon, e.perplexity, e.codes_used,
               e.views_summary(),
               e.seconds, e.improved ? "  *" : "");
    std::fflush(stdout);
  };
  auto result = [&] {
    ScopedThreads threads(o.vq_threads > 0 ? o.vq_threads : ctx.rank_threads, ThreadPool::kBlas);
    return trainer.train();
  }();
  if (!ctx.is_main()) return {};
  ScopedThreads threads(o.threads, ThreadPool::kBlas);  // rank 0 alone from here: all cores
  auto codec = ImageTokenCodec::load(trainer.checkpoint_path(), ctx.device);
  auto test = evaluate_vqvae(codec.model(), ctx.data.test.images, 1000, /*keep_recon=*/true);
  auto train_codes = codec.encode_codes(ctx.split.train.images);
  auto stats = token_stats(test.codes, codec.num_codes());
  auto probe = knn_probe(test.codes, ctx.combined(ctx.data.test).labels, train_codes,
                         ctx.combined(ctx.split.train).labels, 10);
  const int64_t shown = std::min<int64_t>(16, ctx.data.test.size());
  write_png(stage.path("recon.png"),
            image_grid(at::cat({ctx.data.test.images.slice(0, 0, shown), test.recon.slice(0, 0, shown)}), shown));
  nlohmann::json res = tokenizer_metrics(test, stats, probe, result, to.monitor);
  write_text_atomically(stage.path("metrics.json"), res.dump(2) + "\n");
  fmt::print("  test mse {:.5f}, perplexity {:.2f}, 10-NN token probe {:.4f}\n", test.recon_mse, stats.perplexity,
             probe.accuracy);
  return {res, {}};
}

// --- tokens: the text files in the run's sequence format, padded to the GPT's block size ----------------------------
nlohmann::json tokens_options(const PipelineContext& ctx) {
  const auto& o = ctx.options;
  return {{"seed", o.seed},
          {"block_size", o.gpt_model.block_size()},
          {"dataset", o.dataset},
          {"format", o.format.empty() ? nlohmann::json(nullptr) : nlohmann::json(file_checksum(o.format))}};
}

StageOutcome run_tokens(PipelineContext& ctx, Stage& stage) {
  auto codec = load_codec(ctx.path("vqvae", "vqvae.pt"), ctx.device);
  const SequenceFormat format = ctx.sequence_format(codec->alphabet(), codec->length());
  auto write = [&](const char* file, const LabeledImages& d, uint64_t seed) {
    format.write(stage.path(file), records_of(format, *codec, d, seed));
  };
  format.save(stage.path("format.json"));
  write("train.txt", ctx.split.train, ctx.options.seed);
  write("valid.txt", ctx.split.validation, ctx.options.seed + 1);
  write("test.txt", ctx.data.test, ctx.options.seed + 2);
  return {{{"format", format.to_json()}}, {}};
}

// --- classifier: the reference CNN that grades generated images ------------------------------------------------------
ImageClassifierOptions clf_model_of(const PipelineContext& ctx) {
  ImageClassifierOptions m = ctx.options.clf_model;
  m.image_size(ctx.data.train.height())
      .image_channels(ctx.data.train.channels())
      .num_classes(ctx.dataset.num_classes());
  return m;
}

nlohmann::json classifier_options(const PipelineContext& ctx) {
  const auto& o = ctx.options;
  if (!o.classifier_checkpoint.empty()) return {{"reuse", file_checksum(o.classifier_checkpoint)}};
  return {{"seed", o.seed}, {"model", options_config_json(clf_model_of(ctx))},
          {"train", options_config_json(o.clf_train)}};
}

StageOutcome run_classifier(PipelineContext& ctx, Stage& stage) {
  const auto& o = ctx.options;
  const std::string out = stage.path("classifier.pt");
  if (!o.classifier_checkpoint.empty()) {
    auto model = load_image_classifier(o.classifier_checkpoint, ctx.device);  // checks that it is one
    save_image_classifier(out, model, {{"copied_from", o.classifier_checkpoint}});
    return {{{"test_accuracy", classifier_accuracy(model, ctx.combined(ctx.data.test))}}, {}};
  }
  seed_everything(o.seed);
  ImageClassifier model(clf_model_of(ctx));
  // One class per combination of the label fields ("red 7"): what graded generation asks of a generated image. No
  // out_dir: the stage writes classifier.pt once, below, with the test figures.
  ClassifierTrainer trainer(model, o.clf_train, ctx.combined(ctx.split.train), ctx.combined(ctx.split.validation),
                            ctx.device);
  auto r = [&] {
    ScopedThreads threads(o.threads, ThreadPool::kTorch);
    return trainer.train();
  }();
  const double test_acc = classifier_accuracy(model, ctx.combined(ctx.data.test));
  nlohmann::json res = {{"test_accuracy", test_acc}, {"validation_accuracy", r.val_accuracy},
                        {"train_seconds", r.seconds}};
  save_image_classifier(out, model, res);
  fmt::print("  reference classifier: test accuracy {:.4f}\n", test_acc);
  return {res, {}};
}

// --- gpt: the language model, with snapshots along training ---------------------------------------------------------
nlohmann::json gpt_options(const PipelineContext& ctx) {
  const auto& o = ctx.options;
  return {{"seed", o.seed},
          {"model", options_config_json(o.gpt_model)},
          {"train", options_config_json(o.gpt_train)},
          {"snapshots", o.gpt_snapshots}};
}

StageOutcome run_gpt(PipelineContext& ctx, Stage& stage) {
  const auto& o = ctx.options;
  GPTTrainOptions to = o.gpt_train;
  to.out_dir = stage.dir();
  to.seed = o.seed;
  to.init_from = stage.resuming() && fs::exists(stage.path("ckpt.pt")) ? "resume" : "scratch";
  // Snapshots at evenly spaced iterations, copied from the trainer's checkpoints as they are written.
  std::set<int64_t> snapshot_iters;
  for (int64_t k = 1; k <= o.gpt_snapshots; ++k) snapshot_iters.insert(to.max_iters * k / o.gpt_snapshots);
  for (int64_t it : snapshot_iters)
    VLM_CHECK(it == to.max_iters || (to.checkpoint_interval > 0 && it % to.checkpoint_interval == 0),
              "--gpt.snapshots=", o.gpt_snapshots, " wants a checkpoint at iteration ", it,
              ", which --gpt.checkpoint_interval=", to.checkpoint_interval, " does not write");
  const auto format = SequenceFormat::load(ctx.path("tokens", "format.json"));
  GPTTrainer trainer(o.gpt_model, to, TokenDataset::build(format, format.read(ctx.path("tokens", "train.txt"))),
                     TokenDataset::build(format, format.read(ctx.path("tokens", "valid.txt"))), ctx.device);
  auto snapshot_name = [](int64_t iter) { return fmt::format("ckpt_{}.pt", iter); };
  trainer.hooks().on_checkpoint = [&](int64_t iter, const std::string& path) {
    if (snapshot_iters.count(iter)) copy_file_atomically(path, stage.path(snapshot_name(iter)));
  };
  trainer.set_process_group(ctx.group);
  if (to.init_from == "resume" && ctx.is_main())
    fmt::print("  continuing the interrupted run from {}\n", stage.path("ckpt.pt"));
  auto s = [&] {
    ScopedThreads threads(o.gpt_threads > 0 ? o.gpt_threads : ctx.rank_threads, ThreadPool::kBlas);
    return trainer.train();
  }();
  if (!ctx.is_main()) return {};
  std::vector<std::string> snapshots;
  for (int64_t it : snapshot_iters) {
    VLM_CHECK(fs::exists(stage.path(snapshot_name(it))), "the GPT stage lacks its snapshot ", snapshot_name(it));
    snapshots.push_back(snapshot_name(it));
  }
  nlohmann::json res = {{"iters", s.steps},
                        {"val_loss", s.last_eval.val_loss},
                        {"val_accuracy", s.last_eval.val_accuracy},
                        {"best_val_loss", s.best_val_loss},
                        {"ms_per_iter", s.ms_per_iter},
                        {"tokens_per_second", s.tokens_per_second},
                        {"mfu", s.mfu},
                        {"peak_gflops", s.peak.gflops},
                        {"train_seconds", s.seconds},
                        {"snapshots", snapshots}};
  return {res, snapshots};
}

// --- eval: every figure of the evaluator on the held-out test split ---------------------------------------------------
nlohmann::json eval_options(const PipelineContext& ctx) {
  EvaluatorOptions e = ctx.options.eval;
  e.seed = ctx.options.seed;
  return options_config_json(e);
}

StageOutcome run_eval(PipelineContext& ctx, Stage& stage) {
  const auto& o = ctx.options;
  const bool main = ctx.is_main();
  // The finished run as one object (tokenizer, GPT, reference classifier), evaluated on the held-out records.
  auto engine = Engine::load(o.run_dir, ctx.device);
  EvaluationInputs in = evaluation_inputs(engine);
  in.model_path = ctx.path("gpt", "best.pt");
  in.test_records = in.format.read(ctx.path("tokens", "test.txt"));
  for (const auto& snap : Stage(o.run_dir, "gpt", {}).record()["results"].value("snapshots", std::vector<std::string>{}))
    in.series.push_back(ctx.path("gpt", snap));
  // Data-parallel, the ranks share the passes over the test set (faster than rank 0 with every core:
  // docs/distributed.md); what only rank 0 runs afterwards gets the whole machine again.
  in.group = ctx.group;
  in.threads_alone = o.threads;
  in.test_items = ctx.data.test.images;
  std::unordered_set<std::string> train_strings;
  if (main) {  // memorisation is measured on rank 0's generations
    const int64_t image = in.format.first_codec_field();
    for (const auto& r : in.format.read(ctx.path("tokens", "train.txt"))) train_strings.insert(r.values[image]);
    in.train_strings = &train_strings;
  }
  EvaluatorOptions eo = o.eval;
  eo.out_dir = stage.dir();
  eo.seed = o.seed;
  ScopedThreads threads(ctx.group ? ctx.rank_threads : o.threads, ThreadPool::kBlas);
  run_evaluation(in, eo);
  return {{}, in.series.empty() ? std::vector<std::string>{} : std::vector<std::string>{"accuracy_over_checkpoints.svg"}};
}

}  // namespace

const std::vector<StageSpec>& pipeline_stages() {
  static const std::vector<StageSpec> stages = {
      {"data", {}, {"data.json"}, data_options, run_data},
      {"vqvae", {"data"}, {"vqvae.pt", "epochs.jsonl", "metrics.json", "recon.png"}, vqvae_options, run_vqvae, true},
      {"tokens", {"data", "vqvae"}, {"format.json", "train.txt", "valid.txt", "test.txt"}, tokens_options, run_tokens},
      {"classifier", {"data"}, {"classifier.pt"}, classifier_options, run_classifier},
      {"gpt", {"tokens"}, {"best.pt", "ckpt.pt", "metrics.jsonl"}, gpt_options, run_gpt, true},
      {"eval",
       {"data", "vqvae", "tokens", "classifier", "gpt"},
       {"summary.json", "confusion.svg", "token_logo.svg", "codebook_usage.svg", "generated.png",
        "generated_unconstrained.png", "graded_accuracy.svg"},
       eval_options,
       run_eval,
       true},
  };
  return stages;
}

}  // namespace vlm
