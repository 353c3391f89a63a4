#pragma once
// nanoGPT's train.py for the lines of a sequence format: AdamW (weight decay on 2-D weights only), cosine learning rate
// with linear warm-up, gradient clipping, batches of whole sequences (each row starts at a sequence start and never
// spans two), optional loss masking of the '#' padding, periodic train/val loss + classification accuracy,
// checkpoints every N iterations and at the best validation loss, exact resume, a NaN/Inf guard, nanoGPT-style
// console lines, a JSONL metrics file and a per-phase time breakdown. The trainer shape is vlm/train/trainer.h's.
//
//   auto format = SequenceFormat::seed();
//   GPTTrainer trainer(GPTOptions().n_layer(4), train_opts, TokenDataset::build(format, format.read("train.txt")),
//                      TokenDataset::build(format, format.read("val.txt")), device);
//   GPTTrainResult s = trainer.train();
//
// Files in out_dir: ckpt.pt (every checkpoint_interval iterations and at the end), best.pt (at each new best val
// loss), metrics.jsonl (one JSON object per line: kind "train" every log_interval, "eval", and a final "summary" with
// the per-phase times). Both checkpoints are "gpt" checkpoints (vlm/models/gpt_checkpoint.h) to which the trainer
// adds meta "train" (GPTTrainOptions), "best_val_loss", the optimizer "optimizer" (AdamW, two groups: decay / no
// decay) and the tensors "rng_cpu" (LibTorch's default CPU generator: dropout) and "rng_data" (the data order).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/core/options.h"
#include "vlm/core/peak_flops.h"
#include "vlm/data/token_dataset.h"
#include "vlm/dist/process_group.h"
#include "vlm/models/gpt.h"
#include "vlm/text/sequence_format.h"
#include "vlm/train/trainer.h"

namespace torch::optim {
class AdamW;
}

namespace vlm {

/// Named as nanoGPT's train.py globals.
struct GPTTrainOptions {
  // I/O
  std::string out_dir;                  ///< ckpt.pt (latest), best.pt (best val loss), metrics.jsonl; "" = in memory
  std::string init_from = "scratch";    ///< "scratch" or "resume" (continue from out_dir/ckpt.pt)
  int64_t eval_interval = 250;          ///< evaluate every N iterations (0 = only at the end)
  int64_t eval_iters = 20;              ///< loss estimates use eval_iters * batch_size sequences of each split
  int64_t eval_classify = -1;           ///< validation images classified at each eval (-1 = all, 0 = none)
  int64_t final_classify = -1;          ///< ... and at the final evaluation
  int64_t log_interval = 10;            ///< console + JSONL line every N iterations
  int64_t checkpoint_interval = 250;    ///< write ckpt.pt every N iterations (0 = only at the end)
  bool quiet = false;                   ///< no console lines (tests)
  // data
  int64_t batch_size = 256;             ///< sequences per iteration
  std::string template_mode = "once";   ///< once | fresh | all (see TemplateMode)
  bool ignore_padding = true;           ///< '#' targets do not count in the loss; rows are trimmed to the longest text
  // AdamW
  double learning_rate = 1e-3;
  int64_t max_iters = 5000;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double grad_clip = 1.0;               ///< 0 = off
  // learning rate schedule
  bool decay_lr = true;
  int64_t warmup_iters = 100;
  int64_t lr_decay_iters = 0;           ///< 0 = max_iters
  double min_lr = 1e-4;
  // system
  uint64_t seed = 1337;                 ///< model init, dropout and the data order
  double peak_gflops = 0;               ///< MFU reference; 0 = the CPU's FMA peak (vlm/core/peak_flops.h)

