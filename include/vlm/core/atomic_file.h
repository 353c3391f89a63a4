#pragma once
// Nothing lost on a crash: outputs are written to `<path>.tmp.<pid>` and renamed into place only when complete.
#include <functional>
#include <string>

namespace vlm {

/// Calls `write(tmp_path)`, then renames tmp_path to `path` (atomic on POSIX within one file system).
/// If `write` throws, the temporary is removed, `path` is untouched and the exception propagates.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);

/// Writes `contents` to `path` atomically.
void write_text_atomically(const std::string& path, const std::string& contents);

/// Reads a whole file; throws vlm::Error naming the file if it cannot be opened.
std::string read_text_file(const std::string& path);

/// Creates `dir` and its parents if missing; throws naming the directory on failure.
void ensure_directory(const std::string& dir);

}  // namespace vlm
