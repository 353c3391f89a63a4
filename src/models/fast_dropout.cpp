#include "vlm/models/fast_dropout.h"

#include <mutex>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include "vlm/core/check.h"

namespace vlm {

namespace {
inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t draw_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}
}  // namespace

at::Tensor fast_dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  VLM_CHECK(p < 1, "dropout probability must be below 1, got ", p);
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) return at::dropout(x, p, true);
  const uint64_t seed = draw_seed();
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  const uint32_t threshold = static_cast<uint32_t>(p * 4294967296.0);  // drop when the 32-bit draw is below it
  auto mask = at::empty(x.sizes(), x.options().requires_grad(false));
  float* m = mask.data_ptr<float>();
  const int64_t pairs = (mask.numel() + 1) / 2, n = mask.numel();
  at::parallel_for(0, pairs, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const uint64_t r = splitmix64(seed + static_cast<uint64_t>(k + 1) * 0x9e3779b97f4a7c15ULL);
      m[2 * k] = static_cast<uint32_t>(r) >= threshold ? scale : 0.0f;
      if (2 * k + 1 < n) m[2 * k + 1] = static_cast<uint32_t>(r >> 32) >= threshold ? scale : 0.0f;
    }
  });
  return x * mask;
}

}  // namespace vlm
