#pragma once
// The main job: labelled images (MNIST, Fashion-MNIST, any MNIST-shaped IDX files) -> VQ-VAE -> token text files in
// a sequence format -> GPT -> evaluation -> report, into one run directory. The data set (--dataset), the codec (the
// VQ-VAE trained here, loaded through the TokenCodec registry) and the format (the data set's, or --format=FILE) are
// configuration: the same stages serve every domain.
//
//   <run_dir>/data/       stage.json (input checksums, split sizes)
//   <run_dir>/vqvae/      vqvae.pt (tokenizer checkpoint), epochs.jsonl, metrics.json, recon.png
//   <run_dir>/tokens/     format.json and train.txt, valid.txt, test.txt in that format (kept, inspectable)
//   <run_dir>/classifier/ classifier.pt (the reference CNN on pixels that grades generated images)
//   <run_dir>/gpt/        best.pt, ckpt.pt, ckpt_<iter>.pt, metrics.jsonl
//   <run_dir>/eval/       summary.json and the figures
//   <run_dir>/report.md, summary.json, config.json
//
// The job is a list of stages (pipeline_stages()), each a function with declared inputs (upstream stages), outputs
// (its files) and the options it depends on (their own serialisation, vlm/core/options.h). A stage records that
// configuration, its inputs' checksums and its outputs' checksums; it is skipped exactly when all three still match,
// so an interrupted run resumes, a changed option redoes what depends on it, and a damaged output is redone rather
// than trusted. An interrupted GPT stage continues from its last checkpoint.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/core/flags.h"
#include "vlm/core/options.h"
#include "vlm/data/datasets.h"
#include "vlm/data/labeled_images.h"
#include "vlm/eval/evaluator.h"
#include "vlm/models/image_classifier.h"
#include "vlm/models/gpt.h"
#include "vlm/models/vqvae.h"
#include "vlm/pipeline/stage.h"
#include "vlm/train/classifier_trainer.h"
#include "vlm/train/gpt_trainer.h"
#include "vlm/train/vqvae_trainer.h"

namespace vlm {

class ProcessGroup;

struct PipelineOptions {
  std::string preset = "default";
  std::string dataset = "mnist";  ///< mnist | fashion: default --data_dir, --run_dir and the label words
  std::string run_dir = "runs/mnist";
  std::string data_dir = "data/mnist";
  std::string format;             ///< a sequence format file (JSON); "" = the data set's two templates
  int threads = 0;
  uint64_t seed = 1337;
  std::string device = "cpu";
  bool flush_denormal = true;    ///< vlm::RuntimeOptions::flush_denormal
  bool blas_kernels = true;      ///< vlm::RuntimeOptions::blas_kernels
  bool force = false;            ///< redo every stage
  std::string force_stages;      ///< comma-separated stage names to redo (e.g. "gpt,eval")
  int64_t limit_train = 0;       ///< first N images of the training file (0 = all; for quick runs and tests)
  int64_t limit_test = 0;        ///< first N test images (0 = all)
  std::string classifier_checkpoint;  ///< reuse this reference classifier instead of training one

  VQVAEOptions vq_model = VQVAEOptions::preset("conv");
  VQVAETrainOptions vq_train;
  ImageClassifierOptions clf_model;
  ClassifierTrainOptions clf_train;
  GPTOptions gpt_model;
  GPTTrainOptions gpt_train;
  static constexpr int64_t kDefaultSnapshots = 5;
  int64_t gpt_snapshots = kDefaultSnapshots;
  std::string gpt_preset = "cpu";  ///< the GPT's group of defaults (vlm/train/gpt_presets.h): cpu or seed
  /// Threads while training the VQ-VAE and the GPT (0 = --threads). Each stage splits its threads between LibTorch
  /// and OpenBLAS the way measured fastest for it (vlm::ThreadPool): the VQ-VAE, the GPT and the evaluation give them
  /// to OpenBLAS, the reference CNN to LibTorch.
  int gpt_threads = 0;
  int vq_threads = 0;
  EvaluatorOptions eval;

