// Image token strings -> codes: the first input byte picks the length, the rest is the string; the seed alphabet
// and, for odd first bytes, an alphabet taken from the string's tail.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vlm/core/check.h"
#include "vlm/tokenizer/token_string.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int64_t length = data[0] % 32;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  if (data[0] & 1 && text.size() > 4) {
    alphabet = text.substr(text.size() - 4);
    text.resize(text.size() - 4);
  }
  try {
    std::vector<int64_t> codes = vlm::image_text_to_code_vector(text, alphabet, length);
    for (size_t i = 0; i < codes.size(); ++i)
      if (codes[i] < 0 || codes[i] >= static_cast<int64_t>(alphabet.size()) ||
          alphabet[static_cast<size_t>(codes[i])] != text[i])
        __builtin_trap();
  } catch (const vlm::Error& e) {
    if (std::string(e.what()).size() > 1200) __builtin_trap();
  }
  return 0;
}
