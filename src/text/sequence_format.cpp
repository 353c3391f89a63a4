#include "vlm/text/sequence_format.h"

#include <algorithm>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {

namespace {

bool printable(char c) { return c >= ' ' && c < 127; }

std::string join_words(const std::vector<std::string>& words, size_t max_words = 12) {
  std::string out;
  for (size_t i = 0; i < words.size() && i < max_words; ++i) out += (i ? ", " : "") + words[i];
  if (words.size() > max_words) out += ", ...";
  return out;
}

// Where a template's match of a line stopped, and what it expected there.
struct MatchFailure {
  size_t column = 0;  // 0-based
  std::string expected;
};

}  // namespace

int64_t FieldSpec::word_index(std::string_view word) const {
  for (size_t i = 0; i < words.size(); ++i)
    if (words[i] == word) return static_cast<int64_t>(i);
  return -1;
}

FieldSpec FieldSpec::codec_field(std::string name, std::string alphabet, int64_t length, std::string codec) {
  FieldSpec f;
  f.name = std::move(name);
  f.kind = Kind::kCodec;
  f.alphabet = std::move(alphabet);
  f.length = length;
  f.max_length = length;
  f.codec = std::move(codec);
  return f;
}

FieldSpec FieldSpec::label_field(std::string name, std::vector<std::string> words) {
  FieldSpec f;
  f.name = std::move(name);
  f.kind = Kind::kLabel;
  f.words = std::move(words);
  return f;
}

SequenceFormat::SequenceFormat(std::vector<FieldSpec> fields, std::vector<std::string> templates, int64_t block_size,
                               char pad)
    : fields_(std::move(fields)), patterns_(std::move(templates)), block_size_(block_size), pad_(pad) {
  VLM_CHECK(!fields_.empty(), "sequence format: no fields");
  VLM_CHECK(!patterns_.empty(), "sequence format: no templates");
  VLM_CHECK(printable(pad_) && pad_ != ' ', "sequence format: the pad character must be printable, got ",
            quote_char(pad_));
  std::set<std::string> names;
  for (auto& f : fields_) {
    VLM_CHECK(!f.name.empty() && std::all_of(f.name.begin(), f.name.end(),
                                             [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }),
              "sequence format: field name ", quote_excerpt(f.name), " must be letters, digits or '_'");
    VLM_CHECK(names.insert(f.name).second, "sequence format: two fields are called '", f.name, "'");
    if (f.is_codec()) {
      VLM_CHECK(!f.alphabet.empty(), "sequence format: codec field '", f.name, "' has an empty alphabet");
      std::set<char> seen;
      for (char c : f.alphabet) {
        VLM_CHECK(printable(c) && c != ' ' && c != pad_, "sequence format: codec field '", f.name, "': alphabet letter ",
                  quote_char(c), " must be printable, not a space and not the pad character");
        VLM_CHECK(seen.insert(c).second, "sequence format: codec field '", f.name, "': alphabet repeats ", quote_char(c));
      }
      VLM_CHECK(f.length >= 0, "sequence format: codec field '", f.name, "': negative length ", f.length);
      if (f.length > 0) f.max_length = f.length;
      VLM_CHECK(f.max_length > 0, "sequence format: codec field '", f.name,
                "' needs a length (letters per item) or, when variable, a max_length");
    } else {
      VLM_CHECK(!f.words.empty(), "sequence format: label field '", f.name, "' has no words");
      std::set<std::string> seen;
      for (const auto& w : f.words) {
        VLM_CHECK(!w.empty(), "sequence format: label field '", f.name, "' has an empty word");
        for (char c : w)
          VLM_CHECK(printable(c) && c != pad_, "sequence format: label field '", f.name, "': word ", quote_excerpt(w),
                    " holds ", quote_char(c), " (words must be printable and not use the pad character)");
        VLM_CHECK(seen.insert(w).second, "sequence format: label field '", f.name, "' lists '", w, "' twice");
      }
    }
  }

  for (const auto& pattern : patterns_) {
    const std::string where = "sequence format: template " + quote_excerpt(pattern);
    std::vector<Segment> segs;
    std::vector<int> count(fields_.size(), 0);
    for (size_t i = 0; i < pattern.size();) {
      if (pattern[i] == '{') {
        size_t close = pattern.find('}', i);
        VLM_CHECK(close != std::string::npos, where, ": '{' at column ", i + 1, " is not closed");
        int64_t f = field_index(pattern.substr(i + 1, close - i - 1));
        VLM_CHECK(segs.empty() || !segs.back().is_field(), where, ": fields '", fields_[segs.back().field].name,
                  "' and '", fields_[f].name, "' need literal text between them");
        ++count[f];
        segs.push_back({f, ""});
        i = close + 1;
      } else {
        char c = pattern[i];
        VLM_CHECK(c != '}', where, ": '}' at column ", i + 1, " without '{'");
        VLM_CHECK(printable(c) && c != pad_, where, ": character ", quote_char(c), " at column ", i + 1,
                  " must be printable and not the pad character");
        if (segs.empty() || segs.back().is_field()) segs.push_back({-1, ""});
        segs.back().text += c;
        ++i;
      }
    }
    for (size_t f = 0; f < fields_.size(); ++f)
      VLM_CHECK(count[f] == 1, where, ": field '", fields_[f].name, "' appears ", count[f],
                " times (every template holds every field once)");
    templates_.push_back(std::move(segs));
  }

  // The text after a label or variable-length field ends it: it must not be able to continue the value.
  for (int64_t t = 0; t < num_templates(); ++t)
    for (int64_t f = 0; f < num_fields(); ++f) {
      const FieldSpec& spec = fields_[f];
      if (spec.is_codec() && spec.length > 0) continue;
      char d = delimiter_after(t, f);
      bool clash = spec.is_codec() ? spec.alphabet.find(d) != std::string::npos
                                   : std::any_of(spec.words.begin(), spec.words.end(),
                                                 [&](const std::string& w) { return w.find(d) != std::string::npos; });
      VLM_CHECK(!clash, "sequence format: template ", quote_excerpt(patterns_[t]), ": the character ", quote_char(d),
                " after field '", spec.name, "' also occurs in its ", spec.is_codec() ? "alphabet" : "words",
                ", so the field's end would be ambiguous");
    }
  VLM_CHECK(max_line_length() <= block_size_, "sequence format: the longest line has ", max_line_length(),
            " characters, more than the block size ", block_size_, " (raise block_size)");
}

