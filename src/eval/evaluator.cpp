#include "vlm/eval/evaluator.h"

#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/dist/process_group.h"

namespace vlm {

EvaluationInputs evaluation_inputs(Engine& engine) {
  EvaluationInputs in;
  in.model = engine.model();
  in.tokenizer = engine.tokenizer();
  in.format = engine.format();
  in.codec = &engine.codec();
  in.grader = engine.shared_grader();
  return in;
}

nlohmann::json run_evaluation(EvaluationInputs& in, const EvaluatorOptions& o) {
  VLM_CHECK(in.model, "run_evaluation: no model");
  VLM_CHECK(!in.test_records.empty(), "run_evaluation: no test records");
  const SequenceFormat& format = in.format;
  const int64_t codec_field = in.codec_field >= 0 ? in.codec_field : format.first_codec_field();
  // The classes are the combinations of the label fields ("red 7"); for one label field, its words.
  const auto classes = label_combinations(format, in.label_field >= 0 ? std::vector<int64_t>{in.label_field}
                                                                      : std::vector<int64_t>{});
  VLM_CHECK(!classes.fields.empty(), "run_evaluation: the format has no label field");
  const bool several = classes.fields.size() > 1;
  const bool main = !in.group || in.group->is_main();
  const bool sharded = in.group && in.group->distributed();
  if (main) ensure_directory(o.out_dir);
  auto out = [&](const char* name) { return (std::filesystem::path(o.out_dir) / name).string(); };
  const int64_t N = static_cast<int64_t>(in.test_records.size());
  std::vector<std::vector<int64_t>> field_values(classes.fields.size());
  std::vector<int64_t> label_values;
  std::vector<std::string> codec_strings;
  for (const auto& r : in.test_records) {
    std::vector<int64_t> c;
    for (size_t k = 0; k < classes.fields.size(); ++k) {
      const FieldSpec& spec = format.field(classes.fields[k]);
      c.push_back(spec.word_index(r.values[classes.fields[k]]));
      VLM_CHECK(c.back() >= 0, "run_evaluation: test record's '", spec.name, "' is '", r.values[classes.fields[k]],
                "', not a word of the format");
      field_values[k].push_back(c.back());
    }
    label_values.push_back(classes.index(c));
    if (codec_field >= 0) codec_strings.push_back(r.values[codec_field]);
  }
  const auto labels = at::tensor(label_values, at::kLong);
  std::vector<std::string> label_names;
  for (int64_t f : classes.fields) label_names.push_back(format.field(f).name);
  nlohmann::json summary = {{"model", in.model_path}, {"test_examples", N}, {"format", format.to_json()},
                            {"label_field", several ? nlohmann::json(label_names) : nlohmann::json(label_names[0])}};
  std::vector<std::string> skipped;

  // What runs over every test record (most of the work: the classifications and the reference classifier's ceiling)
  // is sharded across the ranks of a group; the rest (generation, timings, figures) is rank 0's alone.
  auto exact = several ? classify_joint(in.model, in.tokenizer, format, in.test_records, labels, o.batch_size, in.group)
                       : classify_exact(in.model, in.tokenizer, format, in.test_records, labels, o.batch_size,
                                        classes.fields[0], in.group);
  // With several label fields, each is also classified alone (the others summed over), exactly and sampled.
  std::vector<ExactClassification> exact_fields;
  std::vector<SampledClassification> sampled_fields;
  const auto sampled_opts = SamplerOptions().temperature(o.sampled_temperature).top_k(o.sampled_top_k).seed(o.seed)
                                .batch_size(o.batch_size);
  for (size_t k = 0; k < classes.fields.size(); ++k) {
    const auto field_labels = at::tensor(field_values[k], at::kLong);
    if (several)
      exact_fields.push_back(classify_exact(in.model, in.tokenizer, format, in.test_records, field_labels, o.batch_size,
                                            classes.fields[k], in.group));
    if (o.sampled)
      sampled_fields.push_back(classify_sampled(in.model, in.tokenizer, format, in.test_records, field_labels,
                                                sampled_opts, classes.fields[k], in.group));
  }
  CheckpointAccuracy series;
  if (!in.series.empty())
    series = accuracy_over_checkpoints(in.series, in.test_records, labels, o.batch_size,
                                       in.model->wte->weight.device(), in.group);
  std::optional<ReferenceCeiling> ceiling;
  if (in.codec && in.grader && in.test_items.defined())
    ceiling = reference_classifier_ceiling(*in.codec, *in.grader, in.test_items, labels, in.group);
  if (!main) return nullptr;
  std::optional<ScopedThreads> alone;
  if (sharded && in.threads_alone >= 0) alone.emplace(in.threads_alone, ThreadPool::kBlas);

  summary["classification_exact"] = exact.to_json();
  write_confusion_svg(out("confusion.svg"), exact.metrics,
                      fmt::format("Confusion matrix (exact, accuracy {:.4f})", exact.metrics.accuracy));
  fmt::print("evaluate: {}exact accuracy {:.4f} +- {:.4f} on {} examples in {:.2f}s{}\n", several ? "joint " : "",
             exact.metrics.accuracy,
             exact.metrics.std_error, N, exact.seconds,
             sharded ? fmt::format(" ({} processes)", in.group->world_size()) : "");
  for (size_t k = 0; k < exact_fields.size(); ++k) {
    summary["classification_fields"][label_names[k]]["exact"] = exact_fields[k].to_json();
    fmt::print("evaluate: {} exact accuracy {:.4f} +- {:.4f}\n", label_names[k], exact_fields[k].metrics.accuracy,
               exact_fields[k].metrics.std_error);
  }
  for (size_t k = 0; k < sampled_fields.size(); ++k) {
    // One label field: the seed's figure, as before; several: one per field.
    if (several) summary["classification_fields"][label_names[k]]["sampled"] = sampled_fields[k].to_json();
    else summary["classification_sampled"] = sampled_fields[k].to_json();
    fmt::print("evaluate: {}sampled accuracy {:.4f}, {} invalid answers\n", several ? label_names[k] + " " : "",
               sampled_fields[k].metrics.accuracy, sampled_fields[k].metrics.invalid);
  }
  if (!in.series.empty()) {
    summary["accuracy_over_checkpoints"] = series.to_json();
    write_accuracy_over_checkpoints_svg(out("accuracy_over_checkpoints.svg"), series);
  }
  const auto gen_opts = SamplerOptions().temperature(o.gen_temperature).top_k(o.gen_top_k).seed(o.seed)
                            .batch_size(o.batch_size);
  std::string no_generation;
  const int64_t conditioned = several ? -1 : classes.fields[0];  // generation asks for every class, all fields given
  const bool can_generate = can_generate_per_class(format, codec_field, conditioned, &no_generation);
  SpeedReport speed;
  if (o.naive_prompts > 0 || (o.samples_per_class > 0 && can_generate)) {
    SpeedOptions so;
    so.naive_prompts = o.naive_prompts;
    so.naive_sampler = sampled_opts;
    so.exact_seconds = exact.seconds;
    so.batch_size = o.batch_size;
    so.cache_prompts = can_generate ? o.samples_per_class : 0;
    so.cache_sampler = gen_opts;
    so.label_field = classes.fields.back();
    speed = speed_report(in.model, in.tokenizer, format, in.test_records, so);
  }
  if (o.naive_prompts > 0) summary["speed"] = speed.to_json();

  if (o.samples_per_class > 0 && can_generate) {
    auto gen = generate_per_class(in.model, in.tokenizer, format, codec_field, conditioned, o.samples_per_class,
                                  gen_opts,
                                  /*constrained=*/true);
    auto free_gen = generate_per_class(in.model, in.tokenizer, format, codec_field, conditioned, o.samples_per_class,
                                       gen_opts, /*constrained=*/false);
    auto g = generation_metrics(gen, free_gen, gen_opts, in.train_strings).to_json();
    g.update(speed.cache_json());
    if (!in.train_strings) skipped.push_back("memorisation (no training strings given)");
    if (in.codec) {
      if (!write_generation_grid(out("generated.png"), *in.codec, gen, o.grid_columns) ||
          !write_generation_grid(out("generated_unconstrained.png"), *in.codec, free_gen, o.grid_columns))
        skipped.push_back("generation grids (the codec draws no pictures)");
      if (in.grader) {
        auto graded = grade_generation(*in.codec, *in.grader, gen);
        g.update(graded.to_json());
        write_graded_accuracy_svg(out("graded_accuracy.svg"), graded);
      } else {
        skipped.push_back("graded accuracy (no reference classifier)");
      }
    } else {
      skipped.push_back("generation grids and graded accuracy (no codec checkpoint to decode the strings)");
    }
    fmt::print("evaluate: generation {}\n", g.dump());
    summary["generation"] = g;
  } else {
    skipped.push_back(o.samples_per_class > 0 ? "generation (" + no_generation + ")"
                                              : "generation (--samples_per_class=0)");
  }
  if (ceiling) summary["reference_classifier"] = ceiling->to_json();
  if (codec_field >= 0)
    write_token_figures(token_usage(codec_strings, labels, format.field(codec_field).alphabet, classes.names(format),
                                    o.logo_examples),
                        o.out_dir);
  summary["skipped"] = skipped;
  write_text_atomically(out("summary.json"), summary.dump(2) + "\n");
  return summary;
}

}  // namespace vlm
