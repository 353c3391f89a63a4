// The kernels compiled for AVX-512 (F, DQ, BW, VL); used only when the CPU reports them (see cpu_kernels.h).
#include <cstdint>
#include <cstring>

#include "kernels/cpu_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2,f16c,popcnt")
#define VLM_KERNEL_AVX512 1
namespace vlm::kernels::cpu {
#include "kernels/simd_vec.h"
#include "kernels/nearest_code_kernel.h"
#include "kernels/causal_attention_kernel.h"
}  // namespace vlm::kernels::cpu
#undef VLM_KERNEL_AVX512
#pragma GCC pop_options

namespace vlm::kernels::cpu {
// Built outside the target region: the dispatcher may call this before it knows the CPU's sets.
const KernelTable* avx512_table() {
  static const KernelTable table{"avx512", nearest_code_impl, attention_forward_impl, attention_backward_impl};
  return &table;
}
}  // namespace vlm::kernels::cpu

#else
namespace vlm::kernels::cpu {
const KernelTable* avx512_table() { return nullptr; }
}  // namespace vlm::kernels::cpu
#endif