SequenceFormat SequenceFormat::seed(const std::string& alphabet, int64_t image_length, int64_t block_size) {
  return image_and_label("number", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, alphabet, image_length,
                         block_size);
}

SequenceFormat SequenceFormat::image_and_label(const std::string& label, std::vector<std::string> words,
                                               const std::string& alphabet, int64_t image_length,
                                               int64_t block_size) {
  return SequenceFormat({FieldSpec::codec_field("image", alphabet, image_length),
                         FieldSpec::label_field(label, std::move(words))},
                        {"image:{image}, " + label + ":{" + label + "}.", label + ":{" + label + "}, image:{image}."},
                        block_size, '#');
}

SequenceFormat SequenceFormat::image_and_labels(const std::vector<FieldSpec>& labels, const std::string& alphabet,
                                                int64_t image_length, int64_t block_size) {
  VLM_CHECK(!labels.empty(), "image_and_labels: no label field");
  std::vector<FieldSpec> fields = {FieldSpec::codec_field("image", alphabet, image_length)};
  std::string reading = "image:{image}", drawing;
  for (const auto& l : labels) {
    VLM_CHECK(l.is_label(), "image_and_labels: field '", l.name, "' is not a label field");
    fields.push_back(l);
    reading += ", " + l.name + ":{" + l.name + "}";
    drawing += l.name + ":{" + l.name + "}, ";
  }
  return SequenceFormat(std::move(fields), {reading + ".", drawing + "image:{image}."}, block_size, '#');
}

const FieldSpec& SequenceFormat::field(int64_t i) const {
  VLM_CHECK(i >= 0 && i < num_fields(), "sequence format: no field ", i, " (it has ", num_fields(), ")");
  return fields_[i];
}

