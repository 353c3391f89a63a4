#pragma once
// Records of a sequence format as token tensors, tokenized once and shared by every consumer (the GPT trainer's
// batches and evaluations, the pipeline's snapshots): each record in every template of the format, padded to the
// block size.
//
//   SequenceFormat format = SequenceFormat::seed();
//   TokenDataset train = TokenDataset::build(format, format.read("train.txt"));
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"

namespace vlm {

struct TokenDataset {
  SequenceFormat format = SequenceFormat::seed();
  CharTokenizer tokenizer{"#"};
  at::Tensor tokens;           ///< (N, T, L) int64: row [i, t] = record i in template t, padded to L
  at::Tensor once_template;    ///< (N) int64: the stored (file) template of each record
  std::vector<Record> records;
  int64_t max_text_length = 0;  ///< longest unpadded line
  int64_t size() const { return tokens.size(0); }
  int64_t num_templates() const { return tokens.size(1); }
  int64_t block_size() const { return tokens.size(2); }
  /// The class index of every record in label field `field` (-1: the format's first label field).
  std::vector<int64_t> labels(int64_t field = -1) const;
  /// The first `n` records (-1: all).
  std::vector<Record> head(int64_t n) const;
  /// Tokenizes `records` with the format's vocabulary, padded to the format's block size; throws naming the record
  /// that does not fit or holds a value the format does not allow.
  static TokenDataset build(const SequenceFormat& format, std::vector<Record> records);
};

}  // namespace vlm
