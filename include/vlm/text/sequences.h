#pragma once
// Text-image sequences in the seed's exact text format, one per line, padded with '#' to the block size:
//   classify:  image:ABCDEFGH, number:7.#######
//   generate:  number:7, image:ABCDEFGH.#######
// The format is generic over the image letters (any count, any alphabet without the format's own characters), so
// the tokens of any image tokenizer can be written, inspected and trained on.
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

/// Which of the two templates a line uses (the seed: 50/50 per image).
enum class Template : int64_t {
  kClassify = 0,  ///< image:ABCDEFGH, number:N.
  kGenerate = 1,  ///< number:N, image:ABCDEFGH.
};

struct Sequence {
  Template tmpl = Template::kClassify;
  std::string image;  ///< the image letters, e.g. "ABCDEFGH"
  int64_t label = 0;  ///< the digit (any non-negative integer is accepted by the format)
};

inline constexpr char kPadChar = '#';
inline constexpr int64_t kSeedBlockSize = 32;
inline constexpr const char* kSeedImageAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The sequence without padding: "image:ABCDEFGH, number:7." or "number:7, image:ABCDEFGH.".
std::string format_sequence_unpadded(const Sequence& s);
/// The sequence padded with '#' to block_size characters; throws if it does not fit.
std::string format_sequence(const Sequence& s, int64_t block_size = kSeedBlockSize);
/// The classification prompt "image:ABCDEFGH, number:" whose next character is the label.
std::string classification_prompt(const std::string& image);
/// The generation prompt "number:7, image:" whose continuation is the image letters.
std::string generation_prompt(int64_t label);

/// Parses one line (trailing '#' padding, '\r' allowed). `where` ("file:line") prefixes error messages.
Sequence parse_sequence(const std::string& line, const std::string& where = "<line>");

/// Reads a file in the seed's format (blank lines are errors, so truncated files are noticed).
std::vector<Sequence> read_sequences(const std::string& path);
/// Writes sequences padded to block_size, one per line, atomically.
void write_sequences(const std::string& path, const std::vector<Sequence>& sequences,
                     int64_t block_size = kSeedBlockSize);

/// How templates are drawn for the images of a data set.
enum class TemplateMode {
  kOnce,   ///< the seed: one 50/50 draw per image, kept for the whole run (or as stored in the file)
  kFresh,  ///< drawn anew every time an image is used in a batch
  kBoth,   ///< every image appears in both templates
};
TemplateMode parse_template_mode(const std::string& name);  ///< "once", "fresh", "both"; else a clear error
std::string to_string(TemplateMode mode);

/// Builds seed-style sequences from image strings and labels, drawing one template per image 50/50 from `seed`.
std::vector<Sequence> make_sequences(const std::vector<std::string>& images, const std::vector<int64_t>& labels,
                                     uint64_t seed);

}  // namespace vlm