int64_t SequenceFormat::field_index(const std::string& name) const {
  for (size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].name == name) return static_cast<int64_t>(i);
  std::vector<std::string> names;
  for (const auto& f : fields_) names.push_back(f.name);
  VLM_FAIL("sequence format: no field '", name, "' (fields: ", join_words(names), ")");
}

int64_t SequenceFormat::first_label_field() const {
  for (size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].is_label()) return static_cast<int64_t>(i);
  return -1;
}

std::vector<int64_t> SequenceFormat::label_fields() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].is_label()) out.push_back(static_cast<int64_t>(i));
  return out;
}

int64_t SequenceFormat::first_codec_field() const {
  for (size_t i = 0; i < fields_.size(); ++i)
    if (fields_[i].is_codec()) return static_cast<int64_t>(i);
  return -1;
}

const std::string& SequenceFormat::template_pattern(int64_t t) const {
  VLM_CHECK(t >= 0 && t < num_templates(), "sequence format: no template ", t, " (it has ", num_templates(), ")");
  return patterns_[t];
}

const std::vector<SequenceFormat::Segment>& SequenceFormat::segments(int64_t t) const {
  VLM_CHECK(t >= 0 && t < num_templates(), "sequence format: no template ", t, " (it has ", num_templates(), ")");
  return templates_[t];
}

std::string SequenceFormat::vocabulary() const {
  std::set<char> chars{pad_};
  for (const auto& segs : templates_)
    for (const auto& s : segs) chars.insert(s.text.begin(), s.text.end());
  for (const auto& f : fields_) {
    chars.insert(f.alphabet.begin(), f.alphabet.end());
    for (const auto& w : f.words) chars.insert(w.begin(), w.end());
  }
  return std::string(chars.begin(), chars.end());
}

int64_t SequenceFormat::max_line_length() const {
  int64_t longest = 0;
  for (const auto& segs : templates_) {
    int64_t n = 0;
    for (const auto& s : segs) {
      if (!s.is_field()) {
        n += static_cast<int64_t>(s.text.size());
      } else if (fields_[s.field].is_codec()) {
        n += fields_[s.field].max_length;
      } else {
        size_t w = 0;
        for (const auto& word : fields_[s.field].words) w = std::max(w, word.size());
        n += static_cast<int64_t>(w);
      }
    }
    longest = std::max(longest, n);
  }
  return longest;
}

SequenceFormat SequenceFormat::with_block_size(int64_t block_size) const {
  return SequenceFormat(fields_, patterns_, block_size, pad_);
}

void SequenceFormat::check_value(int64_t f, std::string_view value, const std::string& where) const {
  const FieldSpec& spec = field(f);
  if (spec.is_label()) {
    VLM_CHECK(spec.word_index(value) >= 0, where, ": ", quote_excerpt(value), " is not a word of field '", spec.name,
              "' (", join_words(spec.words), ")");
    return;
  }
  const auto n = static_cast<int64_t>(value.size());
  VLM_CHECK(spec.length > 0 ? n == spec.length : (n >= 1 && n <= spec.max_length), where, ": field '", spec.name,
            "' needs ", spec.length > 0 ? std::to_string(spec.length) : "1 to " + std::to_string(spec.max_length),
            " letters, got ", n, " in ", quote_excerpt(value));
  for (size_t i = 0; i < value.size(); ++i)
    VLM_CHECK(spec.alphabet.find(value[i]) != std::string::npos, where, ": field '", spec.name, "': ",
              quote_char(value[i]), " at position ", i, " of ", quote_excerpt(value), " is not in the alphabet \"",
              spec.alphabet, "\"");
}

std::string SequenceFormat::format_unpadded(const Record& r) const {
  VLM_CHECK(r.tmpl >= 0 && r.tmpl < num_templates(), "record: template ", r.tmpl, " outside the format's ",
            num_templates(), " templates");
  VLM_CHECK(static_cast<int64_t>(r.values.size()) == num_fields(), "record: ", r.values.size(),
            " values for a format of ", num_fields(), " fields");
  std::string out;
  for (const auto& s : templates_[r.tmpl]) {
    if (!s.is_field()) {
      out += s.text;
    } else {
      check_value(s.field, r.values[s.field], "record");
      out += r.values[s.field];
    }
  }
  return out;
}

