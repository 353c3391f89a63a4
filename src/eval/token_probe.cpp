#include "vlm/eval/token_probe.h"

#include "vlm/text/sequence_format.h"

#include <algorithm>
#include <fstream>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
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
