#pragma once
// One run directory, one writer: an advisory lock on `<dir>/.lock` (flock(2)), holding the pid and command line of
// the holder. The kernel releases it when the holder exits or dies (even by SIGKILL), so there is nothing stale to
// clean up; a second process (or a second RunLock in the same process) is refused with a vlm::Error naming the
// holder's pid and command.
//
//   vlm::RunLock lock(run_dir);   // at the start of anything that writes into run_dir; held until scope exit
//
// Advisory: only writers that take the lock are excluded. flock is per open file description: a child forked while
// the lock is held shares it (the descriptor is close-on-exec, so exec'd programs do not).
#include <string>

namespace vlm {

class RunLock {
 public:
  /// Creates `dir` if needed and takes `<dir>/.lock` without waiting; throws vlm::Error if another holder has it.
  /// On a read-only file system it takes an existing lock file read-only, or holds nothing (no writer is possible).
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  /// Releases the lock now (the destructor does it otherwise). The file stays: removing it would race.
  void release();
  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

/// This process's command line, arguments separated by spaces (from /proc/self/cmdline; "" if unavailable).
std::string current_command_line();

}  // namespace vlm
