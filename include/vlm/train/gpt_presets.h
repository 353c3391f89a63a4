#pragma once
// The GPT configurations the tools offer as --preset (docs/lm_presets.md).
#include "vlm/models/gpt.h"
#include "vlm/train/gpt_trainer.h"

namespace vlm {

/// nanoGPT's train_mnist_vlm config, the seed's: 8 x 384, dropout 0.2, batch 256, 5,000 iterations.
inline void apply_seed_preset(GPTOptions& m, GPTTrainOptions& t) {
  m.block_size(32).n_layer(8).n_head(8).n_embd(384).dropout(0.2).bias(false);
  t.batch_size = 256;
  t.learning_rate = 1e-3;
  t.min_lr = 1e-4;
  t.max_iters = 5000;
  t.lr_decay_iters = 5000;
  t.warmup_iters = 100;
  t.beta1 = 0.9;
  t.beta2 = 0.99;
  t.weight_decay = 0.1;
  t.grad_clip = 1.0;
  t.eval_interval = 250;
  t.checkpoint_interval = 250;
  t.eval_iters = 20;
  t.eval_classify = 1000;  // a forward of this model over 10k prompts takes minutes here; the final eval uses all
  t.template_mode = "once";
  t.ignore_padding = false;  // nanoGPT trains on every character, padding included
}

/// The smallest and fastest configuration measured on 2 cores that reaches the seed's accuracy.
inline void apply_cpu_preset(GPTOptions& m, GPTTrainOptions& t) {
  m.block_size(32).n_layer(4).n_head(4).n_embd(128).dropout(0.0).bias(false);
  t.batch_size = 64;
  t.learning_rate = 2e-3;
  t.min_lr = 2e-4;
  t.max_iters = 4000;
  t.lr_decay_iters = 4000;
  t.warmup_iters = 100;
  t.beta1 = 0.9;
  t.beta2 = 0.99;
  t.weight_decay = 0.1;
  t.grad_clip = 1.0;
  t.eval_interval = 1000;
  t.checkpoint_interval = 1000;
  t.eval_iters = 20;
  t.eval_classify = 2000;
  t.template_mode = "both";
  t.ignore_padding = true;
}

}  // namespace vlm
