// A data-parallel GPT run for the distributed tests: trains a tiny GPT for --steps on synthetic lines with the process
// group from the environment (vlm launch, mpirun, or none), then writes this rank's parameters to
// <out>/params_rank<R>.pt. --die_at=N makes rank 1 vanish (no clean-up) before step N. --resume continues from
// <out>/gpt/ckpt.pt (written by a run with any number of processes); --decay_iters fixes the schedule's length so
// that a run cut in two follows the same learning rates.
// --model=vqvae trains a tiny conv VQ-VAE instead (k-means initialisation, EMA codebooks with dead-code restarts,
// caption head) for --epochs on random images, and writes its parameters and buffers the same way; --resume continues
// from <out>/vqvae/state.pt, --die_at=E ends the process in epoch E (after its checkpoint, before its state).
// --model=eval evaluates an untrained tiny GPT (seeded alike on every rank) on the same synthetic lines with
// vlm::run_evaluation, sharded across the group, into <out>/<--eval_dir>; it leaves the model and the lines in
// <out>/eval_model.pt and <out>/eval_lines.txt.
#include <filesystem>
#include <cstdlib>
#include <random>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/dist/process_group.h"
#include "vlm/eval/evaluator.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/io/checkpoint.h"
#include "vlm/train/gpt_trainer.h"
#include "vlm/train/vqvae_trainer.h"

