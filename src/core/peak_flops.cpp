#include "vlm/core/peak_flops.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "vlm/kernels/kernel_isa.h"

namespace vlm {

namespace {
double max_clock_ghz() {
  std::ifstream f("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  double khz = 0;
  if (f >> khz && khz > 0) return khz / 1e6;
  std::ifstream info("/proc/cpuinfo");
  double mhz = 0;
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("cpu MHz", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon != std::string::npos) mhz = std::max(mhz, std::atof(line.c_str() + colon + 1));
  }
  return mhz / 1e3;
}
}  // namespace

PeakFlops cpu_peak_flops(int cores) {
  PeakFlops p;
  const double ghz = max_clock_ghz();
  const auto isas = kernels::supported_isas();
  const std::string isa = isas.empty() ? "baseline" : isas.front();
  const int lanes = isa == "avx512" ? 16 : isa == "avx2" ? 8 : 4;
  const int flops_per_cycle = 2 /*FMA units*/ * lanes * 2 /*FLOPs per FMA*/;
  if (ghz <= 0 || cores <= 0) {
    p.source = "unknown (no CPU clock found)";
    return p;
  }
  p.gflops = cores * ghz * flops_per_cycle;
  p.source = fmt::format("{} cores x {:.2f} GHz x {} FLOP/cycle ({}, 2 FMA units assumed)", cores, ghz,
                         flops_per_cycle, isa);
  return p;
}

PeakFlops peak_flops(bool cpu_device, int cores, double stated_gflops) {
  if (stated_gflops > 0) return {stated_gflops, "stated with --peak_gflops"};
  if (cpu_device) return cpu_peak_flops(cores);
  return {0, "unknown for this device: give --peak_gflops"};
}

}  // namespace vlm
