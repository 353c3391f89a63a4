#include "vlm/core/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vlm/core/check.h"

namespace vlm {

void ensure_directory(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  VLM_CHECK(!ec, "cannot create directory '", dir, "': ", ec.message());
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) ensure_directory(parent.string());
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    write(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  VLM_CHECK(std::filesystem::exists(tmp), "writing '", path, "': the writer produced no temporary file '", tmp, "'");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    VLM_FAIL("cannot rename '", tmp, "' to '", path, "': ", why);
  }
}

void write_text_atomically(const std::string& path, const std::string& contents) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    VLM_CHECK(f, "cannot open '", tmp, "' for writing");
    f << contents;
    f.flush();
    VLM_CHECK(f.good(), "error writing '", tmp, "' (disk full?)");
  });
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  VLM_CHECK(f, "cannot open '", path, "': ", std::filesystem::exists(path) ? "permission denied" : "no such file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace vlm
