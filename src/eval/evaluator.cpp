#include "vlm/eval/evaluator.h"

#include <filesystem>

#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

namespace vlm {

nlohmann::json run_evaluation(EvaluationInputs& in, const EvaluatorOptions& o) {
  VLM_CHECK(in.model, "run_evaluation: no model");
  VLM_CHECK(!in.test_strings.empty() && in.test_labels.defined() &&
                in.test_labels.size(0) == static_cast<int64_t>(in.test_strings.size()),
            "run_evaluation: ", in.test_strings.size(), " test strings but ",
            in.test_labels.defined() ? in.test_labels.size(0) : 0, " labels");
  ensure_directory(o.out_dir);
  auto out = [&](const char* name) { return (std::filesystem::path(o.out_dir) / name).string(); };
  const int64_t N = static_cast<int64_t>(in.test_strings.size()), L = static_cast<int64_t>(in.test_strings[0].size());
  nlohmann::json summary = {{"model", in.model_path}, {"test_examples", N}, {"image_length", L}};
  std::vector<std::string> skipped;

  auto exact = classify_exact(in.model, in.tokenizer, in.test_strings, in.test_labels, o.batch_size);
  summary["classification_exact"] = exact.to_json();
  write_confusion_svg(out("confusion.svg"), exact.metrics,
                      fmt::format("Confusion matrix (exact, accuracy {:.4f})", exact.metrics.accuracy));
  fmt::print("evaluate: exact accuracy {:.4f} +- {:.4f} on {} examples in {:.2f}s\n", exact.metrics.accuracy,
             exact.metrics.std_error, N, exact.seconds);
  const auto sampled_opts = SamplerOptions().temperature(o.sampled_temperature).top_k(o.sampled_top_k).seed(o.seed)
                                .batch_size(o.batch_size);
  if (o.sampled) {
    auto sampled = classify_sampled(in.model, in.tokenizer, in.test_strings, in.test_labels, sampled_opts);
    summary["classification_sampled"] = sampled.to_json();
    fmt::print("evaluate: sampled accuracy {:.4f}, {} invalid answers\n", sampled.metrics.accuracy,
               sampled.metrics.invalid);
  }
  if (!in.series.empty()) {
    auto series = accuracy_over_checkpoints(in.series, in.test_strings, in.test_labels, o.batch_size,
                                            in.model->wte->weight.device());
    summary["accuracy_over_checkpoints"] = series.to_json();
    write_accuracy_over_checkpoints_svg(out("accuracy_over_checkpoints.svg"), series);
  }
  const auto gen_opts = SamplerOptions().temperature(o.gen_temperature).top_k(o.gen_top_k).seed(o.seed)
                            .batch_size(o.batch_size);
  SpeedReport speed;
  if (o.naive_prompts > 0 || o.samples_per_digit > 0)
    speed = speed_report(in.model, in.tokenizer, in.test_strings,
                         {o.naive_prompts, sampled_opts, exact.seconds, o.batch_size, o.samples_per_digit, gen_opts});
  if (o.naive_prompts > 0) summary["speed"] = speed.to_json();

  if (o.samples_per_digit > 0) {
    auto gen = generate_digits(in.model, in.tokenizer, L, o.samples_per_digit, gen_opts, /*constrained=*/true);
    auto free_gen = generate_digits(in.model, in.tokenizer, L, o.samples_per_digit, gen_opts, /*constrained=*/false);
    auto g = generation_metrics(gen, free_gen, gen_opts, in.train_strings).to_json();
    g.update(speed.cache_json());
    if (!in.train_strings) skipped.push_back("memorisation (no training strings given)");
    if (in.codec) {
      write_generation_grid(out("generated.png"), *in.codec, gen, o.grid_columns);
      write_generation_grid(out("generated_unconstrained.png"), *in.codec, free_gen, o.grid_columns);
      if (in.classifier) {
        auto graded = grade_generation(*in.codec, in.classifier, gen);
        g.update(graded.to_json());
        write_graded_accuracy_svg(out("graded_accuracy.svg"), graded);
      } else {
        skipped.push_back("graded accuracy (no reference classifier)");
      }
    } else {
      skipped.push_back("image grids and graded accuracy (no tokenizer checkpoint to decode images)");
    }
    fmt::print("evaluate: generation {}\n", g.dump());
    summary["generation"] = g;
  } else {
    skipped.push_back("generation (--samples_per_digit=0)");
  }
  if (in.codec && in.classifier && in.test_images.defined())
    summary["reference_classifier"] =
        reference_classifier_ceiling(*in.codec, in.classifier, in.test_images, in.test_labels).to_json();
  write_token_figures(token_usage(in.test_strings, in.test_labels, in.tokenizer.image_alphabet(), o.logo_examples),
                      o.out_dir);
  summary["skipped"] = skipped;
  write_text_atomically(out("summary.json"), summary.dump(2) + "\n");
  return summary;
}

}  // namespace vlm
