#pragma once
// Checks of a LibTorch archive (the zip that torch::serialize writes) before LibTorch reads it. LibTorch 1.13
// allocates what the file claims before it reads (a 1.3 KB damaged checkpoint whose data.pkl claimed a 1.7 GB string
// made it allocate 1.7 GB), never checks the records' CRC-32, and crashes in its TorchScript type parser on some
// damaged class sources (all found by fuzz_checkpoint, docs/reliability.md). Internal to the library (src/), used by
// io/checkpoint.cpp.
#include <string>

namespace vlm {

/// Throws vlm::Error naming `name` and the record when the zip archive in `bytes` is damaged in a way LibTorch 1.13
/// would not notice or would pay for: a record claiming more bytes than the file holds, a stored record failing its
/// CRC-32, a pickle record (*.pkl) with a string or bytes length running past the record's end, or a line of the
/// TorchScript class source (code/**.py) that is not one of the attribute declarations LibTorch writes. What it cannot
/// follow (an unknown pickle opcode, a malformed directory) is left to LibTorch's own checks.
void check_archive_bounds(const std::string& bytes, const std::string& name);

}  // namespace vlm
