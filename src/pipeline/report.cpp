#include "vlm/pipeline/report.h"

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/progress.h"

namespace vlm {
namespace fs = std::filesystem;

namespace {
nlohmann::json stage_record(const std::string& run_dir, const std::string& stage) {
  auto p = fs::path(run_dir) / stage / "stage.json";
  if (!fs::exists(p)) return nlohmann::json::object();
  return nlohmann::json::parse(read_text_file(p.string()));
}
std::string num(const nlohmann::json& j, const char* fmt_spec = "{:.4f}") {
  if (j.is_number()) return fmt::format(fmt::runtime(fmt_spec), j.get<double>());
  return "n/a";
}
}  // namespace

void write_report(const std::string& run_dir, const nlohmann::json& s, const nlohmann::json& e) {
  std::ostringstream r;
  r << "# vlm run report: `" << run_dir << "`\n\n";
  r << "Preset `" << s.value("preset", "?") << "`, data set `" << s.value("dataset", "mnist") << "`, "
    << e.value("test_examples", 0) << " held-out test images, label field `"
    << (e.contains("label_field") && e["label_field"].is_string() ? e["label_field"].get<std::string>()
                                                                   : e.value("label_field", nlohmann::json()).dump())
    << "`. Stage wall time " << Progress::format_duration(s.value("wall_seconds", 0.0))
    << " on this machine.\n\n";

  r << "## Headline\n\n| figure | value |\n|---|---|\n";
  r << "| classification accuracy, exact (exact likelihood of each label word) | "
    << num(s["test_accuracy"]) << " +- " << num(s["test_accuracy_std_error"]) << " |\n";
  r << "| classification accuracy, sampled as the seed did (T=0.8, top-k 200) | " << num(s["test_accuracy_sampled"])
    << " |\n";
  if (s.contains("test_accuracy_fields"))
    for (const auto& [name, f] : s["test_accuracy_fields"].items())
      r << "| " << name << " alone: exact / sampled accuracy | " << num(f.value("exact", nlohmann::json())) << " / "
        << num(f.value("sampled", nlohmann::json())) << " |\n";
  r << "| graded generation accuracy (reference CNN agrees with the class asked for) | "
    << num(s["generation_graded_accuracy"]) << " |\n";
  r << "| invalid generations, constrained decoding | " << num(s["generation_invalid_rate"]) << " |\n";
  r << "| invalid generations, unconstrained | " << num(s["generation_invalid_rate_unconstrained"]) << " |\n";
  r << "| tokenizer test MSE per pixel | " << num(s["vq_test_mse"], "{:.5f}") << " |\n";
  r << "| tokenizer 10-NN token probe accuracy | " << num(s["vq_probe_10nn_accuracy"]) << " |\n\n";

  r << "## Stages\n\n| stage | seconds | results |\n|---|---|---|\n";
  for (const char* st : {"data", "vqvae", "tokens", "classifier", "gpt", "eval"}) {
    auto rec = stage_record(run_dir, st);
    if (rec.empty()) continue;
    r << "| " << st << " | " << num(rec.value("seconds", nlohmann::json()), "{:.1f}") << " | "
      << (rec.contains("results") ? rec["results"].dump() : "") << " |\n";
  }

  const auto& ce = e["classification_exact"];
  r << "\n## Classification\n\nExact: accuracy " << num(ce["accuracy"]) << " +- " << num(ce["std_error"])
    << ", top-2 " << num(ce.value("top2_accuracy", nlohmann::json())) << ", expected calibration error "
    << num(ce.value("ece", nlohmann::json())) << ", " << num(ce.value("seconds", nlohmann::json()), "{:.2f}")
    << " s for all examples.\n\nMost common confusions (share of the true class):\n\n| true | predicted | count | rate |\n"
       "|---|---|---|---|\n";
  for (const auto& c : ce["top_confusions"])
    r << "| " << c["true"] << " | " << c["predicted"] << " | " << c["count"] << " | " << num(c["rate"]) << " |\n";
  r << "\n![confusion matrix](eval/confusion.svg)\n\n";
  if (e.contains("accuracy_over_checkpoints")) {
    r << "Accuracy over training (exact, +- 1 standard error):\n\n| iteration | accuracy | std. error |\n|---|---|---|\n";
    for (const auto& row : e["accuracy_over_checkpoints"])
      r << "| " << row["iter"] << " | " << num(row["accuracy"]) << " | " << num(row["std_error"]) << " |\n";
    r << "\n![accuracy over checkpoints](eval/accuracy_over_checkpoints.svg)\n\n";
  }
  if (e.contains("speed")) {
    const auto& sp = e["speed"];
    r << "Speed: exact classification of all examples took " << num(sp["exact_seconds"], "{:.2f}")
      << " s; the seed's loop (one prompt at a time, 10 sampled tokens, no cache) takes "
      << num(sp["naive_seconds_per_prompt"], "{:.4f}") << " s per prompt, "
      << num(sp["naive_seconds_extrapolated"], "{:.0f}") << " s for all (extrapolated from "
      << sp["naive_prompts_timed"] << " prompts): " << num(sp["exact_speedup_vs_naive"], "{:.0f}") << "x.\n\n";
  }

  const auto& g = e["generation"];
  r << "## Generation\n\n" << g.value("samples_per_class", 0) << " samples per class, temperature "
    << num(g["temperature"], "{:g}") << ". Graded accuracy " << num(g.value("graded_accuracy", nlohmann::json()))
    << "; distinct strings " << num(g["distinct_fraction"]) << "; memorised (string occurs in the training set) "
    << num(g.value("memorised_fraction", nlohmann::json())) << "; key/value cache "
    << num(g["tokens_per_second_cached"], "{:.0f}") << " vs " << num(g["tokens_per_second_uncached"], "{:.0f}")
    << " tokens/s without.\n\n";
  if (g.contains("graded_accuracy_per_class")) {
    std::string head = "| class |", rule = "|---|", row = "| graded accuracy |";
    for (const auto& [word, v] : g["graded_accuracy_per_class"].items())
      head += " " + word + " |", rule += "---|", row += " " + num(v, "{:.2f}") + " |";
    r << head << "\n" << rule << "\n" << row << "\n\n";
  }
  if (e.contains("reference_classifier"))
    r << "Reference classifier: " << num(e["reference_classifier"]["accuracy_real_test"])
      << " on the real test images, " << num(e["reference_classifier"]["accuracy_codec_reconstructions"])
      << " on their VQ-VAE reconstructions (the ceiling the tokenizer allows).\n\n";
  r << "Constrained samples, one row per class in the order of the label words:\n\n![generated](eval/generated.png)\n\n"
    << "Unconstrained samples (black = an invalid string, as the seed drew them):\n\n"
    << "![generated unconstrained](eval/generated_unconstrained.png)\n\n"
    << "![graded accuracy](eval/graded_accuracy.svg)\n\n";
  r << "## Tokens\n\nTest originals above their reconstructions:\n\n![reconstructions](vqvae/recon.png)\n\n"
    << "![sequence logo](eval/token_logo.svg)\n\n![codebook usage](eval/codebook_usage.svg)\n\n";
  r << "The token text files are in `tokens/` (their format in `tokens/format.json`); `config.json` holds the resolved configuration.\n";
  write_text_atomically((fs::path(run_dir) / "report.md").string(), r.str());
}

}  // namespace vlm
