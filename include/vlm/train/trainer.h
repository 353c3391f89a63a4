#pragma once
// The shape every vlm trainer shares (GPTTrainer, VQVAETrainer, ClassifierTrainer), as LibTorch's modules share
// Options + Impl:
//
//   XTrainOptions opts;                                        // typed options, fields() (vlm/core/options.h)
//   XTrainer trainer(model, opts, train_data, val_data, device);
//   trainer.hooks().on_eval = [](const XEvalLog& e) { ... };   // optional: logging, snapshots, early exits
//   XTrainResult r = trainer.train();                          // the step loop; model ends trained, on `device`
//   const TrainResult& common = r;                             // what every trainer reports, named alike
//
// The same things have the same names in every XTrainOptions: `learning_rate` (peak), `min_lr` where the rate decays
// (GPT, VQ-VAE), `max_iters` (GPT, in steps) or `max_epochs` (VQ-VAE, classifier), `batch_size`, and `quiet` (no
// console lines; the trainers draw from LibTorch's seeded default generator, the GPT also from its own `seed`).
// Nothing is written without an `out_dir` (all three: the GPT's ckpt.pt, best.pt and metrics.jsonl, the VQ-VAE's
// vqvae.pt, epochs.jsonl and state.pt, the classifier's classifier.pt and epochs.jsonl). `init_from` is "scratch" or
// "resume" (GPT, VQ-VAE: continue from the out_dir's ckpt.pt or state.pt, an error when it is missing; the caller
// decides whether one should exist, as the pipeline does for an interrupted stage). XTrainResult's `seconds` is the
// loop's wall time.
//
// The trainer owns the loop; callers watch it through three hooks, called on the calling thread:
//   on_log(step log)             every log interval (GPT) or epoch (VQ-VAE, classifier)
//   on_eval(evaluation)          after each evaluation on validation data
//   on_checkpoint(step, path)    after a checkpoint file is complete on disk (e.g. to keep a snapshot of it)
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace vlm {

/// What every trainer's train() reports, under the same names; each XTrainResult derives from it and adds its own
/// figures (the GPT's phase times and MFU, the VQ-VAE's epoch history, ...).
struct TrainResult {
  double seconds = 0;  ///< wall time of train()
  int64_t steps = 0;   ///< how far the model is trained: the iteration (GPT) or epoch (VQ-VAE, classifier) it ended at
  /// The last validation loss (the GPT's and the VQ-VAE's objective); NaN where the trainer measures none (classifier).
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  /// The last validation accuracy (the GPT's exact classification, the classifier's); NaN where none is measured.
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();
  /// {"seconds", "steps", "val_loss", "val_accuracy"}, a NaN as null.
  nlohmann::json common_json() const {
    auto number = [](double v) { return v == v ? nlohmann::json(v) : nlohmann::json(nullptr); };
    return {{"seconds", seconds},
            {"steps", steps},
            {"val_loss", number(val_loss)},
            {"val_accuracy", number(val_accuracy)}};
  }
};

template <class StepLog, class EvalLog>
struct TrainerHooks {
  std::function<void(const StepLog&)> on_log;
  std::function<void(const EvalLog&)> on_eval;
  std::function<void(int64_t step, const std::string& path)> on_checkpoint;
};

}  // namespace vlm
