#include "vlm/models/vector_quantizer.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/nn/functional.h>

#include "vlm/core/check.h"
#include "vlm/dist/process_group.h"
#include "vlm/kernels/nearest_code.h"

namespace vlm {

at::Tensor nearest_code(const at::Tensor& x, const at::Tensor& codebook) {
  VLM_CHECK(x.dim() == 2 && codebook.dim() == 2 && x.size(1) == codebook.size(1),
            "nearest_code: expected x (N, D) and codebook (K, D), got ", x.sizes(), " and ", codebook.sizes());
  // The fused search (vlm/kernels/nearest_code.h) for float32 CPU: same argmin, no (N, K) matrix.
  if (kernels::nearest_code_supported(x, codebook)) return kernels::nearest_code(x, codebook);
  // |x|^2 is the same for every code, so it cannot change the argmin: |e|^2 - 2 x.e is enough.
  auto dist = at::addmm(codebook.pow(2).sum(1).unsqueeze(0), x, codebook.t(), /*beta=*/1, /*alpha=*/-2);  // (N, K)
  return dist.argmin(1);  // (N)
}

double distortion(const at::Tensor& x, const at::Tensor& codebook) {
  auto codes = nearest_code(x, codebook);
  return (x - codebook.index_select(0, codes)).pow(2).sum(1).mean().item<double>();
}

at::Tensor kmeans(const at::Tensor& x_in, int64_t k, int64_t iters) {
  VLM_CHECK(x_in.dim() == 2 && x_in.size(0) >= k && k > 0, "kmeans: need at least k=", k,
            " rows of shape (N, D), got ", x_in.sizes(), "; use a larger first batch or fewer codes");
  auto x = x_in.detach().to(at::kFloat).contiguous();  // (N, D)
  const int64_t n = x.size(0);
  // k-means++ seeding: each next centre drawn with probability proportional to its squared distance.
  std::vector<at::Tensor> centres{x[at::randint(n, {1}, at::kLong).item<int64_t>()]};
  auto d2 = (x - centres[0]).pow(2).sum(1);  // (N)
  for (int64_t c = 1; c < k; ++c) {
    int64_t pick = d2.sum().item<double>() > 0 ? at::multinomial(d2, 1).item<int64_t>()
                                               : at::randint(n, {1}, at::kLong).item<int64_t>();
    centres.push_back(x[pick]);
    d2 = at::minimum(d2, (x - x[pick]).pow(2).sum(1));
  }
  auto c = at::stack(centres);  // (k, D)
  for (int64_t it = 0; it < iters; ++it) {
    auto codes = nearest_code(x, c);                                                  // (N)
    auto sums = at::zeros_like(c).index_add_(0, codes, x);                            // (k, D)
    auto counts = at::bincount(codes, {}, k).to(at::kFloat);                          // (k)
    auto empty = counts == 0;
    auto next = sums / counts.clamp_min(1).unsqueeze(1);
    if (empty.any().item<bool>()) {
      // An empty cluster takes the point worst served by the current centres.
      auto err = (x - c.index_select(0, codes)).pow(2).sum(1);  // (N)
      auto empties = empty.nonzero().flatten();
      auto worst = std::get<1>(err.topk(std::min<int64_t>(empties.size(0), n)));  // (E)
      next.index_copy_(0, empties.slice(0, 0, worst.size(0)), x.index_select(0, worst));
    }
    if (at::equal(next, c)) break;
    c = next;
  }
  return c;
}

at::Tensor code_histogram(const at::Tensor& codes, int64_t num_embeddings) {
  auto flat = codes.flatten().to(at::kLong).cpu();
  if (flat.numel() > 0) {
    VLM_CHECK(flat.min().item<int64_t>() >= 0 && flat.max().item<int64_t>() < num_embeddings,
              "code_histogram: codes must lie in [0, ", num_embeddings, "), got [", flat.min().item<int64_t>(), ", ",
              flat.max().item<int64_t>(), "]");
  }
  return at::bincount(flat, {}, num_embeddings);
}

double perplexity_of_counts(const at::Tensor& counts) {
  auto p = counts.to(at::kDouble);
  double total = p.sum().item<double>();
  if (total <= 0) return 0.0;
  p = p / total;
  double entropy = -(p * at::log(p.clamp_min(1e-300))).sum().item<double>();
  return std::exp(entropy);
}

VectorQuantizerImpl::VectorQuantizerImpl(VectorQuantizerOptions options_) : options(std::move(options_)) { reset(); }

void VectorQuantizerImpl::reset() {
  const int64_t K = options.num_embeddings(), D = options.embedding_dim(), G = options.groups();
  VLM_CHECK(K > 0 && D > 0 && G > 0, "VectorQuantizer: num_embeddings, embedding_dim and groups must be positive, got ",
            K, ", ", D, " and ", G);
  VLM_CHECK(options.commitment_cost() >= 0, "VectorQuantizer: commitment_cost must be >= 0, got ",
            options.commitment_cost());
  VLM_CHECK(options.ema_decay() > 0 && options.ema_decay() < 1, "VectorQuantizer: ema_decay must be in (0, 1), got ",
            options.ema_decay());
  // nn.Embedding's N(0, 1) init, as the seed's codebook starts before k-means replaces it.
  codebook = register_parameter("codebook", at::randn({G * K, D}), /*requires_grad=*/!options.use_ema());
  initialized_flag = register_buffer("initialized", at::zeros({}, at::kLong));
  // A count of one per code makes ema_sum / ema_count start at the codebook, so unused codes stay where they are.
  ema_count = register_buffer("ema_count", at::ones({G * K}));
  ema_sum = register_buffer("ema_sum", codebook.detach().clone());
  usage = register_buffer("usage", at::zeros({G * K}));
}

bool VectorQuantizerImpl::initialized() const { return initialized_flag.item<int64_t>() != 0; }

at::Tensor VectorQuantizerImpl::grouped(const at::Tensor& z) const {
  const int64_t D = options.embedding_dim(), G = options.groups();
  VLM_CHECK(z.dim() >= 1 && z.size(-1) == D && (G == 1 || (z.dim() >= 2 && z.size(-2) == G)),
            "VectorQuantizer: expected input (..., ", G == 1 ? "" : std::to_string(G) + ", ", D, "), got ", z.sizes());
  return z.reshape({-1, G, D});  // (N, G, D)
}

at::Tensor VectorQuantizerImpl::nearest_grouped(const at::Tensor& zg) const {
  const int64_t K = options.num_embeddings(), G = options.groups();
  auto book = codebook.detach();
  if (G == 1) return nearest_code(zg.select(1, 0), book).unsqueeze(1);  // (N, 1)
  std::vector<at::Tensor> codes;
  for (int64_t g = 0; g < G; ++g) codes.push_back(nearest_code(zg.select(1, g), book.slice(0, g * K, (g + 1) * K)));
  return at::stack(codes, 1);  // (N, G)
}

at::Tensor VectorQuantizerImpl::global_codes(const at::Tensor& codes) const {
  if (options.groups() == 1) return codes;
  auto offsets = at::arange(options.groups(), codes.options()) * options.num_embeddings();  // (G)
  return codes + offsets;  // (..., G)
}

void VectorQuantizerImpl::init_from(const at::Tensor& x) {
  at::NoGradGuard no_grad;
  const int64_t K = options.num_embeddings(), G = options.groups();
  auto zg = grouped(x.detach());  // (N, G, D)
  for (int64_t g = 0; g < G; ++g) {
    auto points = zg.select(1, g);  // (N, D)
    if (points.size(0) < K) {
      // A batch smaller than the codebook: jittered copies of its vectors stand in for the missing points.
      auto pick = at::randint(points.size(0), {K - points.size(0)}, at::kLong).to(points.device());
      auto extra = points.index_select(0, pick);  // (K - N, D)
      const double spread = points.size(0) > 1 ? points.std().item<double>() : 1.0;
      const double scale = 1e-3 * (spread + 1e-6);
      points = at::cat({points, extra + scale * at::randn_like(extra)});  // (K, D)
    }
    auto centres = kmeans(points, K, options.kmeans_iters()).to(codebook.device());  // (K, D)
    codebook.slice(0, g * K, (g + 1) * K).copy_(centres);
  }
  auto rows = global_codes(nearest_grouped(zg)).flatten();  // (N*G)
  auto counts = at::bincount(rows.cpu(), {}, G * K).to(at::kFloat).to(codebook.device());
  ema_count.copy_(counts);
  ema_sum.copy_(codebook.detach() * counts.unsqueeze(1));
  usage.fill_(static_cast<double>(zg.size(0)) / K);
  initialized_flag.fill_(1);
}

at::Tensor VectorQuantizerImpl::quantize(const at::Tensor& z) {
  at::NoGradGuard no_grad;
  auto lead = z.sizes().slice(0, z.dim() - 1).vec();
  return nearest_grouped(grouped(z)).view(lead);  // (...)
}

at::Tensor VectorQuantizerImpl::lookup(const at::Tensor& codes) {
  auto flat = codes.flatten();
  if (flat.numel() > 0) {
    VLM_CHECK(flat.min().item<int64_t>() >= 0 && flat.max().item<int64_t>() < options.num_embeddings(),
              "VectorQuantizer: codes must lie in [0, ", options.num_embeddings(), ")");
  }
  VLM_CHECK(options.groups() == 1 || (codes.dim() >= 1 && codes.size(-1) == options.groups()),
            "VectorQuantizer: expected codes (..., ", options.groups(), ") for ", options.groups(), " codebooks, got ",
            codes.sizes());
  auto shape = codes.sizes().vec();
  shape.push_back(options.embedding_dim());
  return codebook.index_select(0, global_codes(codes).flatten()).view(shape);  // (..., D)
}

bool VectorQuantizerImpl::data_parallel() const { return group_ && group_->distributed(); }

VectorQuantizerOutput VectorQuantizerImpl::forward(const at::Tensor& z) {
  auto zg = grouped(z);  // (N, G, D)
  if (is_training() && options.kmeans_init() && !initialized()) {
    if (data_parallel()) {
      // k-means of the global batch on every rank (same vectors, same generator state, so the generators stay in
      // step), then rank 0's result everywhere, so that no rounding difference can ever split the codebooks.
      init_from(group_->all_gather_rows(zg.detach()));
      at::NoGradGuard no_grad;
      group_->broadcast({codebook, ema_count, ema_sum, usage, initialized_flag});
    } else {
      init_from(z);
    }
  }
  at::Tensor codes, rows;
  {
    at::NoGradGuard no_grad;
    codes = nearest_grouped(zg.detach());  // (N, G)
    rows = global_codes(codes).flatten();  // (N*G)
  }
  if (is_training() && (options.use_ema() || options.dead_code_threshold() > 0)) {
    at::NoGradGuard no_grad;
    const int64_t R = codebook.size(0);
    auto flat = zg.detach().flatten(0, 1);  // (N*G, D)
    auto counts = at::zeros({R}, flat.options()).index_add_(0, rows, at::ones({rows.size(0)}, flat.options()));  // (R)
    at::Tensor sums;
    if (options.use_ema()) sums = at::zeros({R, flat.size(1)}, flat.options()).index_add_(0, rows, flat);  // (R, D)
    int64_t n_global = zg.size(0);
    if (data_parallel()) {
      // The statistics of the global batch: sums of integers and of the ranks' partial sums, the same on every rank.
      group_->all_reduce_sum(options.use_ema() ? std::vector<at::Tensor>{counts, sums} : std::vector<at::Tensor>{counts});
      n_global = std::llround(counts.sum().item<double>() / static_cast<double>(options.groups()));
    }
    if (options.use_ema()) update_ema(counts, sums);
    if (options.dead_code_threshold() > 0) restart_dead_codes(zg.detach(), counts, n_global);
  }
  auto q = codebook.index_select(0, rows).view(z.sizes());  // (..., D)
  auto commitment = at::mse_loss(z, q.detach());             // moves the encoder only
  auto loss = options.commitment_cost() * commitment;
  if (!options.use_ema()) loss = loss + at::mse_loss(q, z.detach());  // codebook term: moves the codebook only
  auto lead = z.sizes().slice(0, z.dim() - 1).vec();
  return {z + (q - z).detach(), codes.view(lead), loss};
}

void VectorQuantizerImpl::update_ema(const at::Tensor& counts, const at::Tensor& sums) {
  const double decay = options.ema_decay(), eps = options.ema_epsilon();
  const int64_t R = codebook.size(0);
  ema_count.mul_(decay).add_(counts, 1 - decay);
  ema_sum.mul_(decay).add_(sums, 1 - decay);
  // Laplace smoothing keeps an unused code from dividing by zero while preserving the total count.
  auto n = ema_count.sum();
  auto smoothed = (ema_count + eps) / (n + R * eps) * n;  // (R)
  codebook.copy_(ema_sum / smoothed.unsqueeze(1));
}

void VectorQuantizerImpl::restart_dead_codes(const at::Tensor& zg, const at::Tensor& counts, int64_t n_global) {
  const int64_t K = options.num_embeddings();
  usage.mul_(options.usage_decay()).add_(counts, 1 - options.usage_decay());
  auto dead = (usage < options.dead_code_threshold()).nonzero().flatten();  // (r)
  const int64_t r = dead.size(0);  // the same on every rank: usage is
  if (r == 0) return;
  // A dead code restarts at a random vector of this (global) batch, of its own group, where the encoder's outputs are.
  auto pool = data_parallel() ? group_->all_gather_rows(zg) : zg;  // (n_global, G, D)
  auto pick = at::randint(n_global, {r}, at::TensorOptions().dtype(at::kLong)).to(zg.device());  // (r)
  auto fresh = pool.flatten(0, 1).index_select(0, pick * options.groups() + dead.floor_divide(K));  // (r, D)
  codebook.index_copy_(0, dead, fresh);
  usage.index_fill_(0, dead, static_cast<double>(n_global) / K);
  if (options.use_ema()) {
    ema_count.index_fill_(0, dead, 1.0);
    ema_sum.index_copy_(0, dead, fresh);
  }
  restarts_ += r;
}

}  // namespace vlm
