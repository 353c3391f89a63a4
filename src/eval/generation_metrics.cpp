#include "vlm/eval/generation_metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/dist/process_group.h"
#include "vlm/io/png.h"
#include "vlm/io/svg_plot.h"

namespace vlm {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

std::vector<std::string> Generation::all_values() const {
  std::vector<std::string> all;
  for (const auto& row : values) all.insert(all.end(), row.begin(), row.end());
  return all;
}

namespace {
// The label fields the template that writes `codec_field` last writes before it (those a generation is conditioned
// on); empty with a reason when that template is missing or writes another codec field, or `label_field` >= 0 is not
// the only one.
std::vector<int64_t> conditioning_fields(const SequenceFormat& format, int64_t codec_field, int64_t label_field,
                                         std::string& why) {
  if (codec_field < 0 || codec_field >= format.num_fields() || !format.field(codec_field).is_codec())
    return why = "no codec field to generate", std::vector<int64_t>{};
  if (label_field >= format.num_fields() || (label_field >= 0 && !format.field(label_field).is_label()))
    return why = "no label field to condition on", std::vector<int64_t>{};
  const int64_t t = format.template_ending_with(codec_field);
  if (t < 0)
    return why = "no template writes field '" + format.field(codec_field).name + "' last", std::vector<int64_t>{};
  const auto fields = format.fields_before(t, codec_field);
  for (int64_t f : fields)
    if (!format.field(f).is_label() || (label_field >= 0 && f != label_field))
      return why = "the template that writes '" + format.field(codec_field).name + "' last also writes '" +
                   format.field(f).name + "' before it",
             std::vector<int64_t>{};
  if (fields.empty()) why = "the template that writes '" + format.field(codec_field).name + "' last has no label before it";
  return fields;
}
}  // namespace

bool can_generate_per_class(const SequenceFormat& format, int64_t codec_field, int64_t label_field,
                            std::string* reason) {
  std::string why;
  const bool ok = !conditioning_fields(format, codec_field, label_field, why).empty();
  if (!ok && reason) *reason = why;
  return ok;
}

Generation generate_per_class(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                              int64_t codec_field, int64_t label_field, int64_t per_class,
                              const SamplerOptions& options, bool constrained, int64_t only_class) {
  std::string why;
  const auto fields = conditioning_fields(format, codec_field, label_field, why);
  VLM_CHECK(!fields.empty(), "generate_per_class: ", why);
  VLM_CHECK(per_class > 0, "generate_per_class: per_class must be positive, got ", per_class);
  // The classes: every combination of the conditioning fields' words, in the format's order ("red 7").
  std::vector<int64_t> ordered = fields;
  std::sort(ordered.begin(), ordered.end());
  const auto classes = label_combinations(format, ordered);
  Sampler sampler(model, tokenizer, options);
  auto t0 = Clock::now();
  Generation g;
  g.words = classes.names(format);
  const int64_t K = classes.count();
  g.completions.resize(static_cast<size_t>(K));
  g.values.resize(static_cast<size_t>(K));
  VLM_CHECK(only_class < K, "generate_per_class: no class ", only_class, " (there are ", K, ")");
  for (int64_t k = 0; k < K; ++k) {
    if (only_class >= 0 && k != only_class) continue;
    std::vector<std::string> given(format.num_fields());
    const auto c = classes.classes(k);
    for (size_t j = 0; j < ordered.size(); ++j) given[ordered[j]] = format.field(ordered[j]).words[c[j]];
    const std::string prompt = format.prompt_for(codec_field, given);
    auto completions = sampler.complete(std::vector<std::string>(per_class, prompt), constrained ? &format : nullptr);
    for (const auto& text : completions) {
      std::string value = format.answer(codec_field, prompt, text);  // "" when not a line of the format: invalid
      g.invalid += value.empty();
      g.values[k].push_back(std::move(value));
    }
    g.completions[k] = std::move(completions);
    g.total += per_class;
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
  for (const auto& row : constrained.values)
    m.samples_per_class = std::max<int64_t>(m.samples_per_class, static_cast<int64_t>(row.size()));
  m.temperature = options.temperature();
  m.top_k = options.top_k();
  m.invalid_rate_constrained = double(constrained.invalid) / double(constrained.total);
  m.invalid_rate_unconstrained = double(unconstrained.invalid) / double(unconstrained.total);
  const auto all = constrained.all_values();
  m.distinct_fraction = distinct_fraction(all);
  if (train) m.memorised_fraction = memorised_fraction(all, *train);
  m.seconds = constrained.seconds;
  return m;
}

nlohmann::json GenerationMetrics::to_json() const {
  nlohmann::json j = {{"samples_per_class", samples_per_class},
                      {"temperature", temperature},
                      {"top_k", top_k},
                      {"invalid_rate_constrained", invalid_rate_constrained},
                      {"invalid_rate_unconstrained", invalid_rate_unconstrained},
                      {"distinct_fraction", distinct_fraction},
                      {"seconds", seconds}};
  if (memorised_fraction) j["memorised_fraction"] = *memorised_fraction;
  return j;
}

GradedGeneration grade_generation(const TokenCodec& codec, const Grader& grader, const Generation& gen) {
  VLM_CHECK(gen.values.size() == gen.words.size() && !gen.words.empty(),
            "grade_generation: a generation with one row of strings per class expected");
  GradedGeneration g;
  g.words = gen.words;
  int64_t right = 0, total = 0;
  for (size_t w = 0; w < gen.values.size(); ++w) {
    std::vector<std::string> valid;
    for (const auto& s : gen.values[w])
      if (!s.empty()) valid.push_back(s);
    int64_t ok = 0;
    if (!valid.empty())
      ok = grader.predict(codec.decode(valid)).to(at::kCPU).eq(static_cast<int64_t>(w)).sum().item<int64_t>();
    const int64_t n = static_cast<int64_t>(gen.values[w].size());
    g.recognised.push_back(ok);
    g.samples.push_back(n);
    g.per_class.push_back(n ? double(ok) / double(n) : std::numeric_limits<double>::quiet_NaN());
    right += ok, total += n;
  }
  VLM_CHECK(total > 0, "grade_generation: no generated strings");
  g.graded_accuracy = double(right) / double(total);
  return g;
}

nlohmann::json GradedGeneration::to_json() const {
  nlohmann::json per = nlohmann::json::object();
  for (size_t w = 0; w < per_class.size(); ++w)
    per[words[w]] = std::isnan(per_class[w]) ? nlohmann::json() : nlohmann::json(per_class[w]);
  return {{"graded_accuracy", graded_accuracy}, {"graded_accuracy_per_class", per}};
}

void write_graded_accuracy_svg(const std::string& path, const GradedGeneration& graded) {
  std::vector<double> values;
  for (double v : graded.per_class) values.push_back(std::isnan(v) ? 0.0 : v);
  plot::save_svg(path, plot::bar_chart(graded.words, values,
                                       {"Generated items the reference classifier recognises", "class asked for",
                                        "graded accuracy", 560, 360, 0.0, 1.0}));
}

ReferenceCeiling reference_classifier_ceiling(const TokenCodec& codec, const Grader& grader,
                                              const at::Tensor& items, const at::Tensor& labels, ProcessGroup* group) {
  VLM_CHECK(items.defined() && labels.defined() && items.size(0) == labels.size(0),
            "reference_classifier_ceiling: items and labels must be given, one label per item");
  const int64_t n = items.size(0);
  const auto [first, last] = group ? group->shard(n) : std::pair<int64_t, int64_t>{0, n};
  auto mine = items.narrow(0, first, last - first);
  auto mine_labels = labels.to(at::kCPU, at::kLong).narrow(0, first, last - first);
  auto correct = [&](const at::Tensor& x) {
    return x.size(0) == 0 ? 0.0 : grader.predict(x).to(at::kCPU).eq(mine_labels).sum().item<double>();
  };
  std::vector<double> right = {correct(mine), last > first ? correct(codec.decode(codec.encode(mine))) : 0.0};
  if (group) right = group->all_reduce_sum(right);
  ReferenceCeiling c;
  c.accuracy_real_test = right[0] / static_cast<double>(n);
  c.accuracy_codec_reconstructions = right[1] / static_cast<double>(n);
  return c;
}

nlohmann::json ReferenceCeiling::to_json() const {
  return {{"accuracy_real_test", accuracy_real_test}, {"accuracy_codec_reconstructions", accuracy_codec_reconstructions}};
}

bool write_generation_grid(const std::string& path, const TokenCodec& codec, const Generation& gen, int64_t columns) {
  return codec.write_grid_png(path, gen.values, columns);
}

}  // namespace vlm
