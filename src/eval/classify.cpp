#include "vlm/eval/classify.h"

#include <map>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"
#include "vlm/sample/shared_prefix.h"
#include "vlm/text/sequences.h"

namespace vlm {

Classification classify_images(GPT& model, const CharTokenizer& tokenizer, const std::vector<std::string>& images,
                               int64_t batch_size) {
  VLM_CHECK(batch_size > 0, "classify_images: batch_size must be positive, got ", batch_size);
  const int64_t N = static_cast<int64_t>(images.size());
  Classification out;
  out.predicted.assign(images.size(), -1);
  out.log_probs = at::empty({N, 10}, at::kFloat);
  if (N == 0) return out;

  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto device = model->wte->weight.device();
  const auto digits = tokenizer.digit_ids();
  auto digit_index = at::tensor(std::vector<int64_t>(digits.begin(), digits.end()), at::kLong).to(device);  // (10)

  // Absolute position embeddings: only prompts of the same length can share a batch.
  std::map<size_t, std::vector<int64_t>> by_length;
  std::vector<std::vector<int64_t>> encoded(images.size());
  for (int64_t i = 0; i < N; ++i) {
    encoded[i] = tokenizer.encode(classification_prompt(images[i]));
    by_length[encoded[i].size()].push_back(i);
  }
  for (const auto& [T, members] : by_length) {
    for (size_t start = 0; start < members.size(); start += static_cast<size_t>(batch_size)) {
      const size_t end = std::min(members.size(), start + static_cast<size_t>(batch_size));
      const int64_t B = static_cast<int64_t>(end - start);
      auto idx = at::empty({B, static_cast<int64_t>(T)}, at::kLong);  // (B, T)
      auto* p = idx.data_ptr<int64_t>();
      for (size_t r = start; r < end; ++r) std::copy(encoded[members[r]].begin(), encoded[members[r]].end(), p + (r - start) * T);
      // Every prompt starts with the same characters ("image:"): they run once, shared by the batch.
      GPTImpl::KVCache cache;
      auto logits = forward_last_shared_prefix(model, idx.to(device), cache);  // (B, V) at the last position
      auto lp = at::log_softmax(logits.to(at::kFloat), -1).index_select(1, digit_index).cpu();  // (B, 10)
      auto pred = lp.argmax(1);                                                            // (B)
      auto rows = at::tensor(std::vector<int64_t>(members.begin() + start, members.begin() + end), at::kLong);
      out.log_probs.index_copy_(0, rows, lp);
      for (int64_t r = 0; r < B; ++r) out.predicted[members[start + r]] = pred[r].item<int64_t>();
    }
  }
  if (was_training) model->train();
  return out;
}

double classification_accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels) {
  VLM_CHECK(predicted.size() == labels.size() && !labels.empty(), "classification_accuracy: ", predicted.size(),
            " predictions for ", labels.size(), " labels");
  int64_t hit = 0;
  for (size_t i = 0; i < labels.size(); ++i) hit += predicted[i] == labels[i];
  return static_cast<double>(hit) / static_cast<double>(labels.size());
}

}  // namespace vlm