std::string SequenceFormat::format(const Record& r) const {
  std::string text = format_unpadded(r);
  VLM_CHECK(static_cast<int64_t>(text.size()) <= block_size_, "sequence ", quote_excerpt(text), " has ", text.size(),
            " characters, more than the block size ", block_size_);
  text.append(static_cast<size_t>(block_size_) - text.size(), pad_);
  return text;
}

Record SequenceFormat::parse(std::string_view line, const std::string& file, int64_t line_number) const {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const std::string where = file + ":" + std::to_string(line_number);
  size_t end = line.find_last_not_of(pad_);
  VLM_CHECK(end != std::string_view::npos, where, ":1: empty line (expected e.g. ",
            quote_excerpt(template_pattern(0)), ")");
  const std::string_view body = line.substr(0, end + 1);

  MatchFailure best;
  std::vector<std::string> expected_at_best;
  for (int64_t t = 0; t < num_templates(); ++t) {
    Record r{t, std::vector<std::string>(fields_.size())};
    size_t pos = 0;
    MatchFailure fail;
    bool ok = true;
    for (size_t si = 0; si < templates_[t].size() && ok; ++si) {
      const Segment& s = templates_[t][si];
      if (!s.is_field()) {
        for (size_t k = 0; k < s.text.size(); ++k, ++pos)
          if (pos >= body.size() || body[pos] != s.text[k]) {
            fail = {pos, quote_excerpt(s.text.substr(k))};
            ok = false;
            break;
          }
        continue;
      }
      const FieldSpec& spec = fields_[s.field];
      const size_t start = pos;
      if (spec.is_codec()) {
        const size_t limit = static_cast<size_t>(spec.max_length);
        while (pos < body.size() && pos - start < limit && spec.alphabet.find(body[pos]) != std::string::npos) ++pos;
        const size_t need = spec.length > 0 ? static_cast<size_t>(spec.length) : 1;
        if (pos - start < need) {
          fail = {pos, "a letter of field '" + spec.name + "' (\"" + spec.alphabet + "\")"};
          ok = false;
        }
      } else {
        const char d = delimiter_after(t, s.field);
        size_t stop = body.find(d, start);
        if (stop == std::string_view::npos) stop = body.size();
        if (spec.word_index(body.substr(start, stop - start)) < 0) {
          fail = {start, "a word of field '" + spec.name + "' (" + join_words(spec.words) + ")"};
          ok = false;
        }
        pos = stop;
      }
      r.values[s.field] = std::string(body.substr(start, pos - start));
    }
    if (ok && pos == body.size()) return r;
    if (ok) fail = {pos, "the end of the line (padding '" + std::string(1, pad_) + "')"};
    if (fail.column > best.column || expected_at_best.empty()) {
      if (fail.column > best.column) expected_at_best.clear();
      best = fail;
    }
    if (fail.column == best.column &&
        std::find(expected_at_best.begin(), expected_at_best.end(), fail.expected) == expected_at_best.end())
      expected_at_best.push_back(fail.expected);
  }
  std::string expected;
  for (size_t i = 0; i < expected_at_best.size(); ++i) expected += (i ? " or " : "") + expected_at_best[i];
  const std::string found = best.column < body.size() ? quote_char(body[best.column]) : "the end of the text";
  VLM_FAIL(where, ":", best.column + 1, ": expected ", expected, ", found ", found, " in ", quote_excerpt(line));
}

std::vector<Record> SequenceFormat::read(const std::string& path) const {
  std::ifstream f(path, std::ios::binary);
  VLM_CHECK(f, "cannot open sequence file '", path, "' (expected lines like ", quote_excerpt(patterns_[0]), ")");
  std::vector<Record> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) out.push_back(parse(line, path, ++n));
  VLM_CHECK(!out.empty(), "sequence file '", path, "' is empty");
  return out;
}

