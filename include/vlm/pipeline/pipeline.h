#pragma once
// The main job: raw MNIST -> VQ-VAE -> token text files -> GPT -> evaluation -> report, into one run directory.
//
//   <run_dir>/data/       stage.json (input checksums, split sizes)
//   <run_dir>/vqvae/      vqvae.pt (tokenizer checkpoint), epochs.jsonl, metrics.json, recon.png
//   <run_dir>/tokens/     train.txt, valid.txt, test.txt in the seed's text format (kept, inspectable)
//   <run_dir>/classifier/ classifier.pt (the reference CNN that grades generated digits)
//   <run_dir>/gpt/        best.pt, ckpt.pt, ckpt_<iter>.pt, metrics.jsonl
//   <run_dir>/eval/       summary.json and the figures
//   <run_dir>/report.md, summary.json, config.json
//
// Each stage records its configuration (and its inputs' checksums) and its outputs' checksums; a stage whose record
// matches is skipped, so an interrupted run resumes, and a damaged output is redone rather than trusted.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "vlm/core/flags.h"
#include "vlm/eval/evaluator.h"
#include "vlm/models/digit_classifier.h"
#include "vlm/models/gpt.h"
#include "vlm/models/vqvae.h"
#include "vlm/train/gpt_trainer.h"
#include "vlm/train/vqvae_trainer.h"

namespace vlm {

struct PipelineOptions {
  std::string preset = "default";
  std::string run_dir = "runs/mnist";
  std::string data_dir = "data/mnist";
  int threads = 0;
  uint64_t seed = 1337;
  std::string device = "cpu";
  bool force = false;            ///< redo every stage
  std::string force_stages;      ///< comma-separated stage names to redo (e.g. "gpt,eval")
  int64_t limit_train = 0;       ///< first N images of the training file (0 = all; for quick runs and tests)
  int64_t limit_test = 0;        ///< first N test images (0 = all)
  std::string classifier_checkpoint;  ///< reuse this reference classifier instead of training one

  std::string vq_variant = "conv";
  VQVAEOptions vq_model = VQVAEOptions::preset("conv");
  VQVAETrainOptions vq_train;
  DigitClassifierOptions clf_model;
  ClassifierTrainOptions clf_train;
  GPTOptions gpt_model;
  GPTTrainOptions gpt_train;
  int64_t gpt_snapshots = 5;
  /// Threads while training the VQ-VAE and the GPT (0 = --threads). Each stage splits its threads between LibTorch
  /// and OpenBLAS the way measured fastest for it (vlm::ThreadPool): the VQ-VAE, the GPT and the evaluation give them
  /// to OpenBLAS, the reference CNN to LibTorch.
  int gpt_threads = 0;
  int vq_threads = 0;
  EvaluatorOptions eval;

  PipelineOptions();
  /// "default" (minutes on 2 cores), "seed" (the seed's configuration), "tiny" (seconds; tests and smoke runs).
  void apply_preset(const std::string& name);
  /// Registers every field as --key=value (prefixes vq., clf., gpt., eval.) and the presets.
  void register_flags(Flags& flags);
  nlohmann::json to_json() const;
};

/// Runs (or resumes) the whole pipeline; returns the run summary also written to <run_dir>/summary.json.
nlohmann::json run_pipeline(const PipelineOptions& options, const nlohmann::json& resolved_config = {});

/// Paths of a finished run, for the everyday commands (generate, classify, encode, decode).
struct RunPaths {
  std::string run_dir, vqvae, gpt, classifier, tokens_train;
  /// Checks that the run directory holds a finished run (clear error naming what is missing).
  static RunPaths of(const std::string& run_dir);
};

}  // namespace vlm
