#pragma once
// Text-image sequences as token tensors, tokenized once and shared by every consumer (the GPT trainer's batches and
// evaluations, the pipeline's snapshots): each sequence in both templates, padded to the block size.
//
//   TokenDataset train = TokenDataset::build(read_sequences("train.txt"), CharTokenizer::for_sequences(alphabet), 32);
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequences.h"

namespace vlm {

struct TokenDataset {
  CharTokenizer tokenizer{"#"};
  at::Tensor tokens;           ///< (N, 2, L) int64: row [i, t] = sequence i in template t, padded to L
  at::Tensor once_template;    ///< (N) int64: the stored (file) template of each sequence
  std::vector<std::string> images;
  std::vector<int64_t> labels;
  int64_t max_text_length = 0;  ///< longest unpadded sequence
  int64_t size() const { return tokens.size(0); }
  int64_t block_size() const { return tokens.size(2); }
  /// Throws naming the sequence that does not fit in block_size or holds a character outside the tokenizer.
  static TokenDataset build(const std::vector<Sequence>& sequences, CharTokenizer tokenizer, int64_t block_size);
};

}  // namespace vlm
