#pragma once
// The --key=value flags of each module's options, registered in one place so that the stand-alone drivers
// (train_vqvae, train_gpt, evaluate) and the pipeline (`vlm run`, with prefixes vq., gpt., eval.) offer the same keys
// with the same meaning.
//
//   vlm::Flags flags("train_gpt", "...");
//   vlm::add_gpt_model_flags(flags, model);          // --n_layer, --n_head, ...
//   vlm::add_gpt_train_flags(flags, train, "gpt.");  // --gpt.max_iters, ... (the pipeline's spelling)
#include <string>

#include "vlm/core/flags.h"
#include "vlm/eval/evaluator.h"
#include "vlm/models/gpt.h"
#include "vlm/train/gpt_trainer.h"
#include "vlm/train/vqvae_trainer.h"

namespace vlm {

/// Architecture: n_layer, n_head, n_embd, block_size, dropout, bias, attention.
void add_gpt_model_flags(Flags& flags, GPTOptions& model, const std::string& prefix = "");
/// Optimisation, schedule, data and evaluation cadence (not out_dir or init_from, which a caller owns).
void add_gpt_train_flags(Flags& flags, GPTTrainOptions& train, const std::string& prefix = "");
/// The tokenizer's schedule, early stopping and caption alignment (not checkpoint or log paths).
void add_vqvae_train_flags(Flags& flags, VQVAETrainOptions& train, const std::string& prefix = "");
/// Classification and generation settings of the evaluation (not out_dir or seed).
void add_evaluator_flags(Flags& flags, EvaluatorOptions& eval, const std::string& prefix = "");

}  // namespace vlm
