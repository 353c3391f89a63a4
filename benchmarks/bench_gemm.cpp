// GEMM throughput: OpenBLAS on the kernels of this CPU vs on its generic ones vs the reference BLAS in one process,
// plus LibTorch's at::mm (whatever libblas.so.3 resolves to). Each BLAS is dlopen'ed by path and checked against a
// naive product before it is timed. And the GPT's own products (at::linear at the default model's shapes) in FP32 and
// in BF16, the BF16 result checked against FP32's before it is timed (issue 24: is BF16 faster through LibTorch 1.13?).
//
//   build/benchmarks/bench_gemm [--benchmark_filter=...]
//   VLM_OPENBLAS=/path/libblas.so.3 VLM_REFBLAS=/path/libblas.so.3 override the library paths.
#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "kernel_bench_main.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"

namespace {

using SgemmFn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                         const int*, const float*, const int*, const float*, float*, const int*);
using SetThreadsFn = void (*)(int);

struct Blas {
  std::string path;
  SgemmFn sgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
};

Blas open_blas(const char* env, const char* fallback) {
  Blas b;
  const char* p = std::getenv(env);
  b.path = p ? p : fallback;
  void* h = dlopen(b.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) return b;
  b.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "sgemm_"));
  b.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
  return b;
}

const Blas& openblas() {
  static Blas b = open_blas("VLM_OPENBLAS", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3");
  return b;
}
const Blas& refblas() {
  static Blas b = open_blas("VLM_REFBLAS", "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3");
  return b;
}

// C = A * B for column-major n x n matrices.
void run(const Blas& blas, int n, const std::vector<float>& a, const std::vector<float>& b, std::vector<float>& c) {
  const float one = 1, zero = 0;
  blas.sgemm("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
}

// Check one product against a naive triple loop before timing anything.
void verify(const Blas& blas) {
  const int n = 33;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> a(n * n), b(n * n), c(n * n);
  for (auto& x : a) x = u(rng);
  for (auto& x : b) x = u(rng);
  run(blas, n, a, b, c);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double ref = 0;
      for (int k = 0; k < n; ++k) ref += double(a[i + k * n]) * b[k + j * n];
      VLM_CHECK(std::abs(ref - c[i + j * n]) < 1e-4, blas.path, ": sgemm disagrees with the naive product");
    }
}

void gemm_bench(benchmark::State& state, const Blas& blas) {
  if (!blas.sgemm) {
    state.SkipWithError(("cannot load " + blas.path).c_str());
    return;
  }
  verify(blas);
  const int n = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  if (blas.set_threads) blas.set_threads(threads);
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  for (auto _ : state) {
    run(blas, n, a, b, c);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_Gemm_OpenBLAS(benchmark::State& state) { gemm_bench(state, openblas()); }
// The same library on its generic SSE3 kernels ("Prescott"), the ones Debian 12's OpenBLAS 0.3.21 falls back to on
// CPUs newer than it knows, against the kernels vlm::select_blas_kernels gives it (the line above the results).
void BM_Gemm_OpenBLAS_Generic(benchmark::State& state) {
  const std::string chosen = vlm::blas_info().core;
  if (chosen.empty()) {
    state.SkipWithError("not OpenBLAS");
    return;
  }
  vlm::set_blas_core("Prescott");
  gemm_bench(state, openblas());
  vlm::set_blas_core(chosen);
}
void BM_Gemm_ReferenceBLAS(benchmark::State& state) { gemm_bench(state, refblas()); }

void BM_Gemm_LibTorch(benchmark::State& state) {
  at::NoGradGuard no_grad;
  const int64_t n = state.range(0);
  vlm::set_threads(static_cast<int>(state.range(1)), vlm::ThreadPool::kBoth);
  auto a = at::randn({n, n}), b = at::randn({n, n});
  VLM_CHECK(at::allclose(at::mm(a.narrow(0, 0, 8), b), at::mm(a, b).narrow(0, 0, 8), 1e-4, 1e-4),
            "at::mm is inconsistent");
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b).data_ptr());
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(vlm::blas_info().name);
}

// y = x W^T at the default GPT's shapes: rows = batch 64 x T 32, (k, n) = attention in (128, 384), attention out
// (128, 128), MLP up (128, 512), MLP down (512, 128); one thread, as each of the 2 data-parallel processes.
void BM_Linear(benchmark::State& state, at::ScalarType dtype) {
  at::NoGradGuard no_grad;
  vlm::set_threads(1, vlm::ThreadPool::kBoth);
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  at::manual_seed(3);
  auto x = at::randn({m, k}), w = at::randn({n, k}) / std::sqrt(static_cast<double>(k));
  auto xd = x.to(dtype), wd = w.to(dtype);
  auto ref = at::linear(x.to(at::kDouble), w.to(at::kDouble));
  const double rel = ((at::linear(xd, wd).to(at::kDouble) - ref).norm() / ref.norm()).item<double>();
  // BF16 keeps 8 bits of mantissa: about 2^-8 relative per element, less for the sum.
  VLM_CHECK(rel < (dtype == at::kBFloat16 ? 1e-2 : 1e-5), "at::linear in ", c10::toString(dtype),
            " is off by a relative ", rel);
  for (auto _ : state) benchmark::DoNotOptimize(at::linear(xd, wd).data_ptr());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * k * n, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(fmt::format("relative error {:.1e}", rel));
}
BENCHMARK_CAPTURE(BM_Linear, fp32, at::kFloat)
    ->Args({2048, 128, 384})->Args({2048, 128, 128})->Args({2048, 128, 512})->Args({2048, 512, 128})
    ->ArgNames({"m", "k", "n"})->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, bf16, at::kBFloat16)
    ->Args({2048, 128, 384})->Args({2048, 128, 128})->Args({2048, 128, 512})->Args({2048, 512, 128})
    ->ArgNames({"m", "k", "n"})->UseRealTime();

BENCHMARK(BM_Gemm_OpenBLAS)->ArgsProduct({{256, 512, 1024}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime();
BENCHMARK(BM_Gemm_OpenBLAS_Generic)->ArgsProduct({{256, 512, 1024}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime();
BENCHMARK(BM_Gemm_ReferenceBLAS)->ArgsProduct({{256, 512}, {1}})->ArgNames({"n", "threads"})->UseRealTime();
BENCHMARK(BM_Gemm_LibTorch)->ArgsProduct({{256, 512, 1024}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime();

}  // namespace

int main(int argc, char** argv) { return vlm::bench::run_kernel_benchmarks(argc, argv); }
