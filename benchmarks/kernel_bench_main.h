#pragma once
// The main() shared by the kernel benchmarks: malloc tuning, Google Benchmark's flags, and a line naming the kernel
// builds this CPU supports and the one in use, so every result file says what it measured.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vlm/core/runtime.h"
#include "vlm/kernels/kernel_isa.h"

namespace vlm::bench {

inline int run_kernel_benchmarks(int argc, char** argv) {
  vlm::tune_malloc();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fmt::print("kernel builds supported: {}; active: {}; BLAS: {}\n", fmt::join(vlm::kernels::supported_isas(), ", "),
             vlm::kernels::active_isa(), vlm::blas_info().name);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace vlm::bench