namespace {
// The tiny VQ-VAE of the tests (test_distributed.cpp builds the same to read the parameters back).
vlm::VQVAEOptions tiny_vqvae() {
  auto o = vlm::VQVAEOptions::preset("conv");
  o.image_size(28).hidden_dim(32).channels(4);
  o.quantizer().dead_code_threshold(1.0).usage_decay(0.8);  // restarts within a few steps, to exercise them
  return o;
}

int run_vqvae(vlm::ProcessGroup& group, const std::string& out, int64_t epochs, bool resume, int64_t die_at,
              bool unsupervised) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto blobs = [&](int64_t n) {  // images with some structure: thresholded smooth noise
    auto noise = at::rand({n, 1, 7, 7}, gen);
    auto up = at::upsample_bilinear2d(noise, {28, 28}, false);
    return (up > 0.6).to(at::kFloat);
  };
  vlm::LabeledImages train{blobs(200), at::randint(10, {200}, gen)};
  vlm::LabeledImages val{blobs(50), at::randint(10, {50}, gen)};
  vlm::VQVAETrainOptions o = vlm::VQVAETrainOptions::preset("conv");
  o.batch_size = 32;  // 200 = 6 x 32 + 8: a short last batch, split 4 + 4
  o.max_epochs = epochs;
  o.eval_batch_size = 20;
  o.quiet = true;
  if (unsupervised) {  // the unsupervised objectives: random views, pixel neighbours, IIC's joint over the ranks
    o.label_weight = 0;
    o.mi_weight = 0.5;
    o.mi_clusters = 12;
    o.mi_neighbours = 3;
    o.mi_positions = 4;
    o.invariance_weight = 0.1;
    o.invariant_recon = true;
    o.pseudo_weight = 0.5;  // and pseudo-captions: the neighbour search shared, rank 0's clusters broadcast
    o.pseudo_clusters = 5;
    o.pseudo_neighbours = 3;
    o.decoder_epochs = 1;
  }
  if (group.is_main()) vlm::ensure_directory(out + "/vqvae");
  group.barrier();
  o.out_dir = out + "/vqvae";  // vqvae.pt, state.pt
  o.init_from = resume && std::filesystem::exists(out + "/vqvae/state.pt") ? "resume" : "scratch";
  auto model_options = tiny_vqvae();
  // Without restarts here: whether a code is restarted is a threshold that summation-order differences between one
  // and two processes can cross, and IIC's floored logarithms amplify the rest; this check is about the objectives.
  if (unsupervised) model_options.quantizer().dead_code_threshold(0);
  vlm::VQVAE model(model_options);
  vlm::VQVAETrainer trainer(model, o, train, val);
  trainer.set_process_group(&group);
  if (die_at > 0)  // a crash in epoch `die_at`, after its checkpoint and before its training state is written
    trainer.hooks().on_eval = [&](const vlm::VQVAEEpochLog& e) {
      if (e.epoch == die_at) std::_Exit(3);
    };
  auto r = trainer.train();
  vlm::CheckpointWriter w("test-params", 1, {{"rank", group.rank()}, {"world_size", group.world_size()}});
  w.add_module("model", *model);
  w.save(fmt::format("{}/params_rank{}.pt", out, group.rank()));
  fmt::print("rank {} of {}: {} epochs, val recon {:.5f}, restarts {}\n", group.rank(), group.world_size(),
             r.history.size(), r.history.back().val_recon, r.history.back().restarts);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    std::string out = "dist_check_out";
    int64_t steps = 50, die_at = -1, decay_iters = -1;
    bool resume = false;
    double timeout = 60;
    std::string model = "gpt", eval_dir = "eval";
    int64_t epochs = 3;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.rfind("--out=", 0) == 0) out = a.substr(6);
      else if (a.rfind("--steps=", 0) == 0) steps = std::stoll(a.substr(8));
      else if (a.rfind("--die_at=", 0) == 0) die_at = std::stoll(a.substr(9));
      else if (a.rfind("--timeout=", 0) == 0) timeout = std::stod(a.substr(10));
      else if (a.rfind("--decay_iters=", 0) == 0) decay_iters = std::stoll(a.substr(14));
      else if (a == "--resume") resume = true;
      else if (a.rfind("--model=", 0) == 0) model = a.substr(8);
      else if (a.rfind("--epochs=", 0) == 0) epochs = std::stoll(a.substr(9));
      else if (a.rfind("--eval_dir=", 0) == 0) eval_dir = a.substr(11);
      else VLM_FAIL("dist_check: unknown argument ", a);
    }
    vlm::RuntimeOptions ro;
    ro.threads = 1;
    vlm::init_runtime(ro);
    vlm::ProcessGroup group = vlm::ProcessGroup::from_environment(
        c10::kCPU, std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000)));
    if (model == "vqvae" || model == "vqvae_unsupervised")
      return run_vqvae(group, out, epochs, resume, die_at, model == "vqvae_unsupervised");
    VLM_CHECK(model == "gpt" || model == "eval",
              "dist_check: --model must be gpt, vqvae, vqvae_unsupervised or eval");

    const auto format = vlm::SequenceFormat::seed();
    std::mt19937_64 rng(7);
    std::vector<vlm::Record> records;
    for (int i = 0; i < 256; ++i) {
      std::string image;
      for (int k = 0; k < 8; ++k) image += static_cast<char>('A' + rng() % 26);
      records.push_back({static_cast<int64_t>(rng() % 2), {image, std::to_string((image[0] - 'A') % 10)}});
    }
    if (model == "eval") {
      // An untrained model: its answers vary from record to record (a trained tiny one answers nearly one class for
      // all, which would hide records gathered in the wrong order).
      const auto tokenizer = vlm::CharTokenizer::for_format(format);
      at::manual_seed(5);
      vlm::GPT gpt(vlm::GPTOptions().vocab_size(tokenizer.vocab_size()).block_size(32).n_layer(2).n_head(2).n_embd(32));
      const std::string path = out + "/eval_model.pt";
      if (group.is_main()) {
        vlm::ensure_directory(out);
        vlm::CheckpointWriter w(vlm::kGPTCheckpointKind, vlm::kGPTCheckpointVersion,
                                vlm::gpt_checkpoint_meta(gpt, tokenizer, format, 0));
        w.add_module("model", *gpt);
        w.save(path);
        format.write(out + "/eval_lines.txt", records);  // for examples/evaluate
      }
      group.barrier();
      vlm::EvaluationInputs in;
      in.model = gpt;
      in.tokenizer = tokenizer;
      in.format = format;
      in.test_records = records;
      in.series = {path, path};
      in.group = &group;
      vlm::EvaluatorOptions eo;
      eo.out_dir = out + "/" + eval_dir;
      eo.batch_size = 48;  // several batches per shard, and one that straddles none
      eo.naive_prompts = 2;
      eo.samples_per_class = 2;
      eo.logo_examples = 50;
      auto summary = vlm::run_evaluation(in, eo);
      VLM_CHECK(summary.is_null() != group.is_main(), "rank ", group.rank(), ": run_evaluation returned ",
                summary.is_null() ? "no summary" : "a summary");
      return 0;
    }
    vlm::GPTTrainOptions o;
    o.out_dir = out + "/gpt";
    o.batch_size = 16;
    o.max_iters = steps;
    o.lr_decay_iters = decay_iters > 0 ? decay_iters : steps;
    o.init_from = resume ? "resume" : "scratch";
    o.warmup_iters = 5;
    o.learning_rate = 3e-3;
    o.eval_interval = 0;
    o.checkpoint_interval = 0;
    o.eval_iters = 1;
    o.eval_classify = 0;
    o.quiet = true;
    o.template_mode = "fresh";
    vlm::GPTTrainer trainer(vlm::GPTOptions().block_size(32).n_layer(2).n_head(2).n_embd(32), o,
                            vlm::TokenDataset::build(format, records), vlm::TokenDataset::build(format, records));
    trainer.set_process_group(&group);
    if (die_at >= 0 && group.rank() == 1)
      trainer.set_loss_hook([&](int64_t iter, const at::Tensor& loss) {
        if (iter == die_at) std::_Exit(3);  // a crash: no message, no clean-up
        return loss;
      });
    auto s = trainer.train();
    vlm::CheckpointWriter w("test-params", 1, {{"rank", group.rank()}, {"world_size", group.world_size()}});
    w.add_module("model", *trainer.model());
    w.save(fmt::format("{}/params_rank{}.pt", out, group.rank()));
    fmt::print("rank {} of {}: {} steps, final train loss {:.4f}\n", group.rank(), group.world_size(), s.steps,
               s.last_eval.train_loss);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dist_check: error: {}\n", e.what());
    return 1;
  }
}
