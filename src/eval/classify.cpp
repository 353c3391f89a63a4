#include "vlm/eval/classify.h"

#include <chrono>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"
#include "vlm/sample/shared_prefix.h"
#include "vlm/io/svg_plot.h"
#include "vlm/text/sequences.h"
#include "vlm/models/gpt_checkpoint.h"

namespace vlm {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

ExactClassification classify_exact(GPT& model, const CharTokenizer& tokenizer, const std::vector<std::string>& images,
                                   const at::Tensor& labels, int64_t batch_size) {
  VLM_CHECK(batch_size > 0, "classify_exact: batch_size must be positive, got ", batch_size);
  const int64_t N = static_cast<int64_t>(images.size());
  VLM_CHECK(!labels.defined() || (labels.dim() == 1 && labels.size(0) == N), "classify_exact: ", N,
            " images but labels of shape ", labels.defined() ? labels.sizes() : at::IntArrayRef{});
  const auto t0 = Clock::now();
  ExactClassification out;
  out.predicted.assign(images.size(), -1);
  out.log_probs = at::empty({N, 10}, at::kFloat);

  const bool was_training = model->is_training();
  model->eval();
  {
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
        for (size_t r = start; r < end; ++r)
          std::copy(encoded[members[r]].begin(), encoded[members[r]].end(), p + (r - start) * T);
        // Every prompt starts with the same characters ("image:"): they run once, shared by the batch.
        GPTImpl::KVCache cache;
        auto logits = forward_last_shared_prefix(model, idx.to(device), cache);  // (B, V) at the last position
        auto lp = at::log_softmax(logits.to(at::kFloat), -1).index_select(1, digit_index).cpu();  // (B, 10)
        auto pred = lp.argmax(1);                                                                 // (B)
        auto rows = at::tensor(std::vector<int64_t>(members.begin() + start, members.begin() + end), at::kLong);
        out.log_probs.index_copy_(0, rows, lp);
        for (int64_t r = 0; r < B; ++r) out.predicted[members[start + r]] = pred[r].item<int64_t>();
      }
    }
  }
  if (was_training) model->train();
  out.probs = at::softmax(out.log_probs, 1);  // renormalised over the ten digits
  if (labels.defined() && N > 0) {
    out.has_labels = true;
    out.metrics = classification_metrics(at::tensor(out.predicted, at::kLong), labels.to(at::kCPU), out.probs);
  }
  out.seconds = since(t0);
  return out;
}

nlohmann::json ExactClassification::to_json() const {
  nlohmann::json j = has_labels ? metrics.to_json() : nlohmann::json{{"n", predicted.size()}};
  j["seconds"] = seconds;
  return j;
}

double classification_accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels) {
  VLM_CHECK(predicted.size() == labels.size() && !labels.empty(), "classification_accuracy: ", predicted.size(),
            " predictions for ", labels.size(), " labels");
  int64_t hit = 0;
  for (size_t i = 0; i < labels.size(); ++i) hit += predicted[i] == labels[i];
  return static_cast<double>(hit) / static_cast<double>(labels.size());
}

void write_confusion_svg(const std::string& path, const ClassificationMetrics& metrics, const std::string& title) {
  std::vector<std::string> names;
  for (int64_t d = 0; d < metrics.num_classes; ++d) names.push_back(std::to_string(d));
  std::vector<std::vector<double>> m;
  for (const auto& row : metrics.confusion) m.emplace_back(row.begin(), row.end());
  plot::save_svg(path, plot::heatmap(m, names, names, {title, "predicted", "true", 560, 560}));
}

int64_t parse_digit_answer(const std::string& completion) {
  auto dot = completion.find('.');
  if (dot != 1) return -1;
  char c = completion[0];
  return (c >= '0' && c <= '9') ? c - '0' : -1;
}

SampledClassification classify_sampled(GPT& model, const CharTokenizer& tokenizer,
                                       const std::vector<std::string>& images, const at::Tensor& labels,
                                       const SamplerOptions& options) {
  auto t0 = Clock::now();
  std::vector<std::string> prompts;
  prompts.reserve(images.size());
  for (const auto& s : images) prompts.push_back(classification_prompt(s));
  Sampler sampler(model, tokenizer, options);
  auto completions = sampler.complete(prompts);
  SampledClassification out;
  for (const auto& c : completions) out.predicted.push_back(parse_digit_answer(c));
  out.seconds = since(t0);
  out.metrics = classification_metrics(at::tensor(out.predicted, at::kLong), labels.to(at::kCPU));
  return out;
}

nlohmann::json SampledClassification::to_json() const {
  auto j = metrics.to_json();
  j["seconds"] = seconds;
  return j;
}

CheckpointAccuracy accuracy_over_checkpoints(const std::vector<std::string>& checkpoints,
                                             const std::vector<std::string>& images, const at::Tensor& labels,
                                             int64_t batch_size, c10::Device device) {
  CheckpointAccuracy out;
  for (const auto& path : checkpoints) {
    auto loaded = load_gpt_checkpoint(path, device);
    auto r = classify_exact(loaded.model, loaded.tokenizer, images, labels, batch_size);
    out.rows.push_back({path, loaded.meta.value("iter", int64_t(0)), r.metrics.accuracy, r.metrics.std_error});
  }
  return out;
}

nlohmann::json CheckpointAccuracy::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const auto& r : rows)
    rows_json.push_back(
        {{"checkpoint", r.checkpoint}, {"iter", r.iter}, {"accuracy", r.accuracy}, {"std_error", r.std_error}});
  return rows_json;
}

void write_accuracy_over_checkpoints_svg(const std::string& path, const CheckpointAccuracy& accuracy) {
  plot::Series s{"exact classification", {}, {}, {}};
  for (const auto& r : accuracy.rows)
    s.x.push_back(static_cast<double>(r.iter)), s.y.push_back(r.accuracy), s.yerr.push_back(r.std_error);
  plot::save_svg(path, plot::line_chart({s}, {"Classification accuracy over training (+- 1 standard error)",
                                              "iteration", "accuracy"}));
}

}  // namespace vlm
