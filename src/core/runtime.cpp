#include "vlm/core/runtime.h"

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
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

// Stops OpenBLAS's thread pool (when it has one); the next openblas_set_num_threads starts it again from the calling
// thread, whose floating-point settings the new workers inherit.
void stop_blas_pool() {
  using ShutdownFn = int (*)();
  if (auto stop = lookup<ShutdownFn>("blas_thread_shutdown_")) stop();
}

}  // namespace

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool parse_thread_pool(const std::string& name) {
  if (name == "blas") return ThreadPool::kBlas;
  if (name == "torch") return ThreadPool::kTorch;
  if (name == "both") return ThreadPool::kBoth;
  VLM_FAIL("--thread_pool='", name, "': expected blas, torch or both");
}

std::string to_string(ThreadPool pool) {
  switch (pool) {
    case ThreadPool::kBlas: return "blas";
    case ThreadPool::kTorch: return "torch";
    case ThreadPool::kBoth: return "both";
  }
  return "?";
}

ThreadSetting current_threads() {
  ThreadSetting s;
  s.torch = at::get_num_threads();
  if (auto f = lookup<GetIntFn>("openblas_get_num_threads")) s.blas = f();
  return s;
}

void apply_threads(const ThreadSetting& setting) {
  at::set_num_threads(std::max(1, setting.torch));
  if (setting.blas > 0)
    if (auto f = lookup<SetThreadsFn>("openblas_set_num_threads")) f(setting.blas);
}

int set_threads(int n, ThreadPool pool) {
  if (n <= 0) n = hardware_threads();
  const bool has_blas_pool = lookup<SetThreadsFn>("openblas_set_num_threads") != nullptr;
  ThreadSetting s;
  s.torch = pool == ThreadPool::kTorch || pool == ThreadPool::kBoth || !has_blas_pool ? n : 1;
  s.blas = !has_blas_pool ? -1 : pool == ThreadPool::kTorch ? 1 : n;
  apply_threads(s);
  return n;
}

int parallel_for_threads(int tasks) {
  std::atomic<uint64_t> seen{0};
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    seen |= uint64_t(1) << std::min(63, at::get_thread_num());
    // Keep each task busy long enough that one thread cannot take them all.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  });
  return __builtin_popcountll(seen.load());
}

void seed_everything(uint64_t seed) { at::manual_seed(seed); }

BlasInfo blas_info() {
  BlasInfo info;
  // Make sure libblas.so.3 is loaded (LibTorch links it) before asking which one it is.
  if (auto cfg = lookup<GetConfigFn>("openblas_get_config")) {
    info.name = "OpenBLAS";
    info.config = cfg();
    if (auto nt = lookup<GetIntFn>("openblas_get_num_threads")) info.threads = nt();
    if (auto name = lookup<GetConfigFn>("openblas_get_corename")) info.core = name();
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

std::string set_blas_core(const std::string& name) {
  using NameFn = char* (*)();
  using VoidFn = void (*)();
  auto corename = lookup<NameFn>("openblas_get_corename");
  auto quit = lookup<VoidFn>("gotoblas_dynamic_quit");
  auto init = lookup<VoidFn>("gotoblas_dynamic_init");
  VLM_CHECK(corename && quit && init, "set_blas_core('", name, "'): the BLAS is not a DYNAMIC_ARCH OpenBLAS");
  // gotoblas_dynamic_init reads OPENBLAS_CORETYPE and sets the kernel table and its block sizes; the thread pool is
  // stopped first so that no worker is inside a kernel.
  stop_blas_pool();
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = before ? before : "";
  setenv("OPENBLAS_CORETYPE", name.c_str(), 1);
  quit();
  init();
  // The environment as it was: the processes this one starts choose for themselves.
  if (before) setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  else unsetenv("OPENBLAS_CORETYPE");
  return corename();
}

std::string select_blas_kernels() {
  using NameFn = char* (*)();
  auto corename = lookup<NameFn>("openblas_get_corename");
  if (!corename) return {};
  const std::string core = corename();
  // Only the generic fallback of a DYNAMIC_ARCH build, and never against the user's own choice.
  if (core != "Prescott" || !lookup<void*>("gotoblas_dynamic_init") || std::getenv("OPENBLAS_CORETYPE")) return core;
  __builtin_cpu_init();
  // SkylakeX over Cooperlake: the same FP32 kernels plus a BF16 GEMM that LibTorch never calls, and its SGEMM
  // measured faster here (docs/benchmarks.md).
  const char* pick = __builtin_cpu_supports("avx512f") ? "SkylakeX" : __builtin_cpu_supports("avx2") ? "Haswell" : nullptr;
  return pick ? set_blas_core(pick) : core;
}

bool flush_denormals() {
  if (!at::globalContext().setFlushDenormal(true)) return false;
  // New threads inherit the creating thread's floating-point control word (POSIX), but OpenBLAS started its pool when
  // it was loaded: that pool starts again from this thread.
  stop_blas_pool();
  return true;
}

RuntimeInfo init_runtime(const RuntimeOptions& options) {
  VLM_CHECK(options.threads >= 0, "--threads must be >= 0 (0 = all cores), got ", options.threads);
  RuntimeInfo info;
  if (options.tune_malloc) info.malloc_tuned = tune_malloc();
  if (options.blas_kernels) select_blas_kernels();
  if (options.flush_denormal) info.flush_denormal = flush_denormals();
  info.pool = parse_thread_pool(options.thread_pool);
  info.threads = set_threads(options.threads, info.pool);
  info.split = current_threads();
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
  return fmt::format("threads={} thread_pool={} (LibTorch {}, BLAS {}) seed={} blas={}{} malloc_tuned={} "
                     "flush_denormal={}",
                     threads, to_string(pool), split.torch, split.blas >= 0 ? std::to_string(split.blas) : "-", seed,
                     blas.name, blas.core.empty() ? "" : " (" + blas.core + ")", malloc_tuned, flush_denormal);
}

}  // namespace vlm