  /// The "default" preset.
  PipelineOptions();
  /// A preset is a file of flags (src/pipeline/presets/NAME.json, built into the library, or any FILE.json of the same
  /// shape): {"description", "base": another preset applied first, "flags": {"key": value, ...} applied in order,
  /// "notes"}. Every field starts from its struct default, then the base, then the flags; the data set's block size
  /// is kept unless the preset sets gpt.block_size. "default" (minutes on 2 cores), "unsupervised" (a tokenizer that
  /// reads no label, as the seed's), "seed" (the seed's configuration), "tiny" (seconds; tests and smoke runs).
  void apply_preset(const std::string& name_or_file);
  /// The built-in presets' names, and the description a preset file gives.
  static std::vector<std::string> preset_names();
  static std::string preset_description(const std::string& name_or_file);
  /// The tokenizer variant with its own defaults (sizes and schedule): "mlp" (the seed's) or "conv".
  void apply_vq_variant(const std::string& variant);
  /// The data set's defaults: --data_dir and --run_dir.
  void apply_dataset(const std::string& name);
  /// Registers every field as --key=value (prefixes vq., clf., gpt., eval.) and the presets (names and files);
  /// --vq.variant and --gpt.preset are choices applied before the other flags (Flags::add_choice).
  void register_flags(Flags& flags);
  /// Throws naming the flag for values no stage accepts (unknown --force_stages, negative limits, ...).
  void validate() const;
};

/// What the stages share: the options, the device, the data (loaded once), the run directory.
struct PipelineContext {
  explicit PipelineContext(const PipelineOptions& options, ProcessGroup* group = nullptr);
  const PipelineOptions& options;
  /// Data-parallel run (vlm run --nproc=N, or started by a launcher): the training stages and the evaluation (its
  /// passes over the test set sharded) run on every rank, the others on rank 0 alone with all of the machine's cores
  /// while the other ranks wait. nullptr: one process.
  ProcessGroup* group = nullptr;
  int rank_threads = 0;  ///< threads of this rank in the data-parallel stages (options.threads when alone)
  bool is_main() const;
  c10::Device device;
  const ImageDataset& dataset;
  TrainTest data;             ///< the data set's training and test files (labels: one column per label field)
  TrainValidation split;  ///< data.train split for training and validation
  /// `d` with one class per item for all its label columns together (LabelCombinations' numbering): what the
  /// reference classifier, the caption head and the token probe learn.
  LabeledImages combined(const LabeledImages& d) const;
  /// The sequence format of the run for a codec writing `alphabet` `length` letters per image, padded to the GPT's
  /// block size: --format's file (its first codec field checked against the codec) or the data set's templates.
  SequenceFormat sequence_format(const std::string& alphabet, int64_t length) const;
  /// <run_dir>/<stage>/<file>
  std::string path(const std::string& stage, const std::string& file) const;
};

/// What a stage's function returns: its figures (kept in stage.json) and outputs it names only as it runs.
struct StageOutcome {
  nlohmann::json results = nlohmann::json::object();
  std::vector<std::string> extra_outputs;
};

struct StageSpec {
  std::string name;
  std::vector<std::string> inputs;   ///< upstream stages whose outputs it reads (their checksums enter its hash)
  std::vector<std::string> outputs;  ///< files it always writes into <run_dir>/<name>/
  std::function<nlohmann::json(const PipelineContext&)> options;  ///< the configuration it depends on
  std::function<StageOutcome(PipelineContext&, Stage&)> run;
  /// Runs on every rank of a data-parallel run (its function shares the work through ctx.group and writes only on
  /// rank 0); otherwise rank 0 runs it alone.
  bool data_parallel = false;
};

/// The main job's stages, in order: data, vqvae, tokens, classifier, gpt, eval.
const std::vector<StageSpec>& pipeline_stages();

/// Runs (or resumes) the whole pipeline; returns the run summary also written to <run_dir>/summary.json.
/// With a process group of several ranks every rank calls it (see PipelineContext::group); only rank 0 writes, and
/// only rank 0's return value is the summary (the others return null).
nlohmann::json run_pipeline(const PipelineOptions& options, const nlohmann::json& resolved_config = {},
                            ProcessGroup* group = nullptr);

/// Paths of a finished run, for the everyday commands (generate, classify, encode, decode).
struct RunPaths {
  std::string run_dir, vqvae, gpt, classifier, tokens_train;
  /// Checks that the run directory holds a finished run (clear error naming what is missing).
  static RunPaths of(const std::string& run_dir);
};

}  // namespace vlm
