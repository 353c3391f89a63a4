#include "vlm/pipeline/option_flags.h"

namespace vlm {

void add_gpt_model_flags(Flags& f, GPTOptions& m, const std::string& p) {
  f.add(p + "n_layer", &m.n_layer(), "transformer blocks")
      .add(p + "n_head", &m.n_head(), "attention heads")
      .add(p + "n_embd", &m.n_embd(), "embedding width")
      .add(p + "block_size", &m.block_size(), "sequence length (characters, padded with #)")
      .add(p + "dropout", &m.dropout(), "dropout probability")
      .add(p + "bias", &m.bias(), "biases in Linear and LayerNorm layers")
      .add(p + "attention", &m.attention(), "attention implementation: naive or fast (the fused kernel)");
}

void add_gpt_train_flags(Flags& f, GPTTrainOptions& t, const std::string& p) {
  f.add(p + "batch_size", &t.batch_size, "sequences per iteration")
      .add(p + "max_iters", &t.max_iters, "training iterations")
      .add(p + "learning_rate", &t.learning_rate, "peak learning rate")
      .add(p + "min_lr", &t.min_lr, "final learning rate")
      .add(p + "decay_lr", &t.decay_lr, "cosine decay with warm-up")
      .add(p + "warmup_iters", &t.warmup_iters, "linear warm-up iterations")
      .add(p + "lr_decay_iters", &t.lr_decay_iters, "iterations to reach min_lr")
      .add(p + "weight_decay", &t.weight_decay, "AdamW weight decay (2-D weights only)")
      .add(p + "beta1", &t.beta1, "AdamW beta1")
      .add(p + "beta2", &t.beta2, "AdamW beta2")
      .add(p + "grad_clip", &t.grad_clip, "clip the gradient norm (0 = off)")
      .add(p + "template_mode", &t.template_mode, "once (the seed), fresh (redrawn per use) or both")
      .add(p + "ignore_padding", &t.ignore_padding, "leave '#' targets out of the loss")
      .add(p + "eval_interval", &t.eval_interval, "evaluate every N iterations")
      .add(p + "eval_iters", &t.eval_iters, "loss estimates over eval_iters * batch_size sequences")
      .add(p + "eval_classify", &t.eval_classify, "validation images classified per eval (-1 all, 0 none)")
      .add(p + "final_classify", &t.final_classify, "validation images classified at the end (-1 all, 0 none)")
      .add(p + "log_interval", &t.log_interval, "log every N iterations")
      .add(p + "checkpoint_interval", &t.checkpoint_interval, "write ckpt.pt every N iterations")
      .add(p + "measure_gemm", &t.measure_gemm, "time a GEMM at start as the MFU reference");
}

void add_vqvae_train_flags(Flags& f, VQVAETrainOptions& t, const std::string& p) {
  f.add(p + "lr", &t.lr, "Adam learning rate")
      .add(p + "lr_schedule", &t.lr_schedule, "constant or cosine")
      .add(p + "min_lr", &t.min_lr, "floor of the cosine schedule")
      .add(p + "batch_size", &t.batch_size, "training batch size")
      .add(p + "max_epochs", &t.max_epochs, "at most this many epochs")
      .add(p + "patience", &t.patience, "early stopping patience in epochs (0 = off)")
      .add(p + "monitor", &t.monitor, "val_loss (the seed) or val_recon: early stopping and best epoch")
      .add(p + "label_weight", &t.label_weight,
           "caption alignment: weight of the loss in which the codes predict the digit (0 = unsupervised)")
      .add(p + "label_head", &t.label_head, "per_code (every letter predicts the digit) or joint");
}

void add_evaluator_flags(Flags& f, EvaluatorOptions& e, const std::string& p) {
  f.add(p + "batch_size", &e.batch_size, "prompts per forward pass")
      .add(p + "sampled", &e.sampled, "also classify the seed's way (sampling the answer)")
      .add(p + "sampled_temperature", &e.sampled_temperature, "temperature of the seed-style classification")
      .add(p + "sampled_top_k", &e.sampled_top_k, "top-k of the seed-style classification (clamped to the vocabulary)")
      .add(p + "naive_prompts", &e.naive_prompts, "prompts timed one at a time without cache, the seed's loop (0 = skip)")
      .add(p + "samples_per_digit", &e.samples_per_digit, "generated images per digit (0 = no generation)")
      .add(p + "gen_temperature", &e.gen_temperature, "generation temperature")
      .add(p + "gen_top_k", &e.gen_top_k, "generation top-k (0 = off)")
      .add(p + "grid_columns", &e.grid_columns, "samples per digit row in the PNG grids");
}

}  // namespace vlm