  void validate() const;
  int64_t decay_iters() const;  ///< lr_decay_iters, or max_iters when it is 0
  template <class V>
  void fields(V& v) {
    v("out_dir", out_dir, "checkpoints and metrics.jsonl (empty: train in memory, write nothing)",
      FieldKind::kRunControl);
    v("init_from", init_from, "scratch or resume (from out_dir/ckpt.pt)", FieldKind::kRunControl);
    v("batch_size", batch_size, "sequences per iteration");
    v("max_iters", max_iters, "training iterations");
    v("learning_rate", learning_rate, "peak learning rate");
    v("min_lr", min_lr, "final learning rate");
    v("decay_lr", decay_lr, "cosine decay with warm-up");
    v("warmup_iters", warmup_iters, "linear warm-up iterations");
    v("lr_decay_iters", lr_decay_iters, "iterations to reach min_lr (0 = max_iters)");
    v("weight_decay", weight_decay, "AdamW weight decay (2-D weights only)");
    v("beta1", beta1, "AdamW beta1");
    v("beta2", beta2, "AdamW beta2");
    v("grad_clip", grad_clip, "clip the gradient norm (0 = off)");
    v("template_mode", template_mode, "once (the seed), fresh (redrawn per use) or all (every template)");
    v("ignore_padding", ignore_padding, "leave '#' targets out of the loss");
    v("eval_interval", eval_interval, "evaluate (and keep best.pt) every N iterations");
    v("eval_iters", eval_iters, "loss estimates over eval_iters * batch_size sequences");
    v("eval_classify", eval_classify, "validation images classified per eval (-1 all, 0 none)");
    v("final_classify", final_classify, "validation images classified at the end (-1 all, 0 none)");
    v("checkpoint_interval", checkpoint_interval, "write ckpt.pt every N iterations");
    v("seed", seed, "model init, dropout and data order");
    v("log_interval", log_interval, "log every N iterations", FieldKind::kRunControl);
    v("quiet", quiet, "no console lines", FieldKind::kRunControl);
    v("peak_gflops", peak_gflops, "MFU reference in GFLOP/s (0 = the CPU's FMA peak)", FieldKind::kRunControl);
  }
};

/// nanoGPT's get_lr: linear warm-up to learning_rate over warmup_iters, cosine decay to min_lr at lr_decay_iters.
double learning_rate_at(const GPTTrainOptions& o, int64_t iter);

/// One training batch: rows are whole sequences from their first character. In data-parallel training it is this
/// rank's shard (B / world_size rows) of the global batch every rank draws alike.
struct GPTBatch {
  at::Tensor x, y;       ///< (B, T) inputs and (B, T) targets (x shifted by one; -1 = ignored padding)
  at::Tensor index;      ///< (B) which sequence of the data set each row is
  at::Tensor templates;  ///< (B) the template each row was written in (its index in the format)
  int64_t global_targets = 0;  ///< counted targets of the whole global batch (the loss is their mean)
};

/// One log line's figures (averaged over the iterations since the previous line).
struct GPTStepLog {
  int64_t iter = 0;
  double loss = 0, lr = 0, ms_per_iter = 0, tokens_per_second = 0, mfu = 0, grad_norm = 0;
  nlohmann::json to_json() const;
};

struct GPTEvalResult {
  int64_t iter = 0;
  double train_loss = 0, val_loss = 0;  ///< the training loss definition (padding ignored if ignore_padding)
  double val_loss_all = 0;              ///< every target of the 31 counted, '#' included (the seed's definition)
  double val_accuracy = -1;             ///< exact classification accuracy on validation images (-1 = not measured)
  nlohmann::json to_json() const;
};

/// Seconds spent in each phase of the training steps (evaluation and checkpointing counted apart).
struct GPTPhaseTimes {
  double data = 0, forward = 0, backward = 0, optimizer = 0, eval = 0, checkpoint = 0;
  double all_reduce = 0;  ///< data-parallel: waiting for the gradient sums after backward (overlapped otherwise)
  nlohmann::json to_json(int64_t iters) const;
};

struct GPTTrainResult : TrainResult {  // steps: the iteration it ended at
  int64_t start_iter = 0;
  GPTEvalResult last_eval;
  double best_val_loss = 0;
  GPTPhaseTimes phases;
  double ms_per_iter = 0;         ///< training steps only
  double tokens_per_second = 0;   ///< trained positions (B * T) per second of training steps
  PeakFlops peak;                 ///< the MFU reference
  double mfu = 0;                 ///< achieved model flops / peak (0 when the peak is unknown)
  int64_t tokens_per_row = 0;     ///< T used for training
  nlohmann::json to_json() const;
};

class GPTTrainer {
 public:
  using Hooks = TrainerHooks<GPTStepLog, GPTEvalResult>;

  /// With train.init_from == "resume", the weights, optimizer, step, RNG and data order come from out_dir/ckpt.pt,
  /// whose model options and tokenizer must equal `model` and the data's (a clear error names what differs).
  GPTTrainer(GPTOptions model, GPTTrainOptions train, TokenDataset train_set, TokenDataset val_set,
             c10::Device device = c10::kCPU);
  ~GPTTrainer();

  /// Data-parallel training over `group` (vlm/dist/process_group.h; it must outlive the trainer): batch_size stays the
  /// global batch (the seed's semantics: the same run as one process, to within summation order), each rank trains
  /// on its own rows of it, gradients are summed across ranks before the update, rank 0's weights are broadcast at
  /// the start, and only rank 0 writes checkpoints, logs and metrics. Call before train().
  void set_process_group(ProcessGroup* group);

  /// Trains until max_iters; returns the figures of the run. Throws vlm::Error on a non-finite loss or gradient,
  /// leaving the last checkpoint on disk untouched.
  GPTTrainResult train();

  /// The next batch of the data order (advances the data RNG), on the CPU.
  GPTBatch get_batch();
  /// Train/val loss on fixed subsets and classification accuracy on the first eval_classify validation images
  /// (final_classify when `final_eval`).
  GPTEvalResult evaluate(bool final_eval = false);
  void save_checkpoint(const std::string& path);

  Hooks& hooks() { return hooks_; }
  /// Test hook: applied to the loss of each step before the guard (e.g. to inject a NaN).
  void set_loss_hook(std::function<at::Tensor(int64_t iter, const at::Tensor& loss)> hook) { loss_hook_ = std::move(hook); }

  GPT& model() { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  const CharTokenizer& tokenizer() const { return train_.tokenizer; }
  const GPTTrainOptions& options() const { return opt_; }
  c10::Device device() const { return device_; }
  int64_t iter() const { return iter_; }
  int64_t train_tokens_per_row() const { return train_T_; }
  std::string checkpoint_path() const;
  std::string best_checkpoint_path() const;
  /// False when out_dir is empty: the run trains in memory and writes no checkpoint, log or metrics file.
  bool writes_files() const;

 private:
  double step(double lr, GPTPhaseTimes& phases, double* grad_norm);
  void evaluate_and_keep_best(bool final_eval, GPTTrainResult& s);
  void checkpoint(GPTTrainResult& s);
  void resume();
  void log_json(const nlohmann::json& j);
  std::string recovery_hint(const std::string& fix) const;  // what to do after a divergence

  GPTTrainOptions opt_;
  c10::Device device_;
  GPT model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  TokenDataset train_, val_;
  TemplateMode mode_;
  at::Generator data_gen_;
  int64_t iter_ = 0;
  int64_t train_T_ = 0;
  double best_val_loss_ = 1e30;
  Hooks hooks_;
  std::function<at::Tensor(int64_t, const at::Tensor&)> loss_hook_;
  ProcessGroup* group_ = nullptr;
  std::unique_ptr<GradientReducer> reducer_;
  bool is_main() const;
};

}  // namespace vlm
