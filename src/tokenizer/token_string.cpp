#include "vlm/tokenizer/token_string.h"

#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {

void image_text_to_code_indices(std::string_view text, std::string_view alphabet, int64_t length, int64_t* out) {
  VLM_CHECK(length >= 0, "image token strings must have a non-negative length, got ", length);
  VLM_CHECK(static_cast<int64_t>(text.size()) == length, "image token string ", quote_excerpt(text), " has ",
            text.size(), " letters; expected exactly ", length, " letters from ", quote_excerpt(alphabet));
  for (int64_t i = 0; i < length; ++i) {
    const auto pos = alphabet.find(text[static_cast<size_t>(i)]);
    VLM_CHECK(pos != std::string_view::npos, "image token string ", quote_excerpt(text), ": letter ",
              quote_char(text[static_cast<size_t>(i)]), " at position ", i, " is not in the image alphabet ",
              quote_excerpt(alphabet));
    out[i] = static_cast<int64_t>(pos);
  }
}

std::vector<int64_t> image_text_to_code_vector(std::string_view text, std::string_view alphabet, int64_t length) {
  VLM_CHECK(length >= 0 && static_cast<int64_t>(text.size()) == length, "image token string ", quote_excerpt(text),
            " has ", text.size(), " letters; expected exactly ", length, " letters from ", quote_excerpt(alphabet));
  std::vector<int64_t> out(static_cast<size_t>(length));
  image_text_to_code_indices(text, alphabet, length, out.data());
  return out;
}

}  // namespace vlm
