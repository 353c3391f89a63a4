#include "vlm/core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "vlm/core/check.h"

namespace vlm {
namespace fs = std::filesystem;

std::string os_error_message(int err) { return std::error_code(err, std::generic_category()).message(); }

void ensure_directory(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  VLM_CHECK(!ec, "cannot create directory '", dir, "': ", ec.message());
}

namespace {

std::string temp_path_for(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

// The pid of a `<name>.tmp.<digits>` file name, or -1.
long temp_file_pid(const std::string& name) {
  auto pos = name.rfind(".tmp.");
  if (pos == std::string::npos || pos == 0) return -1;
  const std::string digits = name.substr(pos + 5);
  if (digits.empty() || digits.size() > 9) return -1;
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  return std::stol(digits);
}

bool process_exists(long pid) {
  if (pid <= 0) return true;  // not ours to judge
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno != ESRCH;  // EPERM: it exists but belongs to someone else
}

void fsync_directory(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the rename itself has happened
  ::fsync(fd);
  ::close(fd);
}

std::string parent_of(const std::string& path) { return fs::path(path).parent_path().string(); }

}  // namespace

std::vector<std::string> remove_stale_temp_files(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  fs::directory_iterator it(dir.empty() ? "." : dir, ec), end;
  if (ec) return removed;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    const long pid = temp_file_pid(name);
    if (pid < 0 || pid == ::getpid() || process_exists(pid)) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    std::error_code rm_ec;
    if (fs::remove(it->path(), rm_ec)) removed.push_back(it->path().string());
  }
  return removed;
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string parent = parent_of(path);
  if (!parent.empty()) ensure_directory(parent);
  remove_stale_temp_files(parent);
  const std::string tmp = temp_path_for(path);
  try {
    write(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  VLM_CHECK(fs::exists(tmp), "writing '", path, "': the writer produced no temporary file '", tmp, "'");
  if (int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    const bool synced = ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!synced && err != EINVAL && err != EROFS) {
      std::remove(tmp.c_str());
      VLM_FAIL("cannot write '", path, "': fsync of '", tmp, "' failed: ", os_error_message(err));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    VLM_FAIL("cannot rename '", tmp, "' to '", path, "': ", os_error_message(err));
  }
  fsync_directory(parent);
}

void write_bytes_atomically(const std::string& path, std::string_view bytes) {
  const std::string parent = parent_of(path);
  if (!parent.empty()) ensure_directory(parent);
  remove_stale_temp_files(parent);
  const std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    VLM_FAIL("cannot write '", path, "': cannot create '", tmp, "': ", os_error_message(err));
  }
  // Any failure below: close, remove the partial temporary (it would eat a full disk), report the OS cause.
  auto fail = [&](const char* what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    VLM_FAIL("cannot write '", path, "': ", what, " '", tmp, "' failed after ", bytes.size(), " bytes were to be ",
             "written: ", os_error_message(err));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const size_t chunk = std::min<size_t>(bytes.size() - done, size_t(1) << 30);
    const ssize_t n = ::write(fd, bytes.data() + done, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing", errno);
    }
    if (n == 0) fail("writing", ENOSPC);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) fail("fsync of", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    VLM_FAIL("cannot write '", path, "': closing '", tmp, "' failed: ", os_error_message(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    VLM_FAIL("cannot rename '", tmp, "' to '", path, "': ", os_error_message(err));
  }
  fsync_directory(parent);
}

void write_text_atomically(const std::string& path, const std::string& contents) {
  write_bytes_atomically(path, contents);
}

std::string read_text_file(const std::string& path, int64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    VLM_FAIL("cannot open '", path, "' for reading: ", os_error_message(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    const int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    ::close(fd);
    VLM_FAIL("cannot read '", path, "': ", os_error_message(err));
  }
  if (S_ISREG(st.st_mode) && st.st_size > max_bytes) {
    ::close(fd);
    VLM_FAIL("'", path, "' is ", st.st_size, " bytes, more than the limit of ", max_bytes, " bytes for this file");
  }
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      VLM_FAIL("error reading '", path, "': ", os_error_message(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (static_cast<int64_t>(out.size()) > max_bytes) {
      ::close(fd);
      VLM_FAIL("'", path, "' holds more than the limit of ", max_bytes, " bytes for this file");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace vlm
