#pragma once
// Process-wide runtime set-up shared by every tool: threads (LibTorch's pool and OpenBLAS's own pool together),
// seeding, the BLAS backend check and the allocator tuning that keeps large tensors from being mmap'd afresh.
#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace vlm {

struct RuntimeOptions {
  int threads = 0;          ///< 0 = all cores; sets LibTorch's intra-op pool and OpenBLAS's pool alike
  uint64_t seed = 1337;     ///< seeds LibTorch's generators (CPU and CUDA)
  bool tune_malloc = true;  ///< keep freed large blocks in the heap (glibc mallopt) instead of unmapping them
  bool warn_reference_blas = true;
};

struct BlasInfo {
  std::string name;        ///< "OpenBLAS", "reference BLAS" or "unknown"
  std::string config;      ///< OpenBLAS's own configuration string, if any
  bool is_reference = false;
  int threads = -1;        ///< OpenBLAS's pool size, -1 if not OpenBLAS
};

struct RuntimeInfo {
  int threads = 1;
  uint64_t seed = 0;
  BlasInfo blas;
  bool malloc_tuned = false;
  std::string summary() const;  ///< one line for the resolved-config printout
};

/// Applies the options: threads, seed, allocator; checks the BLAS backend and warns loudly (stderr) on reference BLAS.
RuntimeInfo init_runtime(const RuntimeOptions& options = {});

/// Sets LibTorch's intra-op threads and OpenBLAS's pool to n (n <= 0: all cores). Returns the count used.
int set_threads(int n);
int hardware_threads();

/// Seeds LibTorch's default generators.
void seed_everything(uint64_t seed);

/// Which BLAS the process resolved `sgemm_` to.
BlasInfo blas_info();

/// "cpu", "cuda", "cuda:N" or "auto" (CUDA when LibTorch was built with it and a GPU is present).
/// Throws naming --device when CUDA is asked for but unavailable.
c10::Device resolve_device(const std::string& name);

/// glibc only: stop mmap/munmap churn for large tensors (measured 3-5x on attention here). Returns false elsewhere.
bool tune_malloc();

}  // namespace vlm
