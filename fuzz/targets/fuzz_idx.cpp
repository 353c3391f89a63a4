// IDX reader (raw and gzip) from memory: any input must parse or throw vlm::Error, never crash or over-allocate.
#include <cstddef>
#include <cstdint>

#include "vlm/core/check.h"
#include "vlm/data/idx_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vlm::IdxReadOptions options;
  options.max_bytes = int64_t(1) << 24;  // the fuzzer's memory limit; the check itself is what is exercised
  try {
    vlm::IdxArray a = vlm::parse_idx(data, size, "fuzz.idx", options);
    int64_t total = 1;
    for (auto d : a.dims) total *= d;
    if (total != static_cast<int64_t>(a.data.size())) __builtin_trap();  // the parser's own invariant
    try {
      vlm::check_idx_labels(a, 10, "fuzz.idx");
    } catch (const vlm::Error&) {
    }
  } catch (const vlm::Error&) {
  }
  return 0;
}
