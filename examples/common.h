#pragma once
// Shared by the example drivers: the flags every tool takes, the runtime start-up and main()'s error handling.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <utility>

#include <c10/util/Exception.h>

#include "vlm/core/flags.h"
#include "vlm/core/runtime.h"
#include "vlm/dist/process_group.h"

namespace vlm::examples {

struct CommonOptions {
  std::string data_dir = "data/mnist";  ///< holds the four IDX files, raw or .gz
  int threads = 0;                      ///< 0 = all cores
  std::string thread_pool = "blas";     ///< which pool gets them (vlm::ThreadPool); the other gets 1
  uint64_t seed = 1337;
  std::string device = "cpu";  ///< cpu, cuda, cuda:N, auto
  bool flush_denormal = true;  ///< vlm::RuntimeOptions::flush_denormal
  bool blas_kernels = true;    ///< vlm::RuntimeOptions::blas_kernels

  RuntimeOptions runtime() const {
    RuntimeOptions ro;
    ro.threads = threads;
    ro.thread_pool = thread_pool;
    ro.seed = seed;
    ro.flush_denormal = flush_denormal;
    ro.blas_kernels = blas_kernels;
    return ro;
  }
};

inline void add_common_flags(Flags& flags, CommonOptions& o, bool with_data_dir = true) {
  if (with_data_dir) flags.add("data_dir", &o.data_dir, "directory with the four MNIST-format IDX files (raw or .gz)");
  flags.add("threads", &o.threads, "threads (0 = all cores)");
  flags.add("thread_pool", &o.thread_pool,
            "blas: OpenBLAS gets --threads, LibTorch 1 (GEMM-bound models); torch: the reverse; both: each gets them");
  flags.add("seed", &o.seed, "random seed");
  flags.add("device", &o.device, "cpu, cuda, cuda:N or auto");
  flags.add("flush_denormal", &o.flush_denormal, "treat denormal floats as zero (faster late in training)");
  flags.add("blas_kernels", &o.blas_kernels,
            "give OpenBLAS the AVX-512/AVX2 kernels of this CPU when it fell back to generic ones");
}

/// Applies the runtime options and prints the resolved configuration.
inline RuntimeInfo start(const Flags& flags, const CommonOptions& o) {
  RuntimeInfo info = init_runtime(o.runtime());
  std::cout << flags.resolved() << "runtime: " << info.summary() << "\n" << std::flush;
  return info;
}

/// start() for a tool that runs data-parallel when a launcher starts it (vlm launch, mpirun, srun, torchrun;
/// vlm/dist/process_group.h): "all cores" (--threads=0) becomes this rank's share of them, rank 0 alone prints the
/// configuration, and every rank joins the group (a group of one without a launcher).
struct RankStart {
  RuntimeInfo runtime;
  c10::Device device;
  ProcessGroup group;
};
inline RankStart start_rank(const Flags& flags, CommonOptions& o) {
  const DistEnv dist = dist_env_from_environment();
  o.threads = dist.threads_per_rank(o.threads);
  RuntimeInfo runtime = dist.rank == 0 ? start(flags, o) : init_runtime(o.runtime());
  const c10::Device device = resolve_device(o.device);
  ProcessGroup group(dist, device);
  if (dist.distributed() && dist.rank == 0) std::cout << "data-parallel: " << dist.summary() << "\n" << std::flush;
  return {runtime, device, std::move(group)};
}

/// Runs a driver body; any exception becomes one clear line on stderr and exit status 1.
template <class F>
int run_main(const char* program, F&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    std::cerr << program << ": error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
  }
  return 1;
}

}  // namespace vlm::examples
