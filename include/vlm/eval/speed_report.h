#pragma once
// Speed, kept apart from the metrics: the seed's naive loop (one prompt at a time, 10 sampled tokens, no cache)
// against exact classification, and generation with the key/value cache against without it.
//
//   auto s = vlm::speed_report(model, tokenizer, format, test_records, SpeedOptions{});
//   summary["speed"] = s.to_json();
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vlm/models/gpt.h"
#include "vlm/sample/sampler.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"

namespace vlm {

struct SpeedOptions {
  int64_t naive_prompts = 100;      ///< prompts timed one at a time through the naive loop (0 = skip)
  SamplerOptions naive_sampler;     ///< temperature/top-k/seed of the naive loop (batch 1, no cache, 10 tokens forced)
  double exact_seconds = 0;         ///< time of exact classification of all strings; 0 = measure it here
  int64_t batch_size = 1000;        ///< exact classification's batch when measured here
  int64_t cache_prompts = 100;      ///< generation prompts ("number:0, image:") timed with and without cache (0 = skip)
  int64_t label_field = -1;         ///< the field classified and generated for (-1: the format's first label field)
  SamplerOptions cache_sampler;     ///< the generation's sampler options
};

struct SpeedReport {
  // naive loop versus exact classification (valid when naive_prompts_timed > 0)
  int64_t test_examples = 0;
  int64_t naive_prompts_timed = 0;
  double exact_seconds = 0;
  double naive_seconds_per_prompt = 0, naive_seconds_extrapolated = 0, exact_speedup_vs_naive = 0;
  /// Positions run through the model per prompt: the naive loop re-runs its whole context for each of 10 tokens;
  /// exact scoring runs the prompt once, sharing the "image:" prefix. Their ratio bounds the speed-up when both run at
  /// the same FLOP rate.
  int64_t naive_positions_per_prompt = 0, exact_positions_per_prompt = 0;
  // generation with and without the key/value cache (valid when cache_prompts > 0)
  int64_t cache_prompts = 0;
  double tokens_per_second_cached = 0, tokens_per_second_uncached = 0, cache_speedup = 0;

  /// summary.json's "speed" object (the naive-loop figures); empty when the naive loop was skipped.
  nlohmann::json to_json() const;
  /// {"tokens_per_second_cached", "tokens_per_second_uncached", "cache_speedup"}; empty when skipped.
  nlohmann::json cache_json() const;
};

/// Runs the timings `options` asks for on the model's device: the naive loop on the classification prompts of
/// `test_records` (non-empty when naive_prompts > 0), the cache on generation prompts of the first class (skipped
/// when the format has no template to generate a codec field from the label alone).
SpeedReport speed_report(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                         const std::vector<Record>& test_records, const SpeedOptions& options);

}  // namespace vlm
