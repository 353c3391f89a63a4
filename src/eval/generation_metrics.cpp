#include "vlm/eval/generation_metrics.h"

#include <chrono>
#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/io/png.h"
#include "vlm/io/svg_plot.h"
#include "vlm/sample/template_constraint.h"
#include "vlm/text/sequences.h"

namespace vlm {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

std::vector<std::string> Generation::all_images() const {
  std::vector<std::string> all;
  for (const auto& row : images) all.insert(all.end(), row.begin(), row.end());
  return all;
}

Generation generate_digits(GPT& model, const CharTokenizer& tokenizer, int64_t image_length, int64_t per_digit,
                           const SamplerOptions& options, bool constrained) {
  VLM_CHECK(per_digit > 0 && image_length > 0, "generate_digits: per_digit and image_length must be positive");
  TemplateConstraint constraint(Template::kGenerate, tokenizer, image_length);
  Sampler sampler(model, tokenizer, options);
  auto t0 = Clock::now();
  Generation g;
  g.completions.resize(10);
  g.images.resize(10);
  for (int64_t d = 0; d < 10; ++d) {
    std::vector<std::string> prompts(per_digit, generation_prompt(d));
    auto completions = sampler.complete(prompts, constrained ? &constraint : nullptr);
    for (const auto& c : completions) {
      // Valid = exactly the template's continuation: image_length alphabet letters and '.'.
      bool ok = constraint.matches(generation_prompt(d) + c);
      g.images[d].push_back(ok ? c.substr(0, image_length) : "");
      g.invalid += !ok;
    }
    g.completions[d] = std::move(completions);
    g.total += per_digit;
  }
  g.seconds = since(t0);
  g.tokens = sampler.tokens_generated();
  return g;
}

double distinct_fraction(const std::vector<std::string>& strings) {
  VLM_CHECK(!strings.empty(), "distinct_fraction: no strings");
  std::unordered_set<std::string> distinct(strings.begin(), strings.end());
  return static_cast<double>(distinct.size()) / static_cast<double>(strings.size());
}

double memorised_fraction(const std::vector<std::string>& strings, const std::unordered_set<std::string>& train) {
  VLM_CHECK(!strings.empty(), "memorised_fraction: no strings");
  int64_t seen = 0;
  for (const auto& s : strings) seen += train.count(s) > 0;
  return static_cast<double>(seen) / static_cast<double>(strings.size());
}

GenerationMetrics generation_metrics(const Generation& constrained, const Generation& unconstrained,
                                     const SamplerOptions& options, const std::unordered_set<std::string>* train) {
  VLM_CHECK(constrained.total > 0 && unconstrained.total > 0, "generation_metrics: an empty generation");
  GenerationMetrics m;
  for (const auto& row : constrained.images)
    m.samples_per_digit = std::max<int64_t>(m.samples_per_digit, static_cast<int64_t>(row.size()));
  m.temperature = options.temperature();
  m.top_k = options.top_k();
  m.invalid_rate_constrained = double(constrained.invalid) / double(constrained.total);
  m.invalid_rate_unconstrained = double(unconstrained.invalid) / double(unconstrained.total);
  const auto all = constrained.all_images();
  m.distinct_fraction = distinct_fraction(all);
  if (train) m.memorised_fraction = memorised_fraction(all, *train);
  m.seconds = constrained.seconds;
  return m;
}

nlohmann::json GenerationMetrics::to_json() const {
  nlohmann::json j = {{"samples_per_digit", samples_per_digit},
                      {"temperature", temperature},
                      {"top_k", top_k},
                      {"invalid_rate_constrained", invalid_rate_constrained},
                      {"invalid_rate_unconstrained", invalid_rate_unconstrained},
                      {"distinct_fraction", distinct_fraction},
                      {"seconds", seconds}};
  if (memorised_fraction) j["memorised_fraction"] = *memorised_fraction;
  return j;
}

GradedGeneration grade_generation(const ImageTokenCodec& codec, DigitClassifier& classifier, const Generation& gen) {
  VLM_CHECK(gen.images.size() == 10, "grade_generation: expected 10 rows of generated strings, got ",
            gen.images.size());
  GradedGeneration g;
  int64_t right = 0, total = 0;
  for (int64_t d = 0; d < 10; ++d) {
    std::vector<std::string> valid;
    for (const auto& s : gen.images[d])
      if (!s.empty()) valid.push_back(s);
    int64_t ok = 0;
    if (!valid.empty()) {
      auto pred = classifier_probabilities(classifier, codec.decode_text(valid)).argmax(1);
      ok = pred.eq(d).sum().item<int64_t>();
    }
    const int64_t n = static_cast<int64_t>(gen.images[d].size());
    g.recognised.push_back(ok);
    g.samples.push_back(n);
    g.per_digit.push_back(n ? double(ok) / double(n) : std::numeric_limits<double>::quiet_NaN());
    right += ok, total += n;
  }
  VLM_CHECK(total > 0, "grade_generation: no generated strings");
  g.graded_accuracy = double(right) / double(total);
  return g;
}

nlohmann::json GradedGeneration::to_json() const {
  nlohmann::json per = nlohmann::json::array();
  for (double v : per_digit) per.push_back(std::isnan(v) ? nlohmann::json() : nlohmann::json(v));
  return {{"graded_accuracy", graded_accuracy}, {"graded_accuracy_per_digit", per}};
}

void write_graded_accuracy_svg(const std::string& path, const GradedGeneration& graded) {
  std::vector<std::string> names;
  std::vector<double> values;
  for (size_t d = 0; d < graded.per_digit.size(); ++d)
    names.push_back(std::to_string(d)), values.push_back(std::isnan(graded.per_digit[d]) ? 0.0 : graded.per_digit[d]);
  plot::save_svg(path, plot::bar_chart(names, values,
                                       {"Generated digits the reference classifier recognises", "digit asked for",
                                        "graded accuracy", 560, 360, 0.0, 1.0}));
}

ReferenceCeiling reference_classifier_ceiling(const ImageTokenCodec& codec, DigitClassifier& classifier,
                                              const at::Tensor& images, const at::Tensor& labels) {
  VLM_CHECK(images.defined() && labels.defined() && images.size(0) == labels.size(0),
            "reference_classifier_ceiling: images and labels must be given, one label per image");
  auto cpu_labels = labels.to(at::kCPU);
  auto recon = codec.decode_codes(codec.encode_codes(images));
  ReferenceCeiling c;
  c.accuracy_real_test = classifier_accuracy(classifier, {images, cpu_labels});
  c.accuracy_vqvae_reconstructions = classifier_accuracy(classifier, {recon, cpu_labels});
  return c;
}

nlohmann::json ReferenceCeiling::to_json() const {
  return {{"accuracy_real_test", accuracy_real_test}, {"accuracy_vqvae_reconstructions", accuracy_vqvae_reconstructions}};
}

void write_generation_grid(const std::string& path, const ImageTokenCodec& codec, const Generation& gen,
                           int64_t columns) {
  VLM_CHECK(columns > 0, "write_generation_grid: columns must be positive");
  const int64_t size = codec.model()->options.image_size();
  std::vector<at::Tensor> tiles;
  for (const auto& row : gen.images)
    for (int64_t c = 0; c < columns; ++c) {
      if (c < static_cast<int64_t>(row.size()) && !row[c].empty()) tiles.push_back(codec.decode_text_one(row[c]));
      else tiles.push_back(at::zeros({1, size, size}));
    }
  write_png(path, image_grid(at::stack(tiles), columns));
}

}  // namespace vlm
