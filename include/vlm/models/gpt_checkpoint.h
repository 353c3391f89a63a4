#pragma once
// The GPT's checkpoint (kind "gpt", docs/checkpoints.md): what a model needs to be rebuilt and used anywhere, the
// trainer's checkpoints and an imported nanoGPT model alike.
//   meta: {"gpt": GPTOptions, "tokenizer": CharTokenizer, "format": SequenceFormat, "iter": steps done, ...}
//   module "model"   (a checkpoint without "format" predates it and is read as the seed's format)
// The trainer adds its optimizer, RNG states and its own options (train/gpt_trainer.h).
//
//   LoadedGPT g = load_gpt_checkpoint("runs/mnist/gpt/best.pt", device);   // eval mode, on `device`
#include <cstdint>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/models/gpt.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"

namespace vlm {

inline constexpr const char* kGPTCheckpointKind = "gpt";
inline constexpr int64_t kGPTCheckpointVersion = 1;

/// The options and tokenizer stored in a "gpt" checkpoint, read without its tensors (kind and version checked).
struct GPTCheckpointHeader {
  GPTOptions options;
  CharTokenizer tokenizer{"#"};
  SequenceFormat format = SequenceFormat::seed();
  nlohmann::json meta;
};
GPTCheckpointHeader read_gpt_checkpoint_header(const std::string& path);

/// A "gpt" checkpoint: the model rebuilt from its stored options with its weights, in eval mode on `device`.
struct LoadedGPT {
  GPT model{nullptr};
  CharTokenizer tokenizer{"#"};
  SequenceFormat format = SequenceFormat::seed();  ///< the lines it was trained on: prompts, classes, constraints
  nlohmann::json meta;
};
LoadedGPT load_gpt_checkpoint(const std::string& path, c10::Device device = c10::kCPU);

/// The meta every "gpt" checkpoint carries, to which a writer adds its own keys.
nlohmann::json gpt_checkpoint_meta(const GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                   int64_t iter);

}  // namespace vlm
