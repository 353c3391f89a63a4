#pragma once
// The page's files (web/), embedded into the library at build time (cmake/embed_files.cmake), so that `vlm serve`
// needs nothing beside its binary and the run directory.
#include <cstddef>
#include <string>

namespace vlm::serve_detail {

struct Asset {
  const char* path;          ///< "/index.html"
  const char* content_type;  ///< "text/html; charset=utf-8"
  const char* data;
  size_t size;
};

/// The embedded file served at `path`, or nullptr.
const Asset* find_asset(const std::string& path);

}  // namespace vlm::serve_detail
