#pragma once
// The main() shared by the kernel benchmarks: malloc tuning, Google Benchmark's flags, and a line naming the kernel
// builds this CPU supports and the one in use, so every result file says what it measured.
// Each benchmark checks its kernel against a reference before timing it and throws (exit status non-zero) when they
// disagree; ctest runs every benchmark executable once (--benchmark_min_time=0 and a filter) so those checks guard CI.
// A filter that matches no benchmark is an error too, so a renamed benchmark cannot leave such a test vacuous.
#include <exception>

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vlm/core/runtime.h"
#include "vlm/kernels/kernel_isa.h"

namespace vlm::bench {

inline int run_kernel_benchmarks(int argc, char** argv) {
  vlm::tune_malloc();
  vlm::select_blas_kernels();  // as every tool does (init_runtime)
  vlm::flush_denormals();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const auto blas = vlm::blas_info();
  fmt::print("kernel builds supported: {}; active: {}; BLAS: {}{}\n", fmt::join(vlm::kernels::supported_isas(), ", "),
             vlm::kernels::active_isa(), blas.name, blas.core.empty() ? "" : " (" + blas.core + " kernels)");
  size_t ran = 0;
  try {
    ran = benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {  // a failed correctness check
    fmt::print(stderr, "check failed: {}\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  if (ran == 0) {
    fmt::print(stderr, "no benchmark matched the filter\n");
    return 1;
  }
  return 0;
}

}  // namespace vlm::bench
