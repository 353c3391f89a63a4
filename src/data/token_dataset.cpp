#include "vlm/data/token_dataset.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

TokenDataset TokenDataset::build(const std::vector<Sequence>& seqs, CharTokenizer tok, int64_t block_size) {
  VLM_CHECK(!seqs.empty(), "no sequences to train or evaluate on");
  TokenDataset d;
  const int64_t N = static_cast<int64_t>(seqs.size()), L = block_size;
  d.tokens = at::empty({N, 2, L}, at::kLong);
  d.once_template = at::empty({N}, at::kLong);
  auto* tp = d.tokens.data_ptr<int64_t>();
  auto* op = d.once_template.data_ptr<int64_t>();
  d.images.reserve(seqs.size());
  d.labels.reserve(seqs.size());
  for (int64_t i = 0; i < N; ++i) {
    Sequence s = seqs[i];
    op[i] = static_cast<int64_t>(s.tmpl);
    for (int64_t t = 0; t < 2; ++t) {
      s.tmpl = static_cast<Template>(t);
      d.max_text_length = std::max<int64_t>(d.max_text_length, format_sequence_unpadded(s).size());
      auto ids = tok.encode(format_sequence(s, L));
      std::copy(ids.begin(), ids.end(), tp + (i * 2 + t) * L);
    }
    d.images.push_back(s.image);
    d.labels.push_back(s.label);
  }
  d.tokenizer = std::move(tok);
  return d;
}

}  // namespace vlm
