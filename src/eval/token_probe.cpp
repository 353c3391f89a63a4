#include "vlm/eval/token_probe.h"

#include "vlm/text/sequence_format.h"

#include <algorithm>
#include <fstream>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"
#include "vlm/models/vector_quantizer.h"

namespace vlm {

namespace {
void check_codes(const at::Tensor& codes, const char* what) {
  VLM_CHECK(codes.dim() == 2 && codes.scalar_type() == at::kLong, what, ": expected codes (N, L) int64, got ",
            codes.sizes(), " ", codes.scalar_type());
}

// (N, L) codes -> (N, L*K) one-hot rows, so that a dot product counts the positions where two strings agree.
at::Tensor one_hot_rows(const at::Tensor& codes, int64_t num_codes) {
  return at::one_hot(codes, num_codes).to(at::kFloat).flatten(1);  // (N, L*K)
}
}  // namespace

at::Tensor hamming_distances(const at::Tensor& a, const at::Tensor& b, int64_t num_codes) {
  check_codes(a, "hamming_distances");
  check_codes(b, "hamming_distances");
  VLM_CHECK(a.size(1) == b.size(1), "hamming_distances: strings of different lengths ", a.size(1), " and ", b.size(1));
  auto matches = at::mm(one_hot_rows(a, num_codes), one_hot_rows(b, num_codes).t());  // (Na, Nb), exact integers
  return (a.size(1) - matches).round().to(at::kLong);                                 // (Na, Nb)
}

ProbeResult knn_probe(const at::Tensor& query_codes, const at::Tensor& query_labels, const at::Tensor& ref_codes,
                      const at::Tensor& ref_labels, int64_t k, int64_t chunk) {
  check_codes(query_codes, "knn_probe queries");
  check_codes(ref_codes, "knn_probe references");
  const int64_t nq = query_codes.size(0), nr = ref_codes.size(0);
  VLM_CHECK(query_labels.numel() == nq && ref_labels.numel() == nr, "knn_probe: ", nq, " queries with ",
            query_labels.numel(), " labels, ", nr, " references with ", ref_labels.numel(), " labels");
  VLM_CHECK(k > 0 && k <= nr, "knn_probe: k must be in [1, ", nr, "] (the reference count), got ", k);
  VLM_CHECK(chunk > 0, "knn_probe: chunk must be positive, got ", chunk);
  auto q = query_codes.cpu(), r = ref_codes.cpu();
  auto ql = query_labels.cpu().to(at::kLong), rl = ref_labels.cpu().to(at::kLong);
  const int64_t num_codes = std::max(q.max().item<int64_t>(), r.max().item<int64_t>()) + 1;
  const int64_t num_labels = std::max(ql.max().item<int64_t>(), rl.max().item<int64_t>()) + 1;
  VLM_CHECK(q.min().item<int64_t>() >= 0 && r.min().item<int64_t>() >= 0, "knn_probe: negative codes");

  auto ref_hot_t = one_hot_rows(r, num_codes).t().contiguous();  // (L*K, Nr)
  auto ref_index = at::arange(nr, at::kLong);                     // (Nr)
  std::vector<at::Tensor> predictions;
  for (int64_t i = 0; i < nq; i += chunk) {
    auto qc = q.slice(0, i, i + chunk);                                                  // (C, L)
    auto dist = (q.size(1) - at::mm(one_hot_rows(qc, num_codes), ref_hot_t)).round();    // (C, Nr)
    // Distance first, reference index second: one integer key makes the order total and deterministic.
    auto key = dist.to(at::kLong) * nr + ref_index;                                       // (C, Nr)
    auto nearest = std::get<1>(key.topk(k, /*dim=*/1, /*largest=*/false, /*sorted=*/true));  // (C, k)
    auto votes = at::one_hot(rl.index_select(0, nearest.flatten()).view({-1, k}), num_labels).sum(1);  // (C, labels)
    predictions.push_back(votes.argmax(1));  // first maximum: vote ties go to the smaller label
  }
  ProbeResult out;
  out.k = k;
  out.queries = nq;
  out.predictions = at::cat(predictions);
  out.accuracy = out.predictions.eq(ql.flatten()).to(at::kDouble).mean().item<double>();
  return out;
}

namespace {
// Trains a classifier of one-hot features (N, F) -> labels on the references with Adam and returns its accuracy on
// the queries; hidden = 0 is logistic regression, otherwise one ReLU layer of that width.
double trained_probe_accuracy(const at::Tensor& ref_x, const at::Tensor& ref_y, const at::Tensor& qry_x,
                              const at::Tensor& qry_y, int64_t classes, int64_t hidden, const ProbeLadderOptions& o) {
  const int64_t F = ref_x.size(1), n = ref_x.size(0), batch = 256;
  auto init = [](int64_t in, int64_t out) {
    auto w = (at::rand({in, out}) * 2 - 1) / std::sqrt(static_cast<double>(in));  // (in, out), LeCun-uniform scale
    return w.set_requires_grad(true);
  };
  std::vector<at::Tensor> params;
  if (hidden > 0) params = {init(F, hidden), at::zeros({hidden}).set_requires_grad(true), init(hidden, classes),
                            at::zeros({classes}).set_requires_grad(true)};
  else params = {init(F, classes), at::zeros({classes}).set_requires_grad(true)};
  auto forward = [&](const at::Tensor& x) {
    if (hidden == 0) return at::addmm(params[1], x, params[0]);                      // (B, C)
    return at::addmm(params[3], at::relu(at::addmm(params[1], x, params[0])), params[2]);  // (B, C)
  };
  torch::optim::Adam opt(params, torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  for (int64_t e = 0; e < o.epochs; ++e) {
    auto order = at::randperm(n, at::kLong);
    for (int64_t i = 0; i < n; i += batch) {
      auto idx = order.slice(0, i, i + batch);
      auto loss = at::cross_entropy_loss(forward(ref_x.index_select(0, idx)), ref_y.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  at::NoGradGuard no_grad;
  return forward(qry_x).argmax(1).eq(qry_y).to(at::kDouble).mean().item<double>();
}
}  // namespace

ProbeLadder probe_ladder(const at::Tensor& ref_codes, const at::Tensor& ref_labels, const at::Tensor& query_codes,
                         const at::Tensor& query_labels, int64_t num_codes, const ProbeLadderOptions& o) {
  check_codes(ref_codes, "probe_ladder references");
  check_codes(query_codes, "probe_ladder queries");
  VLM_CHECK(ref_codes.size(1) == query_codes.size(1), "probe_ladder: strings of different lengths ",
            ref_codes.size(1), " and ", query_codes.size(1));
  VLM_CHECK(o.epochs > 0 && o.hidden > 0 && o.lr > 0, "probe_ladder: epochs, hidden and lr must be positive");
  auto r = ref_codes.cpu(), q = query_codes.cpu();
  auto rl = ref_labels.cpu().to(at::kLong).flatten(), ql = query_labels.cpu().to(at::kLong).flatten();
  VLM_CHECK(rl.numel() == r.size(0) && ql.numel() == q.size(0), "probe_ladder: one label per string expected");
  VLM_CHECK(r.min().item<int64_t>() >= 0 && q.min().item<int64_t>() >= 0 &&
                std::max(r.max().item<int64_t>(), q.max().item<int64_t>()) < num_codes,
            "probe_ladder: codes outside [0, ", num_codes, ")");
  const int64_t L = r.size(1);
  const int64_t C = std::max(rl.max().item<int64_t>(), ql.max().item<int64_t>()) + 1;
  ProbeLadder out;
  out.knn = knn_probe(q, ql, r, rl, o.k).accuracy;
  for (int64_t p = 0; p < L; ++p) {
    // counts (K, C) of (letter, class) in the references: the majority class of each letter is the best guess
    auto ref_joint = at::zeros({num_codes * C}, at::kLong).index_add_(0, r.select(1, p) * C + rl,
                                                                       at::ones({r.size(0)}, at::kLong)).view({num_codes, C});
    auto guess = ref_joint.argmax(1);  // (K), ties to the smaller class
    out.position_accuracy.push_back(guess.index_select(0, q.select(1, p)).eq(ql).to(at::kDouble).mean().item<double>());
    auto joint = at::zeros({num_codes * C}, at::kDouble).index_add_(0, q.select(1, p) * C + ql,
                                                                    at::ones({q.size(0)}, at::kDouble)).view({num_codes, C});
    joint = joint / joint.sum();
    auto pk = joint.sum(1, true), pc = joint.sum(0, true);
    auto terms = at::where(joint > 0, joint * (joint.log() - pk.log() - pc.log()), at::zeros_like(joint));
    out.position_information.push_back(terms.sum().item<double>() / std::log(2.0));
    out.position_perplexity.push_back(perplexity_of_counts(code_histogram(q.select(1, p), num_codes)));
  }
  auto rng_state = cpu_rng_state();  // the probe must not move the caller's random stream
  at::manual_seed(o.seed);
  auto rx = one_hot_rows(r, num_codes), qx = one_hot_rows(q, num_codes);  // (N, L*K)
  out.linear = trained_probe_accuracy(rx, rl, qx, ql, C, 0, o);
  out.mlp = trained_probe_accuracy(rx, rl, qx, ql, C, o.hidden, o);
  set_cpu_rng_state(rng_state);
  return out;
}

double distinct_fraction(const at::Tensor& codes) {
  check_codes(codes, "distinct_fraction");
  if (codes.size(0) == 0) return 0.0;
  auto unique = std::get<0>(at::unique_dim(codes.cpu(), 0));
  return static_cast<double>(unique.size(0)) / codes.size(0);
}

TokenStats token_stats(const at::Tensor& codes, int64_t num_codes) {
  check_codes(codes, "token_stats");
  TokenStats s;
  s.histogram = code_histogram(codes, num_codes);
  s.perplexity = perplexity_of_counts(s.histogram);
  s.codes_used = s.histogram.gt(0).sum().item<int64_t>();
  s.distinct_fraction = distinct_fraction(codes);
  return s;
}

TokenTextSet read_token_text_file(const std::string& path, const SequenceFormat& format) {
  std::ifstream in(path);
  VLM_CHECK(in, "cannot open token text file ", path);
  const int64_t image = format.first_codec_field(), label = format.first_label_field();
  VLM_CHECK(image >= 0 && label >= 0, "read_token_text_file: the format needs a codec and a label field");
  TokenTextSet set;
  std::vector<int64_t> labels;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;  // unlike SequenceFormat::read, blank lines are tolerated here
    Record r = format.parse(line, path, line_no);
    set.images.push_back(std::move(r.values[image]));
    labels.push_back(format.field(label).word_index(r.values[label]));
  }
  set.labels = at::tensor(labels, at::kLong);
  return set;
}

}  // namespace vlm
