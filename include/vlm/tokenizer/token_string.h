#pragma once
// Image token strings -> code indices without LibTorch (ImageTokenCodec's text_to_codes builds on it; the fuzz target
// calls it directly). A bad letter or a wrong length is a vlm::Error quoting (at most ~80 characters of) the string,
// the position and the alphabet.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vlm {

/// Writes the index in `alphabet` of each letter of `text` to out[0..length); throws unless `text` has exactly
/// `length` letters, all in `alphabet`.
void image_text_to_code_indices(std::string_view text, std::string_view alphabet, int64_t length, int64_t* out);

/// The same into a vector.
std::vector<int64_t> image_text_to_code_vector(std::string_view text, std::string_view alphabet, int64_t length);

}  // namespace vlm
