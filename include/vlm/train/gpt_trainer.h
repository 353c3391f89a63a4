#pragma once
// nanoGPT's train.py for the text-image sequences: AdamW (weight decay on 2-D weights only), cosine learning rate
// with linear warm-up, gradient clipping, batches of whole sequences (each row starts at a sequence start and never
// spans two), optional loss masking of the '#' padding, periodic train/val loss + classification accuracy,
// checkpoints (kind "gpt") every N iterations and at the best validation loss, exact resume, a NaN/Inf guard,
// nanoGPT-style console lines, a JSONL metrics file and a per-phase time breakdown.
//
//   GPTTrainer trainer(train_opts, gpt_opts, tokenizer, read_sequences("train.txt"), read_sequences("valid.txt"));
//   GPTTrainSummary s = trainer.train();
//
// Files in out_dir: ckpt.pt (every checkpoint_interval iterations and at the end), best.pt (at each new best val
// loss), metrics.jsonl (one JSON object per line: kind "train" every log_interval, "eval", and a final "summary" with
// the per-phase times). Both checkpoints are vlm checkpoints of kind "gpt", version 1:
//   meta: {"gpt": GPTOptions, "tokenizer": CharTokenizer, "train": GPTTrainOptions, "iter": steps done,
//          "best_val_loss": ...}
//   module "model" (nanoGPT's parameter names), optimizer "optimizer" (AdamW, two groups: decay / no decay),
//   tensors "rng_cpu" (LibTorch's default CPU generator: dropout) and "rng_data" (the data-order generator).
// load_gpt_checkpoint() rebuilds the model from meta["gpt"] before loading the weights.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "vlm/models/gpt.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequences.h"

namespace torch::optim {
class AdamW;
}

namespace vlm {

/// Named as nanoGPT's train.py globals.
struct GPTTrainOptions {
  // I/O
  std::string out_dir = "runs/gpt";     ///< ckpt.pt (latest), best.pt (best val loss), metrics.jsonl
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
  std::string template_mode = "once";   ///< once | fresh | both (see TemplateMode)
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
  int64_t lr_decay_iters = 5000;
  double min_lr = 1e-4;
  // system
  uint64_t seed = 1337;                 ///< model init, dropout and the data order
  bool measure_gemm = true;             ///< time a GEMM at start-up as the MFU reference

  void validate() const;
  nlohmann::json to_json() const;
};

/// nanoGPT's get_lr: linear warm-up to learning_rate over warmup_iters, cosine decay to min_lr at lr_decay_iters.
double learning_rate_at(const GPTTrainOptions& o, int64_t iter);

/// Presets for the driver's --preset: "seed" (nanoGPT's train_mnist_vlm config) and "cpu" (measured, docs/lm_presets.md).
void apply_seed_preset(GPTOptions& model, GPTTrainOptions& train);
void apply_cpu_preset(GPTOptions& model, GPTTrainOptions& train);

/// One training batch: rows are whole sequences from their first character.
struct GPTBatch {
  at::Tensor x, y;       ///< (B, T) inputs and (B, T) targets (x shifted by one; -1 = ignored padding)
  at::Tensor index;      ///< (B) which sequence of the data set each row is
  at::Tensor templates;  ///< (B) the template each row was written in (Template as int64)
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
  nlohmann::json to_json(int64_t iters) const;
};

struct GPTTrainSummary {
  int64_t start_iter = 0, end_iter = 0;
  GPTEvalResult last_eval;
  double best_val_loss = 0;
  GPTPhaseTimes phases;
  double wall_seconds = 0;
  double ms_per_iter = 0;         ///< training steps only
  double tokens_per_second = 0;   ///< trained positions (B * T) per second of training steps
  double gemm_gflops = 0;         ///< the reference GEMM rate measured at start (0 if not measured)
  double mfu = 0;                 ///< achieved model flops / gemm_gflops
  int64_t tokens_per_row = 0;     ///< T used for training
};

/// The data set as token tensors: every sequence in both templates, and the template drawn "once".
struct TokenizedSequences {
  at::Tensor tokens;           ///< (N, 2, L) int64: row [i, t] = sequence i in template t, padded to L
  at::Tensor once_template;    ///< (N) int64: the stored (file) template of each sequence
  std::vector<std::string> images;
  std::vector<int64_t> labels;
  int64_t max_text_length = 0;  ///< longest unpadded sequence
  int64_t size() const { return tokens.size(0); }
  static TokenizedSequences build(const std::vector<Sequence>& sequences, const CharTokenizer& tokenizer,
                                  int64_t block_size);
};

class GPTTrainer {
 public:
  static constexpr int64_t kCheckpointVersion = 1;

  /// With train.init_from == "resume", the model options, weights, optimizer, step, RNG and data order come from
  /// out_dir/ckpt.pt and `model` is ignored (the stored tokenizer must equal `tokenizer`).
  GPTTrainer(GPTTrainOptions train, GPTOptions model, CharTokenizer tokenizer, const std::vector<Sequence>& train_set,
             const std::vector<Sequence>& val_set);
  ~GPTTrainer();

  /// Trains until max_iters; returns the figures of the run. Throws vlm::Error on a non-finite loss or gradient,
  /// leaving the last checkpoint on disk untouched.
  GPTTrainSummary train();

  /// The next batch of the data order (advances the data RNG).
  GPTBatch get_batch();
  /// Train/val loss on fixed subsets and classification accuracy on the first eval_classify validation images
  /// (final_classify when `final_eval`).
  GPTEvalResult evaluate(bool final_eval = false);
  void save_checkpoint(const std::string& path);

  /// Test hook: applied to the loss of each step before the guard (e.g. to inject a NaN).
  void set_loss_hook(std::function<at::Tensor(int64_t iter, const at::Tensor& loss)> hook) { loss_hook_ = std::move(hook); }

  GPT& model() { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  const CharTokenizer& tokenizer() const { return tokenizer_; }
  const GPTTrainOptions& options() const { return opt_; }
  int64_t iter() const { return iter_; }
  int64_t train_tokens_per_row() const { return train_T_; }
  std::string checkpoint_path() const;
  std::string best_checkpoint_path() const;

 private:
  void resume();
  void log_json(const nlohmann::json& j);
  at::Tensor loss_of(const at::Tensor& logits, const at::Tensor& y) const;

  GPTTrainOptions opt_;
  CharTokenizer tokenizer_;
  GPT model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  TokenizedSequences train_, val_;
  TemplateMode mode_;
  at::Generator data_gen_;
  int64_t iter_ = 0;
  int64_t train_T_ = 0;
  double best_val_loss_ = 1e30;
  std::function<at::Tensor(int64_t, const at::Tensor&)> loss_hook_;
};

/// Reads a "gpt" checkpoint: the model rebuilt from its stored options with its weights, and the tokenizer.
struct LoadedGPT {
  GPT model{nullptr};
  CharTokenizer tokenizer{"#"};
  nlohmann::json meta;
};
LoadedGPT load_gpt_checkpoint(const std::string& path);

/// The sustained single-precision GEMM rate (n x n x n, at::mm) on the current threads, in GFLOP/s.
double measure_gemm_gflops(int64_t n = 1024, double seconds = 0.5);

}  // namespace vlm