void SequenceFormat::write(const std::string& path, const std::vector<Record>& records) const {
  std::string text;
  text.reserve(records.size() * static_cast<size_t>(block_size_ + 1));
  for (const auto& r : records) text += format(r) + "\n";
  write_text_atomically(path, text);
}

std::vector<int64_t> SequenceFormat::field_order(int64_t tmpl) const {
  std::vector<int64_t> out;
  for (const auto& s : segments(tmpl))
    if (s.is_field()) out.push_back(s.field);
  return out;
}

std::vector<int64_t> SequenceFormat::fields_before(int64_t tmpl, int64_t f) const {
  auto order = field_order(tmpl);
  const auto at = std::find(order.begin(), order.end(), f);
  VLM_CHECK(at != order.end(), "sequence format: template ", tmpl, " has no field ", f);
  return {order.begin(), at};
}

int64_t SequenceFormat::template_ending_with(int64_t f) const {
  field(f);
  for (int64_t t = 0; t < num_templates(); ++t)
    if (field_order(t).back() == f) return t;
  return -1;
}

int64_t SequenceFormat::reading_template(int64_t f) const {
  VLM_CHECK(field(f).is_label(), "reading_template: field '", field(f).name, "' is not a label field");
  const int64_t codecs = num_fields() - static_cast<int64_t>(label_fields().size());
  int64_t best = -1, fewest = 0;
  for (int64_t t = 0; t < num_templates(); ++t) {
    const auto before = fields_before(t, f);  // every template holds every field
    const int64_t labels_before =
        std::count_if(before.begin(), before.end(), [&](int64_t g) { return fields_[g].is_label(); });
    const bool codecs_before = static_cast<int64_t>(before.size()) - labels_before == codecs;
    if (codecs_before && (best < 0 || labels_before < fewest)) best = t, fewest = labels_before;
  }
  return best;
}

std::string SequenceFormat::prompt(const Record& r, int64_t tmpl, int64_t f) const {
  std::string out;
  for (const auto& s : segments(tmpl)) {
    if (s.field == f) return out;
    if (!s.is_field()) {
      out += s.text;
    } else {
      VLM_CHECK(s.field < static_cast<int64_t>(r.values.size()), "prompt: no value for field '", fields_[s.field].name,
                "'");
      check_value(s.field, r.values[s.field], "prompt");
      out += r.values[s.field];
    }
  }
  VLM_FAIL("prompt: template ", tmpl, " has no field ", f);
}

std::string SequenceFormat::prompt_for(int64_t f, const std::vector<std::string>& given) const {
  const int64_t tmpl = template_ending_with(f);
  VLM_CHECK(tmpl >= 0, "prompt_for: no template writes field '", field(f).name, "' last");
  Record r{tmpl, given};
  r.values.resize(fields_.size());
  return prompt(r, tmpl, f);
}

std::string SequenceFormat::answer(int64_t f, const std::string& prompt_text, const std::string& completion) const {
  const int64_t tmpl = template_ending_with(f);
  VLM_CHECK(tmpl >= 0, "answer: no template writes field '", field(f).name, "' last");
  try {
    Record parsed = parse(prompt_text + completion);
    // The prompt's own values are its prefix of the line, so the template is the only thing left to check.
    if (parsed.tmpl == tmpl && format_unpadded(parsed).compare(0, prompt_text.size(), prompt_text) == 0)
      return parsed.values[f];
  } catch (const Error&) {
    // not a line of the format
  }
  return "";
}

char SequenceFormat::delimiter_after(int64_t tmpl, int64_t f) const {
  const auto& segs = segments(tmpl);
  for (size_t i = 0; i < segs.size(); ++i)
    if (segs[i].field == f) return i + 1 < segs.size() ? segs[i + 1].text[0] : pad_;
  VLM_FAIL("sequence format: template ", tmpl, " has no field ", f);
}

bool SequenceFormat::operator==(const SequenceFormat& o) const { return to_json() == o.to_json(); }

// ---- JSON ----------------------------------------------------------------------------------------------------------

