#pragma once
// The Evaluator: everything the seed's notebook measured, made a fast, complete, reproducible computation, plus the
// numbers no anchor gives (graded generation, validity, diversity, memorisation, calibration, speed).
//
//   EvaluationInputs in;  in.model = ...; in.format = ...; in.test_records = format.read("test.txt"); ...
//   nlohmann::json summary = run_evaluation(in, EvaluatorOptions{});   // writes figures + summary.json to out_dir
//
// run_evaluation only composes the metric functions, each usable alone: classify_exact, classify_sampled,
// accuracy_over_checkpoints (vlm/eval/classify.h); generate_per_class, generation_metrics, grade_generation,
// reference_classifier_ceiling (vlm/eval/generation_metrics.h); token_usage (vlm/eval/token_figures.h); and the
// timings, speed_report (vlm/eval/speed_report.h).
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "vlm/core/options.h"
#include "vlm/engine/engine.h"
#include "vlm/eval/classify.h"
#include "vlm/eval/generation_metrics.h"
#include "vlm/eval/metrics.h"
#include "vlm/eval/speed_report.h"
#include "vlm/eval/token_figures.h"
#include "vlm/models/gpt.h"
#include "vlm/sample/sampler.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_codec.h"

namespace vlm {

struct EvaluatorOptions {
  std::string out_dir = "runs/eval";
  int64_t batch_size = 1000;           ///< prompts per forward pass
  uint64_t seed = 1337;
  // the seed's way of classifying: sample the answer
  bool sampled = true;
  double sampled_temperature = 0.8;
  int64_t sampled_top_k = 200;         ///< clamped to the vocabulary, as nanoGPT's default would need
  int64_t naive_prompts = 100;         ///< prompts timed one at a time, sampling, no cache (0 = skip)
  // generation
  int64_t samples_per_class = 100;
  /// nanoGPT's sample.py defaults, which the seed's notebook sampled with (top-k 200 is clamped to the vocabulary).
  /// Measured on the default model: temperature 1.0 grades 0.933, 0.8 grades 0.976 (docs/results.md).
  double gen_temperature = 0.8;
  int64_t gen_top_k = 200;
  int64_t grid_columns = 12;           ///< samples shown per class row in the PNG grids
  int64_t logo_examples = 1000;        ///< test strings in the sequence logo (the seed used 1,000 lines)

  template <class V>
  void fields(V& v) {
    v("out_dir", out_dir, "figures and summary.json", FieldKind::kRunControl);
    v("seed", seed, "sampling seed");
    v("batch_size", batch_size, "prompts per forward pass");
    v("sampled", sampled, "also classify the seed's way (sampling the answer)");
    v("sampled_temperature", sampled_temperature, "temperature of the seed-style classification");
    v("sampled_top_k", sampled_top_k, "top-k of the seed-style classification (clamped to the vocabulary)");
    v("naive_prompts", naive_prompts, "prompts timed one at a time without cache, the seed's loop (0 = skip)");
    v("samples_per_class", samples_per_class, "generated items per class of the label field (0 = no generation)");
    v("gen_temperature", gen_temperature, "generation temperature");
    v("gen_top_k", gen_top_k, "generation top-k (0 = off)");
    v("grid_columns", grid_columns, "samples per class row in the PNG grids");
    v("logo_examples", logo_examples, "test strings in the sequence logo");
  }
};

/// Everything one evaluation needs; optional parts (codec, grader, items, train strings) may be absent and the
/// figures that need them are then skipped (and said so in the summary).
struct EvaluationInputs {
  GPT model{nullptr};
  CharTokenizer tokenizer{"#"};
  SequenceFormat format = SequenceFormat::seed();  ///< the lines the model was trained on
  std::string model_path;
  std::vector<Record> test_records;  ///< held-out lines; their label field holds the truth
  int64_t label_field = -1;          ///< the field classified and generated for (-1: the first label field)
  int64_t codec_field = -1;          ///< the field generated and decoded (-1: the first codec field)
  std::vector<std::string> series;   ///< checkpoints for the accuracy-over-training chart (may be empty)
  const TokenCodec* codec = nullptr;  ///< decodes generated strings into items
  std::shared_ptr<const Grader> grader;  ///< grades decoded items (the domain's reference classifier)
  at::Tensor test_items;             ///< (N, ...) the real test items: the codec's ceiling under the grader
  const std::unordered_set<std::string>* train_strings = nullptr;  ///< codec strings of training lines
  /// Data-parallel: every rank of the group calls run_evaluation with the same inputs; what runs over every test
  /// record (exact and sampled classification, every checkpoint of the series, the reference classifier's ceiling) is
  /// sharded across the ranks (vlm/eval/classify.h), and the rest runs on rank 0, which alone writes and returns the
  /// summary (the others return null).
  ProcessGroup* group = nullptr;
  int threads_alone = -1;  ///< rank 0's threads once it works alone (OpenBLAS's pool; 0 = all cores, -1 = unchanged)
};

/// The inputs an Engine holds (model, tokenizer, format, codec, grader); the test records and the rest are the
/// caller's. The engine must outlive the evaluation (the codec is borrowed).
EvaluationInputs evaluation_inputs(Engine& engine);

/// Runs every evaluation (speed_report when naive_prompts > 0 or samples_per_class > 0), writes figures (PNG/SVG) and
/// summary.json into options.out_dir, returns the summary (null on a data-parallel rank other than 0).
nlohmann::json run_evaluation(EvaluationInputs& inputs, const EvaluatorOptions& options);

}  // namespace vlm
