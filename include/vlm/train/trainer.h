#pragma once
// The shape every vlm trainer shares (GPTTrainer, VQVAETrainer, ClassifierTrainer), as LibTorch's modules share
// Options + Impl:
//
//   XTrainOptions opts;                                        // typed options, fields() (vlm/core/options.h)
//   XTrainer trainer(model, opts, train_data, val_data, device);
//   trainer.hooks().on_eval = [](const XEvalLog& e) { ... };   // optional: logging, snapshots, early exits
//   XTrainResult r = trainer.train();                          // the step loop; model ends trained, on `device`
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
#include <string>

namespace vlm {

template <class StepLog, class EvalLog>
struct TrainerHooks {
  std::function<void(const StepLog&)> on_log;
  std::function<void(const EvalLog&)> on_eval;
  std::function<void(int64_t step, const std::string& path)> on_checkpoint;
};

}  // namespace vlm
