#pragma once
// The sequence format: what a line of training text looks like, as data. Named fields, each either
//   a codec field  - the letters a TokenCodec writes for one item (an image, a signal, ...), or
//   a label field  - one word of a fixed vocabulary (the ten digits, or class names such as "sneaker"),
// and the templates (orderings) the fields are written in, padded to the block size. The seed's two templates are one
// instance (SequenceFormat::seed()):
//   image:{image}, number:{number}.      ->  image:ABCDEFGH, number:7.#######
//   number:{number}, image:{image}.      ->  number:7, image:ABCDEFGH.#######
// Everything text-shaped derives from it: the writer and the strict parser (errors name file, line and column), the
// character vocabulary, the prompts for classification and generation, and the constrained-decoding automaton
// (vlm/text/format_automaton.h). Torch-free.
//
//   SequenceFormat f = SequenceFormat::from_json(nlohmann::json::parse(R"({
//     "fields": [{"name": "image", "alphabet": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "length": 8},
//                {"name": "item", "words": ["tshirt", "trouser", "pullover", "dress", "coat",
//                                           "sandal", "shirt", "sneaker", "bag", "boot"]}],
//     "templates": ["image:{image}, item:{item}.", "item:{item}, image:{image}."],
//     "block_size": 40})"), "fashion.json");
//   std::string line = f.format({0, {"ABCDEFGH", "sneaker"}});   // "image:ABCDEFGH, item:sneaker.###..."
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vlm {

struct FieldSpec {
  enum class Kind { kCodec, kLabel };
  std::string name;  ///< the placeholder {name} in templates
  Kind kind = Kind::kCodec;
  // codec fields
  std::string alphabet;     ///< the letters the codec writes (code k = alphabet[k])
  int64_t length = 0;       ///< letters per item; 0 = variable length, ended by the template text that follows
  int64_t max_length = 0;   ///< the longest value of a variable-length field (= length when fixed)
  std::string codec;        ///< the codec kind that writes it, e.g. "vqvae" (informational; "" = any)
  // label fields
  std::vector<std::string> words;  ///< the vocabulary; the class index of a word is its position

  bool is_label() const { return kind == Kind::kLabel; }
  bool is_codec() const { return kind == Kind::kCodec; }
  int64_t num_classes() const { return static_cast<int64_t>(words.size()); }
  /// The index of `word`, or -1.
  int64_t word_index(std::string_view word) const;

  static FieldSpec codec_field(std::string name, std::string alphabet, int64_t length, std::string codec = "");
  static FieldSpec label_field(std::string name, std::vector<std::string> words);
};

/// One line's content: the template it is written in and the value of each field, in the format's field order
/// (letters for a codec field, the word for a label field).
struct Record {
  int64_t tmpl = 0;
  std::vector<std::string> values;
  bool operator==(const Record& o) const { return tmpl == o.tmpl && values == o.values; }
};

class SequenceFormat {
 public:
  /// A piece of a template: literal text, or a field's value.
  struct Segment {
    int64_t field = -1;  ///< -1 = literal
    std::string text;    ///< the literal text
    bool is_field() const { return field >= 0; }
  };

  /// Checks everything a format needs to be written and read back without ambiguity and throws naming the problem:
  /// every template holds every field exactly once, two fields are separated by literal text, the text that ends a
  /// label or variable-length field cannot continue it, the pad character is used nowhere else, the longest line
  /// fits the block size.
  SequenceFormat(std::vector<FieldSpec> fields, std::vector<std::string> templates, int64_t block_size = 32,
                 char pad = '#');

  /// The seed's format: image:{image}, number:{number}. / number:{number}, image:{image}.  (digits 0-9)
  static SequenceFormat seed(const std::string& alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", int64_t image_length = 8,
                             int64_t block_size = 32);
  /// The seed's two templates for any label field: image:{image}, <label>:{<label>}. / <label>:{<label>}, image:{image}.
  /// (Fashion-MNIST: label "item", words "tshirt" ... "boot").
  static SequenceFormat image_and_label(const std::string& label, std::vector<std::string> words,
                                        const std::string& alphabet, int64_t image_length, int64_t block_size = 32);
  /// The same two templates for several label fields, written in the given order (Colored MNIST):
  ///   image:{image}, colour:{colour}, number:{number}.  /  colour:{colour}, number:{number}, image:{image}.
  static SequenceFormat image_and_labels(const std::vector<FieldSpec>& labels, const std::string& alphabet,
                                         int64_t image_length, int64_t block_size = 32);
  /// Strict: an unknown key, a missing one or a bad value is an error naming `where` and the key.
  static SequenceFormat from_json(const nlohmann::json& j, const std::string& where = "sequence format");
  nlohmann::json to_json() const;
  /// Reads a format file (JSON as to_json writes it).
  static SequenceFormat load(const std::string& path);
  void save(const std::string& path) const;

  const std::vector<FieldSpec>& fields() const { return fields_; }
  const FieldSpec& field(int64_t i) const;
  int64_t num_fields() const { return static_cast<int64_t>(fields_.size()); }
  /// The index of the field called `name`; throws listing the fields.
  int64_t field_index(const std::string& name) const;
  /// The first label field, the first codec field (-1 if none).
  int64_t first_label_field() const;
  /// Every label field, in the format's order.
  std::vector<int64_t> label_fields() const;
  int64_t first_codec_field() const;

  int64_t num_templates() const { return static_cast<int64_t>(templates_.size()); }
  const std::string& template_pattern(int64_t t) const;
  const std::vector<Segment>& segments(int64_t t) const;
  int64_t block_size() const { return block_size_; }
  char pad() const { return pad_; }
  /// Every character a line can hold, pad included, sorted by character code: the CharTokenizer's vocabulary.
  std::string vocabulary() const;
  /// The longest unpadded line any record can make.
  int64_t max_line_length() const;

  /// The same format with another block size (checked).
  SequenceFormat with_block_size(int64_t block_size) const;

  /// The line without padding; throws naming the field whose value the format does not allow.
  std::string format_unpadded(const Record& r) const;
  /// The line padded with pad() to block_size().
  std::string format(const Record& r) const;
  /// Parses one line (trailing padding and '\r' allowed). Errors read "<file>:<line>:<column>: expected ..., found
  /// ..." for the template that matched furthest.
  Record parse(std::string_view line, const std::string& file = "<line>", int64_t line_number = 1) const;

  /// Reads a file of lines; blank lines are errors (a truncated file is noticed).
  std::vector<Record> read(const std::string& path) const;
  /// Writes records padded to the block size, one per line, atomically.
  void write(const std::string& path, const std::vector<Record>& records) const;

  /// The fields template `tmpl` writes, in its order.
  std::vector<int64_t> field_order(int64_t tmpl) const;
  /// The fields template `tmpl` writes before `field`, in its order.
  std::vector<int64_t> fields_before(int64_t tmpl, int64_t field) const;
  /// A template in which `field` comes after every other field (the one to generate it with), -1 if none.
  int64_t template_ending_with(int64_t field) const;
  /// The template to classify label `field` from the codec fields: one that writes every codec field before it, with
  /// as few label fields before it as possible (those are summed over when classifying); -1 if none. With one label
  /// field it is the template that ends with the label ("image:{image}, number:{number}.").
  int64_t reading_template(int64_t field) const;
  /// The text of template `tmpl` up to where `field`'s value begins, every earlier field filled from `r`.
  std::string prompt(const Record& r, int64_t tmpl, int64_t field) const;
  /// The question that asks a model for `field`: the text of the template that writes `field` last, up to where its
  /// value begins, the other fields taken from `given` (by field index; values the template does not write are
  /// ignored). Throws when no template ends with `field` or a given value is not the format's.
  ///   format.prompt_for(format.field_index("image"), {"", "7"})  // the seed's "number:7, image:"
  std::string prompt_for(int64_t field, const std::vector<std::string>& given) const;
  /// The value of `field` in a model's answer to prompt_for(field, ...): prompt + completion must be a line of the
  /// format written by that template; "" when it is not (an invalid answer, which the callers count).
  std::string answer(int64_t field, const std::string& prompt, const std::string& completion) const;
  /// The first character after `field`'s value in `tmpl` (the pad character when the field ends the template).
  char delimiter_after(int64_t tmpl, int64_t field) const;

  /// Checks one field value; throws naming the field and the offending character or word.
  void check_value(int64_t field, std::string_view value, const std::string& where = "record") const;

  bool operator==(const SequenceFormat& o) const;
  bool operator!=(const SequenceFormat& o) const { return !(*this == o); }

 private:
  std::vector<FieldSpec> fields_;
  std::vector<std::string> patterns_;
  std::vector<std::vector<Segment>> templates_;
  int64_t block_size_;
  char pad_;
};

/// The classes of several label fields taken together: a combination writes one word of each field, numbered in mixed
/// radix with the first field most significant. For colour (4 words) before number (10 words), "red 7" is 0 * 10 + 7;
/// for one label field the combinations are its words. What a data set with two labels classifies and generates.
struct LabelCombinations {
  std::vector<int64_t> fields;  ///< label fields, in the format's order
  std::vector<int64_t> sizes;   ///< words per field
  int64_t count() const;        ///< the product of the sizes
  /// The class in each field of `combination`.
  std::vector<int64_t> classes(int64_t combination) const;
  int64_t index(const std::vector<int64_t>& classes) const;
  /// The combination's words joined by spaces ("red 7"; "7" for one field).
  std::string name(const SequenceFormat& format, int64_t combination) const;
  std::vector<std::string> names(const SequenceFormat& format) const;
  /// The combination called `name`, -1 if none.
  int64_t find(const SequenceFormat& format, const std::string& name) const;
};
/// The combinations of the given label fields (empty: every label field of the format).
LabelCombinations label_combinations(const SequenceFormat& format, std::vector<int64_t> fields = {});

/// How templates are drawn for the items of a data set.
enum class TemplateMode {
  kOnce,   ///< the seed: one uniform draw per item, kept for the whole run (or as stored in the file)
  kFresh,  ///< drawn anew every time an item is used in a batch
  kAll,    ///< every item appears in every template
};
TemplateMode parse_template_mode(const std::string& name);  ///< "once", "fresh", "all" ("both" = "all"); else an error
std::string to_string(TemplateMode mode);

/// Records from per-field values (values[f][i] = field f of item i), one template per item drawn uniformly from
/// `seed` (the seed's 50/50 draw for two templates).
std::vector<Record> make_records(const SequenceFormat& format, const std::vector<std::vector<std::string>>& values,
                                 uint64_t seed);

}  // namespace vlm
