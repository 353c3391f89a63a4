#pragma once
// Which instruction-set build of the vlm CPU kernels runs. The kernels are compiled for AVX-512, AVX2 + FMA and the
// compiler's baseline and picked at run time from what the CPU reports; the environment variable VLM_KERNEL_ISA
// ("avx512", "avx2", "baseline") overrides the choice for the whole process.
#include <string>
#include <vector>

namespace vlm::kernels {

/// The builds this CPU can run, best first; "baseline" is always there.
std::vector<std::string> supported_isas();
/// The build used when a kernel is called without naming one.
std::string active_isa();

}  // namespace vlm::kernels
