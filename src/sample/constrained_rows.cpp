#include "vlm/sample/constrained_rows.h"

#include <algorithm>
#include <limits>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

ConstrainedRows::ConstrainedRows(const SequenceFormat& format, const CharTokenizer& tokenizer,
                                 const std::vector<std::string>& prompts)
    : format_(&format), tokenizer_(&tokenizer), finished_(prompts.size(), 0) {
  VLM_CHECK(format.vocabulary() == tokenizer.chars(), "constrained decoding: the format's characters \"",
            format.vocabulary(), "\" are not the tokenizer's \"", tokenizer.chars(), "\"");
  cursors_.reserve(prompts.size());
  for (const auto& p : prompts) {
    cursors_.emplace_back(format);
    cursors_.back().push(p);  // throws naming the column where the prompt leaves the format
    allowed_.push_back(cursors_.back().allowed());
  }
}

at::Tensor ConstrainedRows::mask(const at::Tensor& logits) const {
  VLM_CHECK(logits.dim() == 2 && logits.size(0) == size() && logits.size(1) == tokenizer_->vocab_size(),
            "constrained decoding: expected logits (", size(), ", ", tokenizer_->vocab_size(), "), got ",
            logits.sizes());
  auto mask = at::full(logits.sizes(), -std::numeric_limits<float>::infinity(), at::kFloat);  // (B, V)
  auto m = mask.accessor<float, 2>();
  const std::string pad(1, format_->pad());
  for (int64_t b = 0; b < size(); ++b)
    for (char c : finished_[b] ? pad : allowed_[b]) m[b][tokenizer_->id(c)] = 0;
  return logits + mask;
}

void ConstrainedRows::push(const at::Tensor& next) {
  auto na = next.accessor<int64_t, 1>();
  const int64_t pad_id = tokenizer_->pad_id();
  const std::string pad(1, format_->pad());
  for (int64_t b = 0; b < size(); ++b) {
    if (finished_[b]) continue;
    if (na[b] == pad_id) {
      finished_[b] = 1;
      continue;
    }
    cursors_[b].try_push(tokenizer_->character(na[b]));  // allowed by the mask
    allowed_[b] = cursors_[b].allowed();
    if (cursors_[b].complete() && allowed_[b] == pad) finished_[b] = 1;
  }
}

bool ConstrainedRows::all_finished() const {
  return std::all_of(finished_.begin(), finished_.end(), [](char f) { return f != 0; });
}

at::Tensor sample_next(at::Tensor logits, double temperature, int64_t top_k, bool greedy, at::Generator& generator) {
  if (greedy) return logits.argmax(-1);
  logits = logits / temperature;
  const int64_t k = std::min<int64_t>(top_k, logits.size(-1));
  if (k > 0 && k < logits.size(-1)) {
    auto kth = std::get<0>(logits.topk(k, -1)).narrow(-1, k - 1, 1);  // (B, 1) the k-th largest
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  return at::multinomial(at::softmax(logits, -1), 1, /*replacement=*/false, generator).squeeze(-1);
}

}  // namespace vlm
