// The baseline build of the kernels (whatever the compiler targets by default), the scratch sizes and the run-time
// choice among the builds.
#include "kernels/cpu_kernels.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "vlm/core/check.h"
#include "vlm/kernels/kernel_isa.h"

namespace vlm::kernels::cpu {
#include "kernels/simd_vec.h"
#include "kernels/nearest_code_kernel.h"
#include "kernels/causal_attention_kernel.h"

const KernelTable& baseline_table() {
  static const KernelTable table{"baseline", nearest_code_impl, attention_forward_impl, attention_backward_impl};
  return table;
}

int64_t attention_scratch_floats(int64_t t, int64_t hs) {
  const int64_t tp = attention_row_stride(t), hp = (hs + 15) / 16 * 16;
  return hs * tp + 3 * t * hp + t * tp + 2 * tp * tp + 16;
}

int64_t nearest_code_scratch_floats(int64_t d) { return 2 * 4 * 16 * d + 16; }

std::vector<const KernelTable*> supported_tables() {
  std::vector<const KernelTable*> tables;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (avx512_table() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2"))
    tables.push_back(avx512_table());
  if (avx2_table() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2"))
    tables.push_back(avx2_table());
#endif
  tables.push_back(&baseline_table());
  return tables;
}

namespace {
const KernelTable* find_table(const std::string& isa, const char* what) {
  const auto tables = supported_tables();
  std::string names;
  for (const KernelTable* t : tables) {
    if (isa == t->isa) return t;
    names += std::string(names.empty() ? "" : ", ") + t->isa;
  }
  VLM_FAIL(what, isa, " is not a kernel build this CPU supports; use one of: ", names);
}
}  // namespace

const KernelTable& active_table() {
  static const KernelTable* chosen = [] {
    const char* env = std::getenv("VLM_KERNEL_ISA");
    if (!env || !*env) return supported_tables().front();
    return find_table(env, "VLM_KERNEL_ISA=");
  }();
  return *chosen;
}

const KernelTable& table_for(const std::string& isa) {
  return isa.empty() ? active_table() : *find_table(isa, "kernel build ");
}

}  // namespace vlm::kernels::cpu

namespace vlm::kernels {

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const cpu::KernelTable* t : cpu::supported_tables()) names.emplace_back(t->isa);
  return names;
}

std::string active_isa() { return cpu::active_table().isa; }

}  // namespace vlm::kernels
