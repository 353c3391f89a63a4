#include "vlm/models/vector_quantizer.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/nn/functional.h>

#include "vlm/core/check.h"

namespace vlm {

nlohmann::json to_json(const VectorQuantizerOptions& o) {
  return {{"num_embeddings", o.num_embeddings()},
          {"embedding_dim", o.embedding_dim()},
          {"commitment_cost", o.commitment_cost()},
          {"kmeans_init", o.kmeans_init()},
          {"kmeans_iters", o.kmeans_iters()},
          {"use_ema", o.use_ema()},
          {"ema_decay", o.ema_decay()},
          {"ema_epsilon", o.ema_epsilon()},
          {"dead_code_threshold", o.dead_code_threshold()},
          {"usage_decay", o.usage_decay()}};
}

VectorQuantizerOptions vector_quantizer_options_from_json(const nlohmann::json& j) {
  VLM_CHECK(j.is_object(), "vector quantizer options: expected a JSON object, got ", j.dump());
  VectorQuantizerOptions o;
  for (const auto& [key, value] : j.items()) {
    if (key == "num_embeddings") o.num_embeddings(value.get<int64_t>());
    else if (key == "embedding_dim") o.embedding_dim(value.get<int64_t>());
    else if (key == "commitment_cost") o.commitment_cost(value.get<double>());
    else if (key == "kmeans_init") o.kmeans_init(value.get<bool>());
    else if (key == "kmeans_iters") o.kmeans_iters(value.get<int64_t>());
    else if (key == "use_ema") o.use_ema(value.get<bool>());
    else if (key == "ema_decay") o.ema_decay(value.get<double>());
    else if (key == "ema_epsilon") o.ema_epsilon(value.get<double>());
    else if (key == "dead_code_threshold") o.dead_code_threshold(value.get<double>());
    else if (key == "usage_decay") o.usage_decay(value.get<double>());
    else VLM_FAIL("vector quantizer options: unknown field '", key, "' (written by a newer vlm?)");
  }
  return o;
}

at::Tensor nearest_code(const at::Tensor& x, const at::Tensor& codebook) {
  VLM_CHECK(x.dim() == 2 && codebook.dim() == 2 && x.size(1) == codebook.size(1),
            "nearest_code: expected x (N, D) and codebook (K, D), got ", x.sizes(), " and ", codebook.sizes());
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
  const int64_t K = options.num_embeddings(), D = options.embedding_dim();
  VLM_CHECK(K > 0 && D > 0, "VectorQuantizer: num_embeddings and embedding_dim must be positive, got ", K, " and ", D);
  VLM_CHECK(options.commitment_cost() >= 0, "VectorQuantizer: commitment_cost must be >= 0, got ",
            options.commitment_cost());
  VLM_CHECK(options.ema_decay() > 0 && options.ema_decay() < 1, "VectorQuantizer: ema_decay must be in (0, 1), got ",
            options.ema_decay());
  // nn.Embedding's N(0, 1) init, as the seed's codebook starts before k-means replaces it.
  codebook = register_parameter("codebook", at::randn({K, D}), /*requires_grad=*/!options.use_ema());
  initialized_flag = register_buffer("initialized", at::zeros({}, at::kLong));
  // A count of one per code makes ema_sum / ema_count start at the codebook, so unused codes stay where they are.
  ema_count = register_buffer("ema_count", at::ones({K}));
  ema_sum = register_buffer("ema_sum", codebook.detach().clone());
  usage = register_buffer("usage", at::zeros({K}));
}

bool VectorQuantizerImpl::initialized() const { return initialized_flag.item<int64_t>() != 0; }

void VectorQuantizerImpl::init_from(const at::Tensor& x) {
  at::NoGradGuard no_grad;
  auto flat = x.detach().reshape({-1, options.embedding_dim()});  // (N, D)
  auto centres = kmeans(flat, options.num_embeddings(), options.kmeans_iters()).to(codebook.device());
  codebook.copy_(centres);
  auto counts = at::bincount(nearest_code(flat, codebook).cpu(), {}, options.num_embeddings()).to(at::kFloat);
  ema_count.copy_(counts);
  ema_sum.copy_(centres * counts.to(codebook.device()).unsqueeze(1));
  usage.fill_(static_cast<double>(flat.size(0)) / options.num_embeddings());
  initialized_flag.fill_(1);
}

at::Tensor VectorQuantizerImpl::quantize(const at::Tensor& z) {
  at::NoGradGuard no_grad;
  const int64_t D = options.embedding_dim();
  VLM_CHECK(z.dim() >= 1 && z.size(-1) == D, "VectorQuantizer: expected (..., ", D, ") input, got ", z.sizes());
  auto lead = z.sizes().slice(0, z.dim() - 1).vec();
  return nearest_code(z.reshape({-1, D}), codebook).view(lead);
}

at::Tensor VectorQuantizerImpl::lookup(const at::Tensor& codes) {
  auto flat = codes.flatten();
  if (flat.numel() > 0) {
    VLM_CHECK(flat.min().item<int64_t>() >= 0 && flat.max().item<int64_t>() < options.num_embeddings(),
              "VectorQuantizer: codes must lie in [0, ", options.num_embeddings(), ")");
  }
  auto shape = codes.sizes().vec();
  shape.push_back(options.embedding_dim());
  return codebook.index_select(0, flat).view(shape);  // (..., D)
}

VectorQuantizerOutput VectorQuantizerImpl::forward(const at::Tensor& z) {
  const int64_t D = options.embedding_dim();
  VLM_CHECK(z.dim() >= 1 && z.size(-1) == D, "VectorQuantizer: expected (..., ", D, ") input, got ", z.sizes());
  if (is_training() && options.kmeans_init() && !initialized()) init_from(z);
  auto flat = z.reshape({-1, D});  // (N, D)
  at::Tensor codes;
  {
    at::NoGradGuard no_grad;
    codes = nearest_code(flat.detach(), codebook);  // (N)
  }
  if (is_training()) {
    at::NoGradGuard no_grad;
    if (options.use_ema()) update_ema(flat.detach(), codes);
    if (options.dead_code_threshold() > 0) restart_dead_codes(flat.detach(), codes);
  }
  auto q = codebook.index_select(0, codes).view(z.sizes());  // (..., D)
  auto commitment = at::mse_loss(z, q.detach());             // moves the encoder only
  auto loss = options.commitment_cost() * commitment;
  if (!options.use_ema()) loss = loss + at::mse_loss(q, z.detach());  // codebook term: moves the codebook only
  auto lead = z.sizes().slice(0, z.dim() - 1).vec();
  return {z + (q - z).detach(), codes.view(lead), loss};
}

void VectorQuantizerImpl::update_ema(const at::Tensor& flat, const at::Tensor& codes) {
  const double decay = options.ema_decay(), eps = options.ema_epsilon();
  const int64_t K = options.num_embeddings();
  auto counts = at::zeros({K}, flat.options()).index_add_(0, codes, at::ones({codes.size(0)}, flat.options()));  // (K)
  auto sums = at::zeros({K, flat.size(1)}, flat.options()).index_add_(0, codes, flat);                            // (K, D)
  ema_count.mul_(decay).add_(counts, 1 - decay);
  ema_sum.mul_(decay).add_(sums, 1 - decay);
  // Laplace smoothing keeps an unused code from dividing by zero while preserving the total count.
  auto n = ema_count.sum();
  auto smoothed = (ema_count + eps) / (n + K * eps) * n;  // (K)
  codebook.copy_(ema_sum / smoothed.unsqueeze(1));
}

void VectorQuantizerImpl::restart_dead_codes(const at::Tensor& flat, const at::Tensor& codes) {
  const int64_t K = options.num_embeddings();
  auto counts = at::zeros({K}, flat.options()).index_add_(0, codes, at::ones({codes.size(0)}, flat.options()));  // (K)
  usage.mul_(options.usage_decay()).add_(counts, 1 - options.usage_decay());
  auto dead = (usage < options.dead_code_threshold()).nonzero().flatten();  // (R)
  const int64_t r = dead.size(0);
  if (r == 0) return;
  // A dead code restarts at a random vector of this batch, so it sits where the encoder's outputs actually are.
  auto pick = at::randint(flat.size(0), {r}, at::TensorOptions().dtype(at::kLong)).to(flat.device());
  auto fresh = flat.index_select(0, pick);  // (R, D)
  codebook.index_copy_(0, dead, fresh);
  const double mean_use = static_cast<double>(flat.size(0)) / K;
  usage.index_fill_(0, dead, mean_use);
  if (options.use_ema()) {
    ema_count.index_fill_(0, dead, 1.0);
    ema_sum.index_copy_(0, dead, fresh);
  }
  restarts_ += r;
}

}  // namespace vlm
