#pragma once
// Exact classification with the GPT: for each image-letter string, one forward pass on "image:ABCDEFGH, number:" and
// the argmax of the next-token logits restricted to the ten digit tokens (no sampling, no generation loop).
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "vlm/models/gpt.h"
#include "vlm/text/char_tokenizer.h"

namespace vlm {

struct Classification {
  std::vector<int64_t> predicted;  ///< the digit per image
  at::Tensor log_probs;            ///< (N, 10) float: log p(digit | prompt) under the full next-token softmax
};

/// Classifies images in batches of `batch_size` prompts (prompts of equal length share a batch). The model is put in
/// eval mode for the call and its previous mode restored.
Classification classify_images(GPT& model, const CharTokenizer& tokenizer, const std::vector<std::string>& images,
                               int64_t batch_size = 512);

/// Fraction of predictions equal to labels.
double classification_accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels);

}  // namespace vlm
