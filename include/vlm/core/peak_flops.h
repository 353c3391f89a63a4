#pragma once
// The reference for model-flops utilisation (MFU): the peak single-precision rate of the cores a process uses.
//
//   PeakFlops peak = cpu_peak_flops(2);   // e.g. 268 GFLOP/s: 2 cores x 2.10 GHz x 64 FLOP/cycle (AVX-512)
//   double mfu = achieved_flops_per_second / (peak.gflops * 1e9);
//
// A peak computed from the hardware does not depend on what else the machine is doing, unlike a GEMM timed at
// start-up (which read 233% and 950% MFU here when that probe ran on a busy machine). It is an upper bound: two FMA
// units per core are assumed (Intel's AVX-512 server cores have two; AMD's Zen 4 runs one 512-bit FMA per cycle), so
// an MFU against it never exceeds 100% unless the clock runs above the one the CPU reports.
#include <string>

namespace vlm {

struct PeakFlops {
  double gflops = 0;   ///< 0 = unknown (MFU is then not reported)
  std::string source;  ///< how it was obtained, printed next to every MFU
};

/// cores x clock x 2 FMA units x (16 floats with AVX-512, 8 with AVX2/FMA, 4 otherwise) x 2 FLOPs per FMA. The clock
/// is cpufreq's cpuinfo_max_freq, else the highest "cpu MHz" in /proc/cpuinfo.
PeakFlops cpu_peak_flops(int cores);

/// `stated_gflops` > 0 (a user's figure, e.g. a GPU's datasheet peak or `bench_gemm`'s) wins; otherwise the CPU peak
/// of `cores` for CPU devices, and unknown for others.
PeakFlops peak_flops(bool cpu_device, int cores, double stated_gflops = 0);

}  // namespace vlm
