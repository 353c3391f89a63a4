#include "vlm/eval/tsne.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "vlm/core/check.h"

namespace vlm {
namespace {

at::Tensor squared_distances(const at::Tensor& x) {  // (N, F) -> (N, N), exact zeros on the diagonal
  auto sq = x.pow(2).sum(1, /*keepdim=*/true);                  // (N, 1)
  auto d = (sq + sq.t() - 2 * at::mm(x, x.t())).clamp_min(0);  // (N, N)
  return d.fill_diagonal_(0);
}

// Row-wise conditional affinities exp(-beta_i d_ij), normalised, with the diagonal excluded.
at::Tensor conditional(const at::Tensor& d, const at::Tensor& beta, const at::Tensor& off_diagonal) {
  auto logits = -d * beta.unsqueeze(1);                                        // (N, N)
  logits = logits.masked_fill(off_diagonal.logical_not(), -INFINITY);
  return at::softmax(logits, 1);
}

}  // namespace

at::Tensor row_perplexity(const at::Tensor& p) {
  auto plogp = at::where(p > 0, p * at::log2(p), at::zeros_like(p));  // (N, N)
  return at::exp2(-plogp.sum(1));                                     // (N)
}

at::Tensor tsne_conditional(const at::Tensor& x_in, double perplexity) {
  const int64_t n = x_in.size(0);
  VLM_CHECK(x_in.dim() == 2 && n >= 2, "t-SNE: expected points (N, F) with N >= 2, got ", x_in.sizes());
  VLM_CHECK(perplexity > 1 && perplexity < n - 1, "t-SNE: perplexity must lie in (1, N - 1) = (1, ", n - 1, "), got ",
            perplexity);
  auto x = x_in.to(at::kCPU, at::kDouble);
  auto d = squared_distances(x);
  // Distances scaled by their mean keep the bisection's bracket the same for any input scale.
  d = d / d.sum().div(n * (n - 1)).clamp_min(1e-300);
  auto off_diagonal = at::ones({n, n}, at::kBool).fill_diagonal_(false);
  // Bisection on each row's log precision, all rows at once.
  auto lo = at::full({n}, -30.0, at::kDouble), hi = at::full({n}, 30.0, at::kDouble);
  const double target = std::log2(perplexity);
  at::Tensor p;
  for (int it = 0; it < 200; ++it) {
    auto log_beta = (lo + hi) / 2;
    p = conditional(d, log_beta.exp(), off_diagonal);
    auto h = at::log2(row_perplexity(p));  // (N) entropy in bits
    auto too_flat = h > target;            // entropy too high: raise the precision
    lo = at::where(too_flat, log_beta, lo);
    hi = at::where(too_flat, hi, log_beta);
    if ((h - target).abs().max().item<double>() < 1e-6) break;
  }
  return p;
}

at::Tensor tsne_affinities(const at::Tensor& x, double perplexity) {
  auto p = tsne_conditional(x, perplexity);
  const double n = static_cast<double>(p.size(0));
  return ((p + p.t()) / (2.0 * n)).to(at::kFloat);
}

at::Tensor tsne_2d(const at::Tensor& x, const TsneOptions& o) {
  VLM_CHECK(o.iterations() > 0 && o.early_exaggeration() >= 1, "t-SNE: iterations must be positive and ",
            "early_exaggeration >= 1");
  const int64_t n = x.size(0);
  auto P = tsne_affinities(x, o.perplexity()).clamp_min(1e-12);  // (N, N)
  const double lr = o.learning_rate() > 0 ? o.learning_rate() : std::max(n / 12.0, 50.0);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed());
  auto y = at::randn({n, 2}, gen, at::kFloat) * 1e-4;  // (N, 2)
  auto update = at::zeros_like(y), gains = at::ones_like(y);
  for (int64_t it = 0; it < o.iterations(); ++it) {
    const bool early = it < o.exaggeration_iters();
    const double exaggeration = early ? o.early_exaggeration() : 1.0, momentum = early ? 0.5 : 0.8;
    auto num = 1.0 / (1.0 + squared_distances(y));         // (N, N) Student-t kernel
    num.fill_diagonal_(0);
    auto Q = (num / num.sum()).clamp_min(1e-12);
    auto W = (exaggeration * P - Q) * num;                  // (N, N)
    auto grad = 4.0 * (W.sum(1, true) * y - at::mm(W, y));  // (N, 2): 4 sum_j W_ij (y_i - y_j)
    // Delta-bar-delta gains, as in the reference implementation.
    auto same_sign = (grad > 0) == (update > 0);
    gains = at::where(same_sign, gains * 0.8, gains + 0.2).clamp_min(0.01);
    update = momentum * update - lr * gains * grad;
    y = y + update;
    y = y - y.mean(0, true);
  }
  return y;
}

}  // namespace vlm
