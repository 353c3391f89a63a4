// The pseudo-captions' two graph kernels (vlm::cluster_images), each against the LibTorch formulation it replaced,
// at the training set's size (N = 50,000 images, 64 principal components, 10 neighbours, a 24-vector embedding):
//   - the k-nearest-neighbour search: a (chunk, N) addmm and topk per chunk of queries (the baseline) against
//     vlm::pixel_neighbours's cache-sized distance tiles scanned into a sorted top-k list;
//   - one product of the subspace iteration with the normalised graph, (I + D^-1/2 W D^-1/2) / 2 u: index_select,
//     sum and index_add_ over the (N k, m) edge rows (the baseline) against the row lists vlm::spectral_embedding
//     builds (timed as a whole embedding of `iterations` products, per product).
// Each fast path is checked against its baseline before it is timed.
//
//   build/benchmarks/bench_neighbours [--benchmark_filter=...]
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "kernel_bench_main.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/data/augment.h"
#include "vlm/data/image_clusters.h"

namespace {

/// (N, 1, 8, 8) points: 64 pixels = 64 dimensions, so that pixel_neighbours measures exact distances (no PCA).
at::Tensor points(int64_t n) {
  at::manual_seed(7);
  return at::randn({n, 1, 8, 8});
}

/// The baseline search: every query's distances to all N points in one (chunk, N) matrix, then topk.
at::Tensor neighbours_topk(const at::Tensor& images, int64_t k, int64_t chunk = 2048) {
  const int64_t n = images.size(0);
  auto x = images.reshape({n, -1});
  auto sq = x.pow(2).sum(1).unsqueeze(0);  // (1, N)
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < n; i += chunk) {
    const int64_t stop = std::min(n, i + chunk);
    auto d = at::addmm(sq, x.slice(0, i, stop), x.t(), 1, -2);  // (c, N)
    d.scatter_(1, at::arange(i, stop, at::kLong).unsqueeze(1), std::numeric_limits<float>::infinity());
    out.push_back(std::get<1>(d.topk(k, 1, /*largest=*/false, /*sorted=*/true)));
  }
  return at::cat(out);
}

/// Both searches must find neighbours at the same distances (indices may differ only between equidistant points).
void check_neighbours(const at::Tensor& images, int64_t k) {
  auto x = images.reshape({images.size(0), -1}).to(at::kDouble);
  auto dist = [&](const at::Tensor& nn) {  // (N, k) exact squared distances of the chosen neighbours
    return (x.index_select(0, nn.flatten()).view({nn.size(0), nn.size(1), -1}) - x.unsqueeze(1)).pow(2).sum(2);
  };
  auto fast = vlm::pixel_neighbours(images, k, x.size(1)), slow = neighbours_topk(images, k);
  const double gap = (dist(fast) - dist(slow)).abs().max().item<double>();
  VLM_CHECK(gap < 1e-3, "pixel_neighbours disagrees with addmm + topk: distances differ by ", gap);
}

void BM_Neighbours_AddmmTopk(benchmark::State& state) {
  vlm::set_threads(1, vlm::ThreadPool::kBlas);
  const auto images = points(state.range(0));
  check_neighbours(images.slice(0, 0, 3000), state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(neighbours_topk(images, state.range(1)));
  state.counters["pairs/s"] = benchmark::Counter(double(state.range(0)) * state.range(0) * state.iterations(),
                                                 benchmark::Counter::kIsRate);
}

void BM_Neighbours_Fused(benchmark::State& state) {
  vlm::set_threads(1, vlm::ThreadPool::kBlas);
  const auto images = points(state.range(0));
  check_neighbours(images.slice(0, 0, 3000), state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(vlm::pixel_neighbours(images, state.range(1), 64));
  state.counters["pairs/s"] = benchmark::Counter(double(state.range(0)) * state.range(0) * state.iterations(),
                                                 benchmark::Counter::kIsRate);
}

/// The baseline subspace iteration: the same arithmetic as vlm::spectral_embedding through gathered edge rows.
at::Tensor spectral_gather(const at::Tensor& neighbours, int64_t m, int64_t iterations) {
  const int64_t n = neighbours.size(0), k = neighbours.size(1);
  auto flat = neighbours.flatten();
  auto sources = at::arange(n, at::kLong).unsqueeze(1).expand({n, k}).flatten();
  auto apply_w = [&](const at::Tensor& x) {
    auto y = x.index_select(0, flat).view({n, k, -1}).sum(1);
    return y.index_add_(0, flat, x.index_select(0, sources));
  };
  auto scale = apply_w(at::ones({n, 1})).squeeze(1).rsqrt().unsqueeze(1);
  auto orthonormal = [](const at::Tensor& x) {
    auto r = at::linalg_cholesky(at::mm(x.t(), x));
    return at::linalg_solve_triangular(r, x.t(), /*upper=*/false).t();
  };
  auto u = std::get<0>(at::linalg_qr(at::randn({n, m})));
  for (int64_t it = 0; it < iterations; ++it) u = orthonormal((u + scale * apply_w(scale * u)) * 0.5);
  return u;
}

/// The two embeddings from the same start span the same subspace: the fast one's projection onto the baseline's
/// keeps (nearly) all of its norm.
void check_spectral(const at::Tensor& nn, int64_t m, int64_t iterations) {
  at::manual_seed(3);
  auto fast = vlm::spectral_embedding(nn, m, iterations);
  at::manual_seed(3);
  auto slow = spectral_gather(nn, m, iterations);
  const double kept = at::mm(slow.t(), fast).pow(2).sum().item<double>() / m;  // 1 = same subspace
  VLM_CHECK(kept > 0.999, "spectral_embedding disagrees with the gathered product: subspace overlap ", kept);
}

at::Tensor graph(int64_t n, int64_t k) { return vlm::pixel_neighbours(points(n), k, 64); }

constexpr int64_t kEmbedding = 24, kIterations = 20;

void BM_Spectral_Gather(benchmark::State& state) {
  vlm::set_threads(1, vlm::ThreadPool::kBlas);
  const auto nn = graph(state.range(0), state.range(1));
  check_spectral(nn, kEmbedding, kIterations);
  for (auto _ : state) benchmark::DoNotOptimize(spectral_gather(nn, kEmbedding, kIterations));
  state.counters["products/s"] = benchmark::Counter(double(kIterations) * state.iterations(),
                                                    benchmark::Counter::kIsRate);
}

void BM_Spectral_RowLists(benchmark::State& state) {
  vlm::set_threads(1, vlm::ThreadPool::kBlas);
  const auto nn = graph(state.range(0), state.range(1));
  check_spectral(nn, kEmbedding, kIterations);
  for (auto _ : state) benchmark::DoNotOptimize(vlm::spectral_embedding(nn, kEmbedding, kIterations));
  state.counters["products/s"] = benchmark::Counter(double(kIterations) * state.iterations(),
                                                    benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_Neighbours_AddmmTopk)->ArgNames({"N", "k"})->Args({4096, 10})->Args({50000, 10})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Neighbours_Fused)->ArgNames({"N", "k"})->Args({4096, 10})->Args({50000, 10})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Spectral_Gather)->ArgNames({"N", "k"})->Args({4096, 10})->Args({50000, 10})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Spectral_RowLists)->ArgNames({"N", "k"})->Args({4096, 10})->Args({50000, 10})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) { return vlm::bench::run_kernel_benchmarks(argc, argv); }
