#pragma once
// The two halves of one decoding step that the Sampler and the Engine share: what a row may draw next when it is held
// to a sequence format (ConstrainedRows: a FormatCursor per row), and the draw itself (sample_next: greedy, or
// temperature, top-k and a multinomial draw from a given generator).
//
//   ConstrainedRows rows(format, tokenizer, prompts);            // each prompt must start a line of the format
//   auto next = sample_next(rows.mask(logits), 0.8, 200, false, generator);   // (B) int64
//   rows.push(next);                                             // a row that drew the pad, or ended its line, is done
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "vlm/text/char_tokenizer.h"
#include "vlm/text/format_automaton.h"
#include "vlm/text/sequence_format.h"

namespace vlm {

class ConstrainedRows {
 public:
  /// One row per prompt; `format` and `tokenizer` must outlive the rows, and their characters must agree (checked).
  /// Throws naming the column where a prompt leaves the format.
  ConstrainedRows(const SequenceFormat& format, const CharTokenizer& tokenizer, const std::vector<std::string>& prompts);

  /// logits (B, V) float on the CPU -> the same plus -inf wherever the row's format forbids the character; a finished
  /// row may only draw the pad.
  at::Tensor mask(const at::Tensor& logits) const;
  /// Feeds each unfinished row its drawn token (one the mask allowed). A row that drew the pad, or whose line is now
  /// complete with nothing allowed after it (the seed's '.'), is finished.
  void push(const at::Tensor& next);

  int64_t size() const { return static_cast<int64_t>(cursors_.size()); }
  bool finished(int64_t row) const { return finished_[row] != 0; }
  bool all_finished() const;

 private:
  const SequenceFormat* format_;
  const CharTokenizer* tokenizer_;
  std::vector<FormatCursor> cursors_;
  std::vector<std::string> allowed_;  // per row, computed once per step
  std::vector<char> finished_;
};

/// logits (B, V) float on the CPU -> (B) int64 tokens: the argmax when `greedy`, else a draw from
/// softmax(logits / temperature) cut to the top_k most likely (0 = no cut; clamped to V) with `generator`.
at::Tensor sample_next(at::Tensor logits, double temperature, int64_t top_k, bool greedy, at::Generator& generator);

}  // namespace vlm