nlohmann::json SequenceFormat::to_json() const {
  nlohmann::json fields = nlohmann::json::array();
  for (const auto& f : fields_) {
    nlohmann::json j{{"name", f.name}};
    if (f.is_label()) {
      j["words"] = f.words;
    } else {
      j["alphabet"] = f.alphabet;
      if (f.length > 0) j["length"] = f.length;
      else j["max_length"] = f.max_length;
      if (!f.codec.empty()) j["codec"] = f.codec;
    }
    fields.push_back(std::move(j));
  }
  return {{"fields", fields}, {"templates", patterns_}, {"block_size", block_size_}, {"pad", std::string(1, pad_)}};
}

namespace {
void check_keys(const nlohmann::json& j, std::initializer_list<const char*> allowed, const std::string& where) {
  VLM_CHECK(j.is_object(), where, ": expected a JSON object, got ", quote_excerpt(j.dump()));
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* a : allowed) known |= key == a;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    VLM_CHECK(known, where, ": unknown key '", key, "' (known: ", list, ")");
  }
}
template <class T>
T get(const nlohmann::json& j, const char* key, const std::string& where) {
  VLM_CHECK(j.contains(key), where, ": missing key '", key, "'");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    VLM_FAIL(where, ": key '", key, "' has the wrong type: ", quote_excerpt(j.at(key).dump()));
  }
}
}  // namespace

SequenceFormat SequenceFormat::from_json(const nlohmann::json& j, const std::string& where) {
  check_keys(j, {"fields", "templates", "block_size", "pad"}, where);
  auto fields_json = j.contains("fields") ? j.at("fields") : nlohmann::json();
  VLM_CHECK(fields_json.is_array() && !fields_json.empty(), where, ": 'fields' must be a non-empty array");
  std::vector<FieldSpec> fields;
  for (size_t i = 0; i < fields_json.size(); ++i) {
    const auto& fj = fields_json[i];
    const std::string w = where + ": fields[" + std::to_string(i) + "]";
    check_keys(fj, {"name", "words", "alphabet", "length", "max_length", "codec"}, w);
    auto name = get<std::string>(fj, "name", w);
    if (fj.contains("words")) {
      VLM_CHECK(!fj.contains("alphabet") && !fj.contains("length") && !fj.contains("max_length"), w,
                ": a field has either 'words' (a label field) or 'alphabet' (a codec field), not both");
      fields.push_back(FieldSpec::label_field(name, get<std::vector<std::string>>(fj, "words", w)));
    } else {
      VLM_CHECK(fj.contains("alphabet"), w, ": a field needs 'words' (a label field) or 'alphabet' (a codec field)");
      FieldSpec f = FieldSpec::codec_field(name, get<std::string>(fj, "alphabet", w),
                                           fj.contains("length") ? get<int64_t>(fj, "length", w) : 0,
                                           fj.contains("codec") ? get<std::string>(fj, "codec", w) : "");
      if (fj.contains("max_length")) {
        VLM_CHECK(f.length == 0, w, ": 'max_length' is for variable-length fields (without 'length')");
        f.max_length = get<int64_t>(fj, "max_length", w);
      }
      fields.push_back(std::move(f));
    }
  }
  auto templates = get<std::vector<std::string>>(j, "templates", where);
  const int64_t block = j.contains("block_size") ? get<int64_t>(j, "block_size", where) : 32;
  const std::string pad = j.contains("pad") ? get<std::string>(j, "pad", where) : "#";
  VLM_CHECK(pad.size() == 1, where, ": 'pad' must be one character, got ", quote_excerpt(pad));
  try {
    return SequenceFormat(std::move(fields), std::move(templates), block, pad[0]);
  } catch (const Error& e) {
    VLM_FAIL(where, ": ", e.what());
  }
}

SequenceFormat SequenceFormat::load(const std::string& path) {
  std::ifstream f(path);
  VLM_CHECK(f, "cannot open sequence format file '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    VLM_FAIL("sequence format file '", path, "' is not valid JSON: ", e.what());
  }
  return from_json(j, path);
}

