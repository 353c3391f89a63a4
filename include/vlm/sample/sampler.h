#pragma once
// Batched autoregressive generation with the GPT: greedy, temperature and top-k (clamped to the vocabulary, so
// nanoGPT's default top_k=200 works with a 50-character vocabulary), a key/value cache, stop at '.', optional
// constraint to a sequence format (vlm/text/format_automaton.h), seeded by its own generator so results do not
// depend on anything else drawn before.
//
//   Sampler sampler(model, tokenizer, SamplerOptions{}.temperature(0.8).top_k(200));
//   auto out = sampler.complete(std::vector<std::string>(64, "number:7, image:"), &format);  // "ABCDEFGH." x 64
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>

#include "vlm/models/gpt.h"
#include "vlm/text/sequence_format.h"
#include "vlm/text/char_tokenizer.h"

namespace vlm {

struct SamplerOptions {
  TORCH_ARG(double, temperature) = 1.0;
  TORCH_ARG(int64_t, top_k) = 0;           ///< 0 = no top-k; values above the vocabulary are clamped to it
  TORCH_ARG(bool, greedy) = false;         ///< argmax instead of sampling (temperature and top_k ignored)
  TORCH_ARG(bool, use_cache) = true;       ///< key/value cache; off = re-run the whole prefix every token
  TORCH_ARG(int64_t, max_new_tokens) = 0;  ///< 0 = until the stop character or the block size
  TORCH_ARG(char, stop) = '.';             ///< '\0' = never stop early (nanoGPT's generate)
  TORCH_ARG(uint64_t, seed) = 1337;
  TORCH_ARG(int64_t, batch_size) = 1000;   ///< prompts per forward pass
};

class Sampler {
 public:
  Sampler(GPT model, CharTokenizer tokenizer, SamplerOptions options = {});

  /// Completes each prompt; returns the generated text after the prompt, up to and including the stop character
  /// (or cut at max_new_tokens / the block size). Prompts of different lengths are batched by length.
  /// With a format, each prompt must itself be the start of a line of it; generation then never leaves the format
  /// and a row ends where its line is complete (the stop character is then not needed; the pad is not returned).
  std::vector<std::string> complete(const std::vector<std::string>& prompts,
                                    const SequenceFormat* constraint = nullptr);

  /// Tokens produced by all calls so far (including those past a row's stop, which batching computes and discards).
  int64_t tokens_generated() const { return tokens_generated_; }
  const SamplerOptions& options() const { return options_; }
  /// Restarts the sampler's own random generator from `seed`.
  void reseed(uint64_t seed);

 private:
  std::vector<std::string> complete_batch(const std::vector<std::string>& prompts,
                                          const SequenceFormat* constraint);
  at::Tensor pick(at::Tensor logits);  ///< (B, V) float on CPU -> (B) int64

  GPT model_;
  CharTokenizer tokenizer_;
  SamplerOptions options_;
  at::Generator generator_;
  int64_t tokens_generated_ = 0;
};

}  // namespace vlm
