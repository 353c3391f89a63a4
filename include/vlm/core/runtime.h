#pragma once
// Process-wide runtime set-up shared by every tool: threads (LibTorch's pool and OpenBLAS's own pool together),
// seeding, the BLAS backend check and the allocator tuning that keeps large tensors from being mmap'd afresh.
#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace vlm {

/// Which pool gets the threads. LibTorch's intra-op (OpenMP) pool and OpenBLAS's own pthread pool both spin while
/// they wait for work, so giving each all n cores makes 2n spinning threads fight over n cores. Measured on this
/// project's 2-core machine (1+1 / 2+2 / 1 LibTorch + 2 OpenBLAS / 2 LibTorch + 1 OpenBLAS threads):
///   GPT cpu preset        122 / 260 /  92 / 121 ms per iteration     -> kBlas
///   conv VQ-VAE epoch     6.4 / 30.6 / 5.7 / -   s (20k images)       -> kBlas
///   reference CNN epoch   8.3 /  6.2 / 8.1 / 4.5 s (10k images)       -> kTorch (its convolutions are ATen kernels)
/// kBlas: OpenBLAS gets n, LibTorch 1 (LibTorch gets n when there is no separate OpenBLAS pool, e.g. MKL or CUDA);
/// kTorch: LibTorch gets n, OpenBLAS 1; kBoth: n each (LibTorch's own default behaviour).
enum class ThreadPool { kBlas, kTorch, kBoth };
/// "blas", "torch" or "both"; throws naming --thread_pool otherwise.
ThreadPool parse_thread_pool(const std::string& name);
std::string to_string(ThreadPool pool);

struct ThreadSetting {
  int torch = 1;  ///< LibTorch's intra-op threads
  int blas = -1;  ///< OpenBLAS's pool, -1 when the BLAS has no pool of its own
};
/// The current split, to restore after a stage that changed it.
ThreadSetting current_threads();
void apply_threads(const ThreadSetting& setting);

struct RuntimeOptions {
  int threads = 0;          ///< 0 = all cores; split between the pools by thread_pool
  std::string thread_pool = "blas";  ///< blas, torch or both (ThreadPool)
  uint64_t seed = 1337;     ///< seeds LibTorch's generators (CPU and CUDA)
  bool tune_malloc = true;  ///< keep freed large blocks in the heap (glibc mallopt) instead of unmapping them
  bool warn_reference_blas = true;
  /// Flush denormal floats to zero (FTZ/DAZ) on this thread, on the threads it starts later and on OpenBLAS's pool.
  /// Tiny gradients and Adam moments drift into the denormal range late in training, where each operation on them
  /// takes microcode assists: docs/benchmarks.md has the epoch times with and without.
  bool flush_denormal = true;
  /// When OpenBLAS did not recognise this CPU and fell back to its generic SSE3 kernels ("Prescott"; OpenBLAS 0.3.21,
  /// Debian 12's, predates the Xeons of 2023 on), switch it to the newest kernels the CPU's instruction set runs
  /// (SkylakeX: AVX-512; Haswell: AVX2): 5x the SGEMM rate here (docs/benchmarks.md). OPENBLAS_CORETYPE, when set, is
  /// obeyed instead.
  bool blas_kernels = true;
};

struct BlasInfo {
  std::string name;        ///< "OpenBLAS", "reference BLAS" or "unknown"
  std::string config;      ///< OpenBLAS's own configuration string, if any
  bool is_reference = false;
  int threads = -1;        ///< OpenBLAS's pool size, -1 if not OpenBLAS
  std::string core;        ///< OpenBLAS's kernels (its core name, e.g. "SkylakeX"), empty if not OpenBLAS
};

struct RuntimeInfo {
  int threads = 1;
  ThreadPool pool = ThreadPool::kBlas;
  ThreadSetting split;
  uint64_t seed = 0;
  BlasInfo blas;
  bool malloc_tuned = false;
  bool flush_denormal = false;
  std::string summary() const;  ///< one line for the resolved-config printout
};

/// Applies the options: threads, seed, allocator; checks the BLAS backend and warns loudly (stderr) on reference BLAS.
RuntimeInfo init_runtime(const RuntimeOptions& options = {});

/// Gives n threads (n <= 0: all cores) to the pool(s) `pool` names, 1 to the other. Returns the count used.
int set_threads(int n, ThreadPool pool = ThreadPool::kBlas);
/// set_threads for a scope (a pipeline stage): the split found on entry comes back on exit, also on an exception.
class ScopedThreads {
 public:
  ScopedThreads(int n, ThreadPool pool) : saved_(current_threads()) { set_threads(n, pool); }
  ~ScopedThreads() { apply_threads(saved_); }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  ThreadSetting saved_;
};
int hardware_threads();
/// How many of LibTorch's intra-op threads an at::parallel_for over `tasks` items, compiled into this library,
/// actually uses: less than asked when the library was built without OpenMP (at::parallel_for is inline and then
/// runs serially), which would silently serialise the kernels.
int parallel_for_threads(int tasks);

/// Seeds LibTorch's default generators.
void seed_everything(uint64_t seed);

/// Which BLAS the process resolved `sgemm_` to.
BlasInfo blas_info();

/// "cpu", "cuda", "cuda:N" or "auto" (CUDA when LibTorch was built with it and a GPU is present).
/// Throws naming --device when CUDA is asked for but unavailable.
c10::Device resolve_device(const std::string& name);

/// RuntimeOptions::blas_kernels: the OpenBLAS core now in use, after switching it if it was the generic fallback.
/// Call before any BLAS work runs on another thread (init_runtime does). Returns "" without OpenBLAS.
std::string select_blas_kernels();
/// Switches a DYNAMIC_ARCH OpenBLAS to the kernels of core `name` (OPENBLAS_CORETYPE's names: "Prescott",
/// "SkylakeX", ...; an unknown name gives the detected core) and returns the core now in use. Throws without one.
std::string set_blas_core(const std::string& name);

/// Sets FTZ/DAZ on this thread and restarts OpenBLAS's pool from it, so that its workers flush too. Returns false
/// where the CPU cannot (then nothing changed).
bool flush_denormals();

/// glibc only: stop mmap/munmap churn for large tensors (measured 3-5x on attention here). Returns false elsewhere.
bool tune_malloc();

}  // namespace vlm
