// Nearest-code search (the VectorQuantizer's inner loop): the seed's LibTorch formula, LibTorch's cdist + argmin and
// the fused kernel of every instruction-set build this CPU runs, at the seed's shape (N = 1,000,000, K = 26, D = 4)
// and larger codebooks. Every variant is checked against an exact search (check_nearest_code) before it is timed.
// The physical bound is measured in the same process: a large parallel memcpy gives the memory bandwidth, and
// `x_bound` = (time per call) / (bytes the search must move / that bandwidth), with bytes = N (4 D + 8): read x,
// write int64 indices.
//
//   build-kern/benchmarks/bench_quantizer [--benchmark_filter=...] [--benchmark_min_time=...]
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "kernel_bench_main.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/kernels/kernel_isa.h"
#include "vlm/kernels/nearest_code.h"

namespace {

namespace vk = vlm::kernels;

/// Copies src to dst in one chunk per thread of LibTorch's pool.
void parallel_copy(const char* src, char* dst, int64_t bytes) {
  at::parallel_for(0, bytes, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, e - b); });
}

/// Bytes per second (read + write) of a 512 MiB copy, best of 5, with the current thread count.
double copy_bandwidth() {
  static std::map<int, double> cache;
  const int threads = at::get_num_threads();
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  const int64_t bytes = int64_t(512) << 20;
  std::vector<char> a(bytes, 1), b(bytes, 0);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_copy(a.data(), b.data(), bytes);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  VLM_CHECK(std::memcmp(a.data(), b.data(), bytes) == 0, "parallel memcpy produced a wrong copy");
  return cache[threads] = 2.0 * bytes / best;
}

void BM_Memory_Copy(benchmark::State& state) {
  vlm::set_threads(static_cast<int>(state.range(0)), vlm::ThreadPool::kBoth);
  const int64_t bytes = int64_t(512) << 20;
  std::vector<char> a(bytes, 1), b(bytes, 0);
  parallel_copy(a.data(), b.data(), bytes);
  VLM_CHECK(std::memcmp(a.data(), b.data(), bytes) == 0, "parallel memcpy produced a wrong copy");
  for (auto _ : state) {
    parallel_copy(a.data(), b.data(), bytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * bytes);  // read + write
}

struct Inputs {
  at::Tensor x, codebook;
};

/// Deterministic inputs per shape, made once: encoder-like values around a codebook of the same spread.
const Inputs& inputs(int64_t n, int64_t k, int64_t d) {
  static std::map<std::tuple<int64_t, int64_t, int64_t>, Inputs> cache;
  auto key = std::make_tuple(n, k, d);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  at::manual_seed(1234);
  return cache[key] = Inputs{at::randn({n, d}), at::randn({k, d})};
}

/// The rows an exact double search re-checks: all of them when that is cheap, else the first ~50M distance terms.
void check_before_timing(const Inputs& in, const at::Tensor& indices, const char* variant) {
  const int64_t n = in.x.size(0), k = in.codebook.size(0), d = in.x.size(1);
  const int64_t rows = std::min<int64_t>(n, std::max<int64_t>(4096, 50'000'000 / (k * d)));
  auto c = vk::check_nearest_code(in.x.narrow(0, 0, rows), in.codebook, indices.narrow(0, 0, rows));
  VLM_CHECK(c.differ <= c.near_ties, variant, ": differs from the exact search outside near ties");
}

template <class Search>
void run_search(benchmark::State& state, const char* variant, Search search) {
  at::NoGradGuard no_grad;
  const int64_t n = state.range(0), k = state.range(1), d = state.range(2);
  vlm::set_threads(static_cast<int>(state.range(3)), vlm::ThreadPool::kBoth);
  const Inputs& in = inputs(n, k, d);
  const double bandwidth = copy_bandwidth();
  check_before_timing(in, search(in.x, in.codebook), variant);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(search(in.x, in.codebook).data_ptr());
  const double per_call =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(state.iterations());
  const double bytes = double(n) * (4 * d + 8);
  state.SetItemsProcessed(int64_t(state.iterations()) * n);
  state.counters["GB/s_bound"] = bandwidth / 1e9;
  // Seconds per call over the bound's seconds per call: 1.0 would be moving the bytes at memcpy speed.
  state.counters["x_bound"] = per_call / (bytes / bandwidth);
}

void BM_NearestCode_SeedFormula(benchmark::State& state) {
  run_search(state, "seed formula", [](const at::Tensor& x, const at::Tensor& c) {
    return vk::nearest_code_reference(x, c);
  });
}

void BM_NearestCode_CdistArgmin(benchmark::State& state) {
  run_search(state, "cdist + argmin", [](const at::Tensor& x, const at::Tensor& c) {
    return at::cdist(x, c).argmin(1);
  });
}

void BM_NearestCode_Fused(benchmark::State& state, const std::string& isa) {
  const auto isas = vk::supported_isas();
  if (std::find(isas.begin(), isas.end(), isa) == isas.end()) {
    state.SkipWithError(("this CPU cannot run the " + isa + " build").c_str());
    return;
  }
  state.SetLabel(isa);
  run_search(state, "fused", [&](const at::Tensor& x, const at::Tensor& c) { return vk::nearest_code(x, c, isa); });
}

// {N, K, D, threads}: the seed's quantizer, then bigger codebooks and wider codes.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "K", "D", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
  for (int threads : {1, 2}) {
    b->Args({1'000'000, 26, 4, threads});
    b->Args({262'144, 256, 16, threads});
    b->Args({65'536, 1024, 64, threads});
  }
}

BENCHMARK(BM_Memory_Copy)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_NearestCode_SeedFormula)->Apply(shapes);
BENCHMARK(BM_NearestCode_CdistArgmin)->Apply(shapes);
BENCHMARK_CAPTURE(BM_NearestCode_Fused, avx512, std::string("avx512"))->Apply(shapes);
BENCHMARK_CAPTURE(BM_NearestCode_Fused, avx2, std::string("avx2"))->Apply(shapes);
BENCHMARK_CAPTURE(BM_NearestCode_Fused, baseline, std::string("baseline"))->Apply(shapes);

}  // namespace

int main(int argc, char** argv) { return vlm::bench::run_kernel_benchmarks(argc, argv); }
