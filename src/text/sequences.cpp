#include "vlm/text/sequences.h"

#include <fstream>
#include <random>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {

namespace {
constexpr const char* kImageKey = "image:";
constexpr const char* kNumberKey = "number:";

// Characters the templates themselves use; an image alphabet must avoid them or lines become ambiguous.
bool is_format_char(char c) { return c == ',' || c == '.' || c == ':' || c == ' ' || c == kPadChar; }

void check_image(const std::string& image, const std::string& where) {
  VLM_CHECK(!image.empty(), where, ": empty image token string");
  for (size_t i = 0; i < image.size(); ++i) {
    char c = image[i];
    VLM_CHECK(!is_format_char(c) && c > ' ' && c < 127, where, ": image character ", quote_char(c), " at position ", i,
              " of ", quote_excerpt(image), " is not allowed (image letters must be printable and not one of \" ,.:#\")");
  }
}

bool starts_with(const std::string& s, size_t pos, const char* prefix) {
  return s.compare(pos, std::char_traits<char>::length(prefix), prefix) == 0;
}

// Parses "N" (decimal digits) at pos up to `end`.
int64_t parse_label(const std::string& s, size_t pos, size_t end, const std::string& where) {
  VLM_CHECK(end > pos, where, ": missing number after '", kNumberKey, "' in ", quote_excerpt(s));
  VLM_CHECK(end - pos <= 9, where, ": number ", quote_excerpt(s.substr(pos, end - pos)), " is too long");
  int64_t v = 0;
  for (size_t i = pos; i < end; ++i) {
    VLM_CHECK(s[i] >= '0' && s[i] <= '9', where, ": expected a digit at column ", i + 1, ", found ", quote_char(s[i]),
              " in ", quote_excerpt(s));
    v = v * 10 + (s[i] - '0');
  }
  return v;
}
}  // namespace

std::string format_sequence_unpadded(const Sequence& s) {
  check_image(s.image, "sequence");
  VLM_CHECK(s.label >= 0, "sequence label must be non-negative, got ", s.label);
  std::string number = kNumberKey + std::to_string(s.label);
  std::string image = kImageKey + s.image;
  return s.tmpl == Template::kClassify ? image + ", " + number + "." : number + ", " + image + ".";
}

std::string format_sequence(const Sequence& s, int64_t block_size) {
  std::string text = format_sequence_unpadded(s);
  VLM_CHECK(static_cast<int64_t>(text.size()) <= block_size, "sequence ", quote_excerpt(text), " has ", text.size(),
            " characters, more than the block size ", block_size, ": raise --block_size");
  text.append(static_cast<size_t>(block_size) - text.size(), kPadChar);
  return text;
}

std::string classification_prompt(const std::string& image) {
  check_image(image, "classification prompt");
  return std::string(kImageKey) + image + ", " + kNumberKey;
}

std::string generation_prompt(int64_t label) { return std::string(kNumberKey) + std::to_string(label) + ", " + kImageKey; }

Sequence parse_sequence(const std::string& raw, const std::string& where) {
  std::string line = raw;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  size_t end = line.find_last_not_of(kPadChar);
  VLM_CHECK(end != std::string::npos, where, ": empty line (expected e.g. \"image:ABCDEFGH, number:7.\")");
  std::string body = line.substr(0, end + 1);
  VLM_CHECK(body.back() == '.', where, ": sequence must end with '.' before the '#' padding, got ", quote_excerpt(line));
  body.pop_back();
  VLM_CHECK(body.find(kPadChar) == std::string::npos, where, ": '#' inside the sequence ", quote_excerpt(line));

  Sequence s;
  size_t comma = body.find(", ");
  VLM_CHECK(comma != std::string::npos, where, ": expected \", \" between the two fields in ", quote_excerpt(line));
  if (starts_with(body, 0, kImageKey)) {
    s.tmpl = Template::kClassify;
    s.image = body.substr(6, comma - 6);
    VLM_CHECK(starts_with(body, comma + 2, kNumberKey), where, ": expected \"number:\" after ", quote_excerpt(body.substr(0, comma + 2)),
              " in ", quote_excerpt(line));
    s.label = parse_label(body, comma + 2 + 7, body.size(), where);
  } else if (starts_with(body, 0, kNumberKey)) {
    s.tmpl = Template::kGenerate;
    s.label = parse_label(body, 7, comma, where);
    VLM_CHECK(starts_with(body, comma + 2, kImageKey), where, ": expected \"image:\" after ", quote_excerpt(body.substr(0, comma + 2)),
              " in ", quote_excerpt(line));
    s.image = body.substr(comma + 2 + 6);
  } else {
    VLM_FAIL(where, ": line must start with \"image:\" or \"number:\", got ", quote_excerpt(line));
  }
  check_image(s.image, where);
  return s;
}

std::vector<Sequence> read_sequences(const std::string& path) {
  std::ifstream f(path);
  VLM_CHECK(f, "cannot open sequence file '", path, "' (expected lines like \"image:ABCDEFGH, number:7.#######\")");
  std::vector<Sequence> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    out.push_back(parse_sequence(line, path + ":" + std::to_string(n)));
  }
  VLM_CHECK(!out.empty(), "sequence file '", path, "' is empty");
  return out;
}

void write_sequences(const std::string& path, const std::vector<Sequence>& sequences, int64_t block_size) {
  std::string text;
  text.reserve(sequences.size() * static_cast<size_t>(block_size + 1));
  for (const auto& s : sequences) text += format_sequence(s, block_size) + "\n";
  write_text_atomically(path, text);
}

TemplateMode parse_template_mode(const std::string& name) {
  if (name == "once") return TemplateMode::kOnce;
  if (name == "fresh") return TemplateMode::kFresh;
  if (name == "both") return TemplateMode::kBoth;
  VLM_FAIL("--template_mode must be once, fresh or both, got '", name, "'");
}

std::string to_string(TemplateMode mode) {
  switch (mode) {
    case TemplateMode::kOnce: return "once";
    case TemplateMode::kFresh: return "fresh";
    case TemplateMode::kBoth: return "both";
  }
  return "?";
}

std::vector<Sequence> make_sequences(const std::vector<std::string>& images, const std::vector<int64_t>& labels,
                                     uint64_t seed) {
  VLM_CHECK(images.size() == labels.size(), "make_sequences: ", images.size(), " images but ", labels.size(), " labels");
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution coin(0.5);
  std::vector<Sequence> out(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    out[i].image = images[i];
    out[i].label = labels[i];
    out[i].tmpl = coin(rng) ? Template::kGenerate : Template::kClassify;
  }
  return out;
}

}  // namespace vlm
