#pragma once
// A bound check of a LibTorch archive (the zip that torch::serialize writes) before LibTorch reads it. LibTorch
// 1.13 allocates what the file claims before it reads: a record's size from the zip directory, and a pickled string's
// length prefix. A 1.3 KB damaged checkpoint whose data.pkl claimed a 1.7 GB string made it allocate 1.7 GB (found by
// fuzz_checkpoint, docs/reliability.md). Internal to the library (src/), used by io/checkpoint.cpp.
#include <string>

namespace vlm {

/// Throws vlm::Error naming `name` when a record of the zip archive in `bytes` claims more bytes than the file can
/// hold, or a pickle record (*.pkl) holds a string or bytes opcode whose length runs past the record's end. It
/// never rejects an archive LibTorch would read: what it cannot follow (an unknown opcode, a malformed directory) is
/// left to LibTorch's own checks.
void check_archive_bounds(const std::string& bytes, const std::string& name);

}  // namespace vlm
