#include "vlm/data/token_dataset.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

TokenDataset TokenDataset::build(const SequenceFormat& format, std::vector<Record> records) {
  VLM_CHECK(!records.empty(), "no sequences to train or evaluate on");
  TokenDataset d;
  d.format = format;
  d.tokenizer = CharTokenizer::for_format(format);
  const int64_t N = static_cast<int64_t>(records.size()), T = format.num_templates(), L = format.block_size();
  d.tokens = at::empty({N, T, L}, at::kLong);
  d.once_template = at::empty({N}, at::kLong);
  auto* tp = d.tokens.data_ptr<int64_t>();
  auto* op = d.once_template.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    Record r = records[i];
    op[i] = r.tmpl;
    for (int64_t t = 0; t < T; ++t) {
      r.tmpl = t;
      const std::string line = format.format(r);
      d.max_text_length =
          std::max<int64_t>(d.max_text_length, static_cast<int64_t>(line.find_last_not_of(format.pad()) + 1));
      auto ids = d.tokenizer.encode(line);
      std::copy(ids.begin(), ids.end(), tp + (i * T + t) * L);
    }
  }
  d.records = std::move(records);
  return d;
}

std::vector<int64_t> TokenDataset::labels(int64_t field) const {
  if (field < 0) field = format.first_label_field();
  VLM_CHECK(field >= 0 && format.field(field).is_label(), "TokenDataset::labels: the format has no label field");
  const FieldSpec& spec = format.field(field);
  std::vector<int64_t> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(spec.word_index(r.values[field]));
  return out;
}

std::vector<Record> TokenDataset::head(int64_t n) const {
  const size_t k = n < 0 ? records.size() : std::min(records.size(), static_cast<size_t>(n));
  return std::vector<Record>(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(k));
}

}  // namespace vlm
