// The token text parser: every line of the input through parse_sequence; a parsed line must format back.
#include <cstddef>
#include <cstdint>
#include <string>

#include "vlm/core/check.h"
#include "vlm/text/sequences.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    try {
      vlm::Sequence s = vlm::parse_sequence(line, "fuzz.txt:1");
      // Round trip: what parsed must format, and parse again to the same sequence.
      std::string again = vlm::format_sequence_unpadded(s);
      vlm::Sequence t = vlm::parse_sequence(again, "fuzz.txt:2");
      if (t.image != s.image || t.label != s.label || t.tmpl != s.tmpl) __builtin_trap();
    } catch (const vlm::Error& e) {
      // Messages quote at most ~80 characters of the line (plus the fixed text around them).
      if (std::string(e.what()).size() > 1200) __builtin_trap();
    }
    start = end + 1;
  }
  return 0;
}
