#pragma once
// One trained multimodal model as one object: the token codec (images <-> letters), the sequence format (how letters
// and labels make a line), the GPT with its character tokenizer, and optionally a grader (a reference model that
// says which class an item shows). It classifies and generates through the format, so no caller types a prompt or
// cuts an answer by hand. `vlm serve`, the `vlm` tool and consumers use it.
//
//   vlm::VQVAETrainer tokenizer(vlm::VQVAE(vlm::VQVAEOptions::preset("mlp")), vq, data.train, data.validation);
//   tokenizer.train();
//   auto engine = vlm::Engine::train(tokenizer.codec(), vlm::SequenceFormat::seed(), data.train, data.validation,
//                                    gpt, lm);                     // in memory: lm.out_dir is empty
//   double accuracy = engine.accuracy(mnist.test);                // classify every image through the format
//   auto sevens = engine.generate("7", 16);                       // 16 letter strings of a 7, constrained
//   at::Tensor images = engine.decode(sevens.letters);            // (16, 1, 28, 28)
//   auto loaded = vlm::Engine::load("runs/mnist");                // a finished run of the main job
//
// Batching does not change an answer: classify() is classify_exact() and encode/decode/grade are the codec's and the
// grader's own batched functions; generate() gives each request its own generator seeded with its seed and runs its
// prompt alone, so it draws exactly what generate_per_class() with Sampler draws for that request alone, whatever
// else shares the batch. The one batch-dependent thing is float rounding: OpenBLAS rounds a row of a matrix product
// according to the rows around it, so a probability may differ by ~1e-7 between a batch of one and a larger one.
// tests/test_serve.cpp checks all of it against the library functions. Not thread-safe (the server's batching worker
// is its one caller).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/data/mnist.h"
#include "vlm/eval/grader.h"
#include "vlm/models/gpt.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_codec.h"
#include "vlm/train/gpt_trainer.h"

namespace vlm {

/// One generate request: `n` items of class `label` (an index into Engine::words()).
struct GenerateRequest {
  int64_t label = 0;
  int64_t n = 16;
  double temperature = 1.0;
  int64_t top_k = 0;  ///< 0 = off
  uint64_t seed = 1337;
};

struct GenerateResult {
  std::vector<std::string> completions;  ///< the text sampled after the prompt
  std::vector<std::string> letters;      ///< the codec field's letters; "" when the completion is not a valid line
};

class Engine {
 public:
  /// The format's first codec field holds the codec's letters and its label fields the classes; the model's
  /// vocabulary is the tokenizer's (all checked, naming what differs). A format that cannot classify (no template
  /// writes the labels after the letters) or cannot generate (none writes every label before them) still makes an
  /// engine; classify() or generate() then throws saying why.
  Engine(std::shared_ptr<const TokenCodec> codec, SequenceFormat format, GPT model, CharTokenizer tokenizer,
         std::shared_ptr<const Grader> grader = nullptr, std::string name = "");

  /// A finished run of the main job (vlm::RunPaths): its tokenizer, its GPT (best.pt) and its reference classifier as
  /// the grader, on `device`. The engine's name is the run directory's last component.
  static Engine load(const std::string& run_dir, c10::Device device = c10::kCPU);

  /// Trains a GPT on `train` written through `format` by `codec` (records_of) and returns the engine of the result.
  /// The model's block size is the format's; `options.out_dir` empty (the default) trains in memory, writing nothing.
  /// Validation is `validation`'s records (loss, and its classification accuracy unless options turn it off).
  static Engine train(std::shared_ptr<const TokenCodec> codec, const SequenceFormat& format,
                      const LabeledImages& train, const LabeledImages& validation, GPTOptions model,
                      GPTTrainOptions options, c10::Device device = c10::kCPU);

  const TokenCodec& codec() const { return *codec_; }
  const SequenceFormat& format() const { return format_; }
  GPT& model() { return model_; }
  const CharTokenizer& tokenizer() const { return tokenizer_; }
  const Grader* grader() const { return grader_.get(); }
  std::shared_ptr<const Grader> shared_grader() const { return grader_; }
  std::shared_ptr<const TokenCodec> shared_codec() const { return codec_; }
  const std::string& name() const { return name_; }
  int64_t codec_field() const { return codec_field_; }
  int64_t label_field() const { return label_field_; }  ///< the first label field
  /// The classes: the combinations of the label fields' words ("0" ... "9"; "red 0" ... "yellow 9" for colour and
  /// number), numbered as vlm::LabelCombinations does.
  const std::vector<std::string>& words() const;
  const LabelCombinations& classes() const { return classes_; }
  std::vector<std::string> label_field_names() const;
  /// The shape of one decoded item, e.g. {1, 28, 28} (what decode() gives for one string, without its batch axis).
  const std::vector<int64_t>& item_shape() const { return item_shape_; }
  /// Name, model, codec, format and vocabulary (vlm serve's /api/info).
  nlohmann::json describe() const;

  /// items (N, ...) -> N letter strings (the codec's).
  std::vector<std::string> encode(const at::Tensor& items) const;
  /// N valid letter strings -> items (N, ...); throws naming an invalid letter.
  at::Tensor decode(const std::vector<std::string>& letters) const;
  /// The GPT's posterior over the classes (N, C) float for N letter strings (the codec field's values): every label
  /// field read from the letters alone (classify_joint).
  at::Tensor classify(const std::vector<std::string>& letters);
  /// The posterior over one label field's words (N, C_field), the other label fields summed over.
  at::Tensor classify(const std::vector<std::string>& letters, const std::string& field);
  /// The most probable class of each item (N) int64: classify(encode(items)).argmax(1).
  at::Tensor predict(const at::Tensor& items);
  /// The share of `data`'s items whose predicted class is their label (every label column right).
  double accuracy(const LabeledImages& data);
  /// Per label field, the share of `data`'s items whose predicted class has that field right.
  std::vector<double> field_accuracies(const LabeledImages& data);
  /// The grader's probabilities (N, C) for items (N, ...); throws when the engine has no grader.
  at::Tensor grade(const at::Tensor& items) const;
  /// Constrained generation; results[i] belongs to requests[i] and does not depend on the other requests.
  std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& requests);
  /// `n` letter strings of the class named `word` (one of words(), e.g. "7" or "red 7").
  GenerateResult generate(const std::string& word, int64_t n, double temperature = 1.0, int64_t top_k = 0,
                          uint64_t seed = 1337);

 private:
  std::vector<GenerateResult> generate_same_length(const std::vector<GenerateRequest>& requests,
                                                   const std::vector<std::string>& prompts);
  struct PromptState {
    at::Tensor logits;  ///< (1, V) after the prompt
    GPTImpl::KVCache cache;
  };
  std::vector<Record> records_for(const std::vector<std::string>& letters) const;
  std::string cannot_classify_, cannot_generate_;  ///< why the format does not allow it ("" = it does)
  std::map<std::string, PromptState> prompt_cache_;  ///< one per class at most
  std::shared_ptr<const TokenCodec> codec_;
  SequenceFormat format_;
  GPT model_{nullptr};
  CharTokenizer tokenizer_;
  std::shared_ptr<const Grader> grader_;
  std::string name_;
  int64_t codec_field_ = -1, label_field_ = -1;
  LabelCombinations classes_;
  std::vector<std::string> words_;
  std::vector<int64_t> item_shape_;
};

}  // namespace vlm
