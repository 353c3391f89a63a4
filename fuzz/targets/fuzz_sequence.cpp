// The sequence-format parser: every line of the input through SequenceFormat::parse of three formats (the seed's,
// word labels, three fields with a variable-length one); a parsed line must format back to itself, and the format
// automaton must accept exactly the lines the parser accepts.
#include <cstddef>
#include <cstdint>
#include <string>

#include "vlm/core/check.h"
#include "vlm/text/format_automaton.h"
#include "vlm/text/sequence_format.h"

namespace {
const std::vector<vlm::SequenceFormat>& formats() {
  static const std::vector<vlm::SequenceFormat> f = [] {
    vlm::FieldSpec y = vlm::FieldSpec::codec_field("y", "abcd", 0);
    y.max_length = 5;
    return std::vector<vlm::SequenceFormat>{
        vlm::SequenceFormat::seed(),
        vlm::SequenceFormat::image_and_label("item", {"tshirt", "shirt", "sneaker", "bag"}, "ABCDEFGHIJKLMNOP", 8),
        vlm::SequenceFormat({vlm::FieldSpec::codec_field("x", "abcd", 6),
                             vlm::FieldSpec::label_field("rel", {"up", "upper", "flat"}), y},
                            {"x={x};rel={rel};y={y}|", "rel={rel};y={y};x={x}|"}, 40, '~')};
  }();
  return f;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    for (const auto& f : formats()) {
      bool parsed = false;
      try {
        vlm::Record r = f.parse(line, "fuzz.txt", 1);
        parsed = true;
        // Round trip: what parsed must format, and parse again to the same record.
        std::string again = f.format_unpadded(r);
        if (!(f.parse(again, "fuzz.txt", 2) == r)) __builtin_trap();
        if (!vlm::format_matches(f, again)) __builtin_trap();
      } catch (const vlm::Error& e) {
        // Messages quote at most ~80 characters of the line (plus the fixed text around them).
        if (std::string(e.what()).size() > 1200) __builtin_trap();
      }
      // Without padding or '\r', the automaton and the parser agree on every line.
      if (line.find(f.pad()) == std::string::npos && line.find('\r') == std::string::npos && !line.empty() &&
          vlm::format_matches(f, line) != parsed)
        __builtin_trap();
    }
    start = end + 1;
  }
  return 0;
}
