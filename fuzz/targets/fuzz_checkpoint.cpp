// The checkpoint container's reader from memory: header (magic, kind, version, JSON meta), then one module's
// tensors (names, shapes, finiteness). Errors must be vlm::Error; LibTorch's own exceptions are converted.
#include <cstddef>
#include <cstdint>
#include <string>

#include <torch/nn/modules/linear.h>

#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)vlm::peek_checkpoint_bytes(bytes, "fuzz.pt");
    vlm::CheckpointReader r(vlm::CheckpointReader::FromBytes{}, bytes, "fuzz.pt", "", 1000);
    static torch::nn::Linear linear(3, 2);
    if (r.has("model")) r.load_module("model", *linear);
    if (r.has("t")) (void)r.tensor("t");
  } catch (const vlm::Error&) {
  }
  return 0;
}
