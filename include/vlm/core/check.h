#pragma once
// Errors: library code throws vlm::Error through VLM_CHECK; only main() catches.
//
//   VLM_CHECK(n > 0, "--batch_size must be positive, got ", n);
//
// The message is the concatenation of the arguments (streamed), so it can carry the values and the fix.
#include <sstream>
#include <stdexcept>
#include <string>

namespace vlm {

/// The one exception type the library throws for bad input, bad files and broken invariants.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (void)(os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace vlm

#define VLM_CHECK(cond, ...)                                            \
  do {                                                                  \
    if (!(cond)) throw ::vlm::Error(::vlm::detail::concat(__VA_ARGS__)); \
  } while (0)

#define VLM_FAIL(...) throw ::vlm::Error(::vlm::detail::concat(__VA_ARGS__))
