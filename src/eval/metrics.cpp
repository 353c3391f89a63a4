#include "vlm/eval/metrics.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

double standard_error(double p, int64_t n) {
  VLM_CHECK(n > 0 && p >= 0 && p <= 1, "standard_error: need 0 <= p <= 1 and n > 0, got p=", p, " n=", n);
  return std::sqrt(p * (1 - p) / static_cast<double>(n));
}

double expected_calibration_error(const at::Tensor& probs, const at::Tensor& labels, int64_t bins) {
  VLM_CHECK(probs.dim() == 2 && labels.dim() == 1 && probs.size(0) == labels.size(0) && bins > 0,
            "expected_calibration_error: probs (N, C) and labels (N) expected, got ", probs.sizes(), " and ",
            labels.sizes());
  const int64_t n = probs.size(0);
  if (n == 0) return 0;
  auto p = probs.to(at::kCPU, at::kDouble);
  auto [conf, pred] = p.max(1);
  auto correct = pred.eq(labels.to(at::kCPU)).to(at::kDouble);
  // Bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 goes to bin 0.
  auto bin = (conf * bins).ceil().sub(1).clamp(0, bins - 1).to(at::kLong);
  auto count = at::zeros({bins}, at::kDouble).index_add_(0, bin, at::ones_like(conf));
  auto conf_sum = at::zeros({bins}, at::kDouble).index_add_(0, bin, conf);
  auto acc_sum = at::zeros({bins}, at::kDouble).index_add_(0, bin, correct);
  return (acc_sum - conf_sum).abs().sum().item<double>() / n;
}

ClassificationMetrics classification_metrics(const at::Tensor& predicted, const at::Tensor& labels,
                                             std::vector<std::string> class_names, const at::Tensor& probs,
                                             int64_t top_confusions) {
  const auto C = static_cast<int64_t>(class_names.size());
  VLM_CHECK(C >= 2, "classification_metrics: need at least two classes, got ", C);
  VLM_CHECK(predicted.dim() == 1 && labels.dim() == 1 && predicted.size(0) == labels.size(0),
            "classification_metrics: predicted and labels must be (N), got ", predicted.sizes(), " and ",
            labels.sizes());
  ClassificationMetrics m;
  m.n = predicted.size(0);
  m.num_classes = C;
  m.class_names = std::move(class_names);
  VLM_CHECK(m.n > 0, "classification_metrics: no examples");
  auto pred = predicted.to(at::kCPU, at::kLong).contiguous(), lab = labels.to(at::kCPU, at::kLong).contiguous();
  m.confusion.assign(C, std::vector<int64_t>(C, 0));
  int64_t correct = 0;
  auto pa = pred.accessor<int64_t, 1>(), la = lab.accessor<int64_t, 1>();
  std::vector<int64_t> per_class(C, 0);
  for (int64_t i = 0; i < m.n; ++i) {
    VLM_CHECK(la[i] >= 0 && la[i] < C, "classification_metrics: label ", la[i], " outside 0..", C - 1);
    ++per_class[la[i]];
    if (pa[i] < 0 || pa[i] >= C) {
      ++m.invalid;
      continue;
    }
    ++m.confusion[la[i]][pa[i]];
    correct += pa[i] == la[i];
  }
  m.accuracy = static_cast<double>(correct) / m.n;
  m.std_error = standard_error(m.accuracy, m.n);
  for (int64_t t = 0; t < C; ++t)
    for (int64_t p = 0; p < C; ++p)
      if (t != p && m.confusion[t][p] > 0)
        m.top_confusions.push_back({t, p, m.confusion[t][p], double(m.confusion[t][p]) / per_class[t]});
  std::sort(m.top_confusions.begin(), m.top_confusions.end(),
            [](const ConfusionCell& a, const ConfusionCell& b) { return a.rate > b.rate; });
  if (static_cast<int64_t>(m.top_confusions.size()) > top_confusions) m.top_confusions.resize(top_confusions);
  if (probs.defined()) {
    VLM_CHECK(probs.dim() == 2 && probs.size(0) == m.n && probs.size(1) == C,
              "classification_metrics: probs must be (N, ", C, "), got ", probs.sizes());
    auto top2 = std::get<1>(probs.to(at::kCPU).topk(std::min<int64_t>(2, C), 1));  // (N, 2)
    m.top2_accuracy = top2.eq(lab.unsqueeze(1)).any(1).to(at::kDouble).mean().item<double>();
    m.ece = expected_calibration_error(probs, lab);
  }
  return m;
}

nlohmann::json ClassificationMetrics::to_json() const {
  nlohmann::json conf = nlohmann::json::array();
  for (const auto& c : top_confusions)
    conf.push_back({{"true", class_names[c.truth]}, {"predicted", class_names[c.predicted]}, {"count", c.count},
                    {"rate", c.rate}});
  nlohmann::json j = {{"n", n}, {"accuracy", accuracy}, {"std_error", std_error}, {"invalid", invalid},
                      {"classes", class_names}, {"confusion", confusion}, {"top_confusions", conf}};
  if (top2_accuracy >= 0) j["top2_accuracy"] = top2_accuracy;
  if (ece >= 0) j["ece"] = ece;
  return j;
}

}  // namespace vlm
