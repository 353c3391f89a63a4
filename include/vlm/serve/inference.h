#pragma once
// What `vlm serve` computes, as batched library calls on one finished run: the tokenizer (VQ-VAE), the GPT and the
// reference classifier, loaded once.
//
//   vlm::InferenceEngine engine("runs/mnist");
//   auto letters = engine.encode(images);                 // (N, 1, 28, 28) in [0, 1] -> N strings "ABCDEFGH"
//   auto c = engine.classify(letters);                    // exact posterior over the label words, per row
//   auto g = engine.generate({{7, 16, 0.8, 200, 1337}});  // 16 images of "7" for seed 1337
//
// Batching does not change an answer: classify() is classify_exact() and encode/decode/grade are the codec's and
// classifier's own batched functions; generate() gives each request its own generator seeded with its seed and runs
// its prompt alone, so it draws exactly what generate_per_class() with Sampler draws for that request alone, whatever
// else shares the batch. The one batch-dependent thing is float rounding: OpenBLAS rounds a row of a matrix product
// according to the rows around it, so a probability may differ by ~1e-7 between a batch of one and a larger one.
// tests/test_serve.cpp checks all of it against the library functions. Not thread-safe: one thread (the server's
// batching worker) calls it.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/models/digit_classifier.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace vlm {

/// One generate request: `n` images of class `label` (an index into the label field's words).
struct GenerateRequest {
  int64_t label = 0;
  int64_t n = 16;
  double temperature = 1.0;
  int64_t top_k = 0;  ///< 0 = off
  uint64_t seed = 1337;
};

struct GenerateResult {
  std::vector<std::string> completions;  ///< the text sampled after the prompt
  std::vector<std::string> letters;      ///< the image field's letters; "" when the completion is not a valid line
};

class InferenceEngine {
 public:
  /// Loads <run_dir>'s tokenizer, GPT (best.pt) and reference classifier (vlm::RunPaths) onto `device`.
  explicit InferenceEngine(const std::string& run_dir, c10::Device device = c10::kCPU);

  const ImageTokenCodec& codec() const { return codec_; }
  const LoadedGPT& gpt() const { return gpt_; }
  const std::string& run_dir() const { return run_dir_; }
  int64_t image_size() const;           ///< height = width of the images (28)
  int64_t image_field() const { return image_field_; }
  int64_t label_field() const { return label_field_; }
  const std::vector<std::string>& words() const;  ///< the label field's words ("0" ... "9")
  /// Model, tokenizer, format and vocabulary, for /api/info.
  nlohmann::json describe() const;

  /// images (N, 1, S, S) float in [0, 1] -> N letter strings.
  std::vector<std::string> encode(const at::Tensor& images);
  /// N valid letter strings -> images (N, 1, S, S) float in [0, 1]; throws naming an invalid letter.
  at::Tensor decode(const std::vector<std::string>& letters);
  /// The GPT's posterior over the label words (N, C) float for N valid letter strings (the image field's values).
  at::Tensor classify(const std::vector<std::string>& letters);
  /// The reference classifier's probabilities (N, 10) for images (N, 1, S, S).
  at::Tensor grade(const at::Tensor& images);
  /// Constrained generation; results[i] belongs to requests[i] and does not depend on the other requests.
  std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& requests);

 private:
  std::vector<GenerateResult> generate_same_length(const std::vector<GenerateRequest>& requests,
                                                   const std::vector<std::string>& prompts);
  struct PromptState {
    at::Tensor logits;  ///< (1, V) after the prompt
    GPTImpl::KVCache cache;
  };
  std::map<std::string, PromptState> prompt_cache_;  ///< one per label word at most
  std::string run_dir_;
  c10::Device device_;
  ImageTokenCodec codec_;
  LoadedGPT gpt_;
  DigitClassifier classifier_{nullptr};
  int64_t image_field_ = -1, label_field_ = -1;
  int64_t classify_template_ = -1, generate_template_ = -1;
};

}  // namespace vlm
