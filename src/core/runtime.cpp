#include "vlm/core/runtime.h"

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <iostream>
#include <thread>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "vlm/core/check.h"

namespace vlm {
namespace {

// OpenBLAS exports these; reference BLAS does not. Looked up at run time so that we link only libblas.so.3.
using SetThreadsFn = void (*)(int);
using GetIntFn = int (*)();
using GetConfigFn = char* (*)();

template <class F>
F lookup(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int set_threads(int n) {
  if (n <= 0) n = hardware_threads();
  at::set_num_threads(n);
  if (auto f = lookup<SetThreadsFn>("openblas_set_num_threads")) f(n);
  return n;
}

void seed_everything(uint64_t seed) { at::manual_seed(seed); }

BlasInfo blas_info() {
  BlasInfo info;
  // Make sure libblas.so.3 is loaded (LibTorch links it) before asking which one it is.
  if (auto cfg = lookup<GetConfigFn>("openblas_get_config")) {
    info.name = "OpenBLAS";
    info.config = cfg();
    if (auto nt = lookup<GetIntFn>("openblas_get_num_threads")) info.threads = nt();
  } else if (lookup<void*>("sgemm_")) {
    Dl_info dl{};
    void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
    std::string path = (sym && dladdr(sym, &dl) && dl.dli_fname) ? dl.dli_fname : "";
    bool mkl = lookup<void*>("mkl_get_max_threads") != nullptr;
    info.name = mkl ? "MKL" : (path.find("/blas/") != std::string::npos ? "reference BLAS" : "unknown BLAS");
    info.config = path;
    info.is_reference = info.name == "reference BLAS";
  } else {
    info.name = "none";
  }
  return info;
}

c10::Device resolve_device(const std::string& name) {
  if (name == "auto") return at::hasCUDA() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  c10::Device d(c10::kCPU);
  try {
    d = c10::Device(name);
  } catch (const std::exception&) {
    VLM_FAIL("--device='", name, "': expected cpu, cuda, cuda:N or auto");
  }
  VLM_CHECK(d.is_cpu() || d.is_cuda(), "--device='", name, "': only cpu and cuda are supported");
  VLM_CHECK(!d.is_cuda() || at::hasCUDA(), "--device='", name,
            "': this LibTorch has no CUDA support or no GPU is visible; use --device=cpu or build against a CUDA "
            "LibTorch (docs/gpu.md)");
  return d;
}

bool tune_malloc() {
#if defined(__GLIBC__)
  // Never serve large allocations by mmap, and never give the top of the heap back: tensors of the same
  // size are freed and re-allocated every step, and each fresh mapping costs page faults.
  bool ok = mallopt(M_MMAP_MAX, 0) == 1;
  ok = (mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1) && ok;
  return ok;
#else
  return false;
#endif
}

RuntimeInfo init_runtime(const RuntimeOptions& options) {
  VLM_CHECK(options.threads >= 0, "--threads must be >= 0 (0 = all cores), got ", options.threads);
  RuntimeInfo info;
  if (options.tune_malloc) info.malloc_tuned = tune_malloc();
  info.threads = set_threads(options.threads);
  info.seed = options.seed;
  seed_everything(options.seed);
  info.blas = blas_info();
  if (info.blas.is_reference && options.warn_reference_blas) {
    std::cerr << "\n*** WARNING: LibTorch is using the reference BLAS (" << info.blas.config << ").\n"
              << "*** Matrix products will be 10-30x slower. Install OpenBLAS: apt-get install libopenblas0-pthread\n"
              << "*** (or select it: update-alternatives --config libblas.so.3-x86_64-linux-gnu)\n\n";
  }
  return info;
}

std::string RuntimeInfo::summary() const {
  return fmt::format("threads={} seed={} blas={}{} malloc_tuned={}", threads, seed, blas.name,
                     blas.threads >= 0 ? fmt::format(" (pool {})", blas.threads) : "", malloc_tuned);
}

}  // namespace vlm
