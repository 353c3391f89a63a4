#include "vlm/eval/speed_report.h"

#include <algorithm>
#include <chrono>

#include "vlm/core/check.h"
#include "vlm/eval/classify.h"
#include "vlm/eval/generation_metrics.h"

namespace vlm {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

SpeedReport speed_report(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                         const std::vector<Record>& test_records, const SpeedOptions& o) {
  SpeedReport r;
  const int64_t N = static_cast<int64_t>(test_records.size());
  const int64_t label = o.label_field >= 0 ? o.label_field : format.first_label_field();
  r.test_examples = N;
  if (o.naive_prompts > 0) {
    VLM_CHECK(N > 0, "speed_report: the naive loop needs test records");
    r.exact_seconds = o.exact_seconds > 0
                          ? o.exact_seconds
                          : classify_exact(model, tokenizer, format, test_records, {}, o.batch_size, label).seconds;
    const int64_t tmpl = format.reading_template(label);
    auto prompt_of = [&](const Record& rec) { return format.prompt(rec, tmpl, label); };
    // The seed's notebook loop (multi_prompt_sampling): one prompt at a time, nanoGPT's generate with
    // max_new_tokens=10, no cache and no early stop.
    const int64_t n = std::min<int64_t>(o.naive_prompts, N);
    Sampler naive(model, tokenizer, SamplerOptions(o.naive_sampler).batch_size(1).use_cache(false).max_new_tokens(10)
                                        .stop('\0'));
    auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) naive.complete({prompt_of(test_records[i])});
    r.naive_prompts_timed = n;
    r.naive_seconds_per_prompt = since(t0) / double(n);
    r.naive_seconds_extrapolated = r.naive_seconds_per_prompt * double(N);
    r.exact_speedup_vs_naive = r.naive_seconds_extrapolated / r.exact_seconds;
    const std::string prompt = prompt_of(test_records[0]);
    const int64_t T0 = static_cast<int64_t>(prompt.size()), block = model->options.block_size();
    for (int64_t i = 0; i < 10; ++i) r.naive_positions_per_prompt += std::min(T0 + i, block);
    // Exact scoring shares the template's text before its first field ("image:") across the batch.
    const auto& first = format.segments(tmpl).front();
    r.exact_positions_per_prompt = T0 - (first.is_field() ? 0 : static_cast<int64_t>(first.text.size()));
  }
  const int64_t codec = format.template_ending_with(format.first_codec_field()) >= 0 ? format.first_codec_field() : -1;
  if (o.cache_prompts > 0 && can_generate_per_class(format, codec, -1)) {
    // The same work (one class's worth of unconstrained generation) without and with the cache.
    const int64_t gen_tmpl = format.template_ending_with(codec);
    Record rec{gen_tmpl, std::vector<std::string>(format.num_fields())};
    for (int64_t f : format.label_fields()) rec.values[f] = format.field(f).words[0];
    const std::vector<std::string> prompts(o.cache_prompts, format.prompt(rec, gen_tmpl, codec));
    auto t_nc = Clock::now();
    Sampler no_cache(model, tokenizer, SamplerOptions(o.cache_sampler).use_cache(false));
    no_cache.complete(prompts);
    r.tokens_per_second_uncached = double(no_cache.tokens_generated()) / since(t_nc);
    Sampler with_cache(model, tokenizer, SamplerOptions(o.cache_sampler).use_cache(true));
    auto t_c = Clock::now();
    with_cache.complete(prompts);
    r.tokens_per_second_cached = double(with_cache.tokens_generated()) / since(t_c);
    r.cache_speedup = r.tokens_per_second_cached / r.tokens_per_second_uncached;
    r.cache_prompts = o.cache_prompts;
  }
  return r;
}

nlohmann::json SpeedReport::to_json() const {
  if (naive_prompts_timed == 0) return nlohmann::json::object();
  return {{"exact_seconds", exact_seconds},
          {"naive_prompts_timed", naive_prompts_timed},
          {"naive_seconds_per_prompt", naive_seconds_per_prompt},
          {"naive_seconds_extrapolated", naive_seconds_extrapolated},
          {"exact_speedup_vs_naive", exact_speedup_vs_naive},
          {"naive_positions_per_prompt", naive_positions_per_prompt},
          {"exact_positions_per_prompt", exact_positions_per_prompt}};
}

nlohmann::json SpeedReport::cache_json() const {
  if (cache_prompts == 0) return nlohmann::json::object();
  return {{"tokens_per_second_cached", tokens_per_second_cached},
          {"tokens_per_second_uncached", tokens_per_second_uncached},
          {"cache_speedup", cache_speedup}};
}

}  // namespace vlm
