#include "vlm/core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {

std::string current_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), {});
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& c : raw)
    if (c == '\0') c = ' ';
  return raw;
}

RunLock::RunLock(const std::string& dir) {
  ensure_directory(dir);
  path_ = (std::filesystem::path(dir.empty() ? "." : dir) / ".lock").string();
  int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EROFS) {
    // A read-only file system: nobody can write here, so there is no writer to exclude. A lock file left by the
    // run that wrote the directory is still taken (flock needs no write access), else there is nothing to hold.
    fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
  }
  if (fd < 0) {
    const int err = errno;
    VLM_FAIL("cannot open the run lock '", path_, "': ", os_error_message(err));
  }
  int rc;
  do rc = ::flock(fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    std::string holder;
    if (err == EWOULDBLOCK) {
      char buf[4096];
      const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
      if (n > 0) holder.assign(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    if (err != EWOULDBLOCK) VLM_FAIL("cannot lock '", path_, "': ", os_error_message(err));
    std::string pid = "unknown", command = "unknown";
    std::istringstream in(holder);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("pid ", 0) == 0 && line.size() > 4 && line.size() < 24 &&
          line.find_first_not_of("0123456789", 4) == std::string::npos)
        pid = line.substr(4);
      if (line.rfind("command ", 0) == 0) command = line.substr(8);
    }
    VLM_FAIL("run directory '", dir, "' is in use by process ", pid,
             " (", quote_excerpt(command, 300), "), which holds '", path_,
             "'; wait for it to finish, stop it, or choose another directory");
  }
  std::string record = "pid " + std::to_string(::getpid()) + "\ncommand " + current_command_line() + "\n";
  // Best effort: the lock is the flock, the record only explains it.
  if (::ftruncate(fd, 0) == 0) {
    ssize_t ignored = ::pwrite(fd, record.data(), record.size(), 0);
    (void)ignored;
  }
  fd_ = fd;
}

RunLock::~RunLock() { release(); }

RunLock::RunLock(RunLock&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_) { other.fd_ = -1; }

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void RunLock::release() {
  if (fd_ < 0) return;
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace vlm
