#pragma once
// Nothing lost on a crash: outputs are written to `<path>.tmp.<pid>` and renamed into place only when complete.
//
// Every failure (full disk, EFBIG under `ulimit -f`, a read-only directory, a missing permission) is a vlm::Error
// naming the file and the OS cause; the temporary is removed and the previous `path` is left as it was.
// Temporaries left behind by killed writers (`*.tmp.<pid>` whose pid is dead) are removed by the next writer into
// the same directory (remove_stale_temp_files).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vlm {

/// Calls `write(tmp_path)`, then fsyncs and renames tmp_path to `path` (atomic on POSIX within one file system).
/// If `write` throws, the temporary is removed, `path` is untouched and the exception propagates.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);

/// Writes `bytes` to `<path>.tmp.<pid>` with write(2), fsyncs it, renames it to `path` and fsyncs the directory.
/// Throws vlm::Error naming the file and the OS cause (e.g. "File too large", "No space left on device").
void write_bytes_atomically(const std::string& path, std::string_view bytes);

/// Writes `contents` to `path` atomically (write_bytes_atomically).
void write_text_atomically(const std::string& path, const std::string& contents);

/// Reads a whole file; throws vlm::Error naming the file and the OS cause if it cannot be opened or read, or if it
/// is larger than `max_bytes`.
std::string read_text_file(const std::string& path, int64_t max_bytes = int64_t(1) << 34);

/// Creates `dir` and its parents if missing; throws naming the directory on failure.
void ensure_directory(const std::string& dir);

/// Removes `<dir>/*.tmp.<pid>` files whose writer process `pid` no longer exists (on this machine). Returns the
/// paths removed. Never throws for a file it cannot remove (it is skipped); an unreadable `dir` yields {}.
std::vector<std::string> remove_stale_temp_files(const std::string& dir);

/// "No such file or directory" etc. for an errno value (thread-safe).
std::string os_error_message(int err);

}  // namespace vlm