void SequenceFormat::save(const std::string& path) const { write_text_atomically(path, to_json().dump(2) + "\n"); }

// ---- data sets -----------------------------------------------------------------------------------------------------

TemplateMode parse_template_mode(const std::string& name) {
  if (name == "once") return TemplateMode::kOnce;
  if (name == "fresh") return TemplateMode::kFresh;
  if (name == "all" || name == "both") return TemplateMode::kAll;
  VLM_FAIL("--template_mode must be once, fresh or all, got '", name, "'");
}

std::string to_string(TemplateMode mode) {
  switch (mode) {
    case TemplateMode::kOnce: return "once";
    case TemplateMode::kFresh: return "fresh";
    case TemplateMode::kAll: return "all";
  }
  return "?";
}

int64_t LabelCombinations::count() const {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

std::vector<int64_t> LabelCombinations::classes(int64_t combination) const {
  VLM_CHECK(combination >= 0 && combination < count(), "label combinations: no combination ", combination, " (there are ",
            count(), ")");
  std::vector<int64_t> out(sizes.size());
  for (size_t k = sizes.size(); k-- > 0;) out[k] = combination % sizes[k], combination /= sizes[k];
  return out;
}

int64_t LabelCombinations::index(const std::vector<int64_t>& classes) const {
  VLM_CHECK(classes.size() == sizes.size(), "label combinations: ", classes.size(), " classes for ", sizes.size(),
            " fields");
  int64_t out = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    VLM_CHECK(classes[k] >= 0 && classes[k] < sizes[k], "label combinations: class ", classes[k], " of field ", k,
              " is not in [0, ", sizes[k], ")");
    out = out * sizes[k] + classes[k];
  }
  return out;
}

std::string LabelCombinations::name(const SequenceFormat& format, int64_t combination) const {
  const auto c = classes(combination);
  std::string out;
  for (size_t k = 0; k < c.size(); ++k) out += (k ? " " : "") + format.field(fields[k]).words[c[k]];
  return out;
}

std::vector<std::string> LabelCombinations::names(const SequenceFormat& format) const {
  std::vector<std::string> out;
  for (int64_t k = 0; k < count(); ++k) out.push_back(name(format, k));
  return out;
}

int64_t LabelCombinations::find(const SequenceFormat& format, const std::string& name_) const {
  for (int64_t k = 0; k < count(); ++k)
    if (name(format, k) == name_) return k;
  return -1;
}

LabelCombinations label_combinations(const SequenceFormat& format, std::vector<int64_t> fields) {
  if (fields.empty()) fields = format.label_fields();
  LabelCombinations out;
  for (int64_t f : fields) {
    VLM_CHECK(format.field(f).is_label(), "label_combinations: field '", format.field(f).name, "' is not a label field");
    out.fields.push_back(f);
    out.sizes.push_back(format.field(f).num_classes());
  }
  return out;
}

std::vector<Record> make_records(const SequenceFormat& format, const std::vector<std::vector<std::string>>& values,
                                 uint64_t seed) {
  VLM_CHECK(static_cast<int64_t>(values.size()) == format.num_fields(), "make_records: ", values.size(),
            " value columns for a format of ", format.num_fields(), " fields");
  const size_t n = values[0].size();
  for (size_t f = 0; f < values.size(); ++f)
    VLM_CHECK(values[f].size() == n, "make_records: field '", format.field(static_cast<int64_t>(f)).name, "' has ",
              values[f].size(), " values, field '", format.field(0).name, "' ", n);
  std::mt19937_64 rng(seed);
  // Two templates: the seed's coin (kept so that the same seed draws the same templates as before).
  std::bernoulli_distribution coin(0.5);
  std::uniform_int_distribution<int64_t> pick(0, format.num_templates() - 1);
  std::vector<Record> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].values.resize(values.size());
    for (size_t f = 0; f < values.size(); ++f) out[i].values[f] = values[f][i];
    out[i].tmpl = format.num_templates() == 2 ? (coin(rng) ? 1 : 0) : pick(rng);
    format.format_unpadded(out[i]);  // checks every value
  }
  return out;
}

}  // namespace vlm
