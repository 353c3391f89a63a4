#include "vlm/data/image_clusters.h"

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/data/augment.h"
#include "vlm/models/vector_quantizer.h"

namespace vlm {

void ImageClusterOptions::validate() const {
  VLM_CHECK(clusters >= 2, "--pseudo_clusters must be at least 2, got ", clusters);
  VLM_CHECK(neighbours >= 1, "--pseudo_neighbours must be at least 1, got ", neighbours);
  VLM_CHECK(dims >= 1 && embedding >= 1 && iterations >= 1 && kmeans_iters >= 1,
            "image clusters: dims, embedding, iterations and kmeans_iters must be positive");
}

at::Tensor spectral_embedding(const at::Tensor& neighbours, int64_t m, int64_t iterations) {
  VLM_CHECK(neighbours.dim() == 2 && neighbours.scalar_type() == at::kLong,
            "spectral_embedding: expected neighbours (N, k) int64, got ", neighbours.sizes());
  const int64_t n = neighbours.size(0), k = neighbours.size(1);
  VLM_CHECK(m >= 1 && m < n, "spectral_embedding: m must be in [1, ", n - 1, "], got ", m);
  at::NoGradGuard no_grad;
  auto flat = neighbours.flatten();                                           // (N*k) targets j of edges i -> j
  auto sources = at::arange(n, at::kLong).unsqueeze(1).expand({n, k}).flatten();  // (N*k) their i
  // W = E + E^T for the directed edges E: y = W x sums each node's out-neighbours and the nodes that chose it.
  auto apply_w = [&](const at::Tensor& x) {  // (N, m) -> (N, m)
    auto y = x.index_select(0, flat).view({n, k, -1}).sum(1);
    return y.index_add_(0, flat, x.index_select(0, sources));
  };
  auto degree = apply_w(at::ones({n, 1})).squeeze(1);  // (N) k + in-degree, >= k
  auto scale = degree.rsqrt().unsqueeze(1);            // D^-1/2
  // Subspace iteration on (I + D^-1/2 W D^-1/2) / 2, whose spectrum lies in [0, 1] with the clusters' eigenvectors
  // on top. The block is orthonormalised after every product through its m x m Gram matrix (Cholesky QR: two GEMMs
  // and a triangular solve, 10x cheaper than Householder QR at N = 50,000, and as accurate for a block that was
  // orthonormal one product ago).
  auto orthonormal = [](const at::Tensor& x) {
    auto r = at::linalg_cholesky(at::mm(x.t(), x));                           // (m, m) lower L, Gram = L L^T
    return at::linalg_solve_triangular(r, x.t(), /*upper=*/false).t();       // x L^-T
  };
  auto u = std::get<0>(at::linalg_qr(at::randn({n, m})));
  for (int64_t it = 0; it < iterations; ++it) u = orthonormal((u + scale * apply_w(scale * u)) * 0.5);
  return u;
}

at::Tensor cluster_graph(const at::Tensor& neighbours, const ImageClusterOptions& o) {
  o.validate();
  at::NoGradGuard no_grad;
  auto u = spectral_embedding(neighbours, o.embedding, o.iterations);  // (N, m)
  u = u / u.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);
  auto centres = kmeans(u, o.clusters, o.kmeans_iters);  // (K, m)
  return nearest_code(u, centres);
}

at::Tensor cluster_images(const at::Tensor& images, const ImageClusterOptions& o) {
  o.validate();
  VLM_CHECK(images.dim() == 4, "cluster_images: expected images (N, C, H, W), got ", images.sizes());
  const int64_t n = images.size(0);
  VLM_CHECK(n > o.neighbours && n > o.embedding && n >= o.clusters, "cluster_images: ", n,
            " images are too few for ", o.neighbours, " neighbours, a ", o.embedding, "-dimensional embedding and ",
            o.clusters, " clusters");
  at::NoGradGuard no_grad;
  auto nn = pixel_neighbours(o.deskew ? deskew_images(images) : images, o.neighbours, o.dims);  // (N, k)
  return cluster_graph(nn, o);
}

}  // namespace vlm
