#pragma once
// Constrained decoding from a SequenceFormat: a cursor reads a line one character at a time and says which
// characters may come next, so a sampler can mask everything else. Literal template text is forced, a codec field
// takes letters of its alphabet (a fixed count, or up to max_length and then the text that ends it), and a label
// field takes only whole words of its vocabulary (word-level: after "sn" only the letters that continue "sneaker"),
// so a constrained model can never leave the format. Torch-free.
//
//   FormatCursor c(format);
//   c.push("number:7, image:");          // throws if the text leaves the format
//   std::string next = c.allowed();     // "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
//   ... after "ABCDEFGH." c.complete() is true and allowed() is the pad character only
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vlm/text/sequence_format.h"

namespace vlm {

class FormatCursor {
 public:
  /// `format` must outlive the cursor. Starts before the first character, with every template possible.
  explicit FormatCursor(const SequenceFormat& format);

  /// Reads one character; returns false (and leaves the cursor unchanged) if no template allows it.
  bool try_push(char c);
  /// Reads text; throws naming the column where it leaves the format.
  void push(std::string_view text);

  /// The characters allowed next, sorted; the pad character stands for "the line may end here".
  std::string allowed() const;
  /// Whether the text read so far is a whole line of some template (only padding may follow).
  bool complete() const;
  /// Characters read.
  int64_t length() const { return length_; }
  /// The templates still possible.
  std::vector<int64_t> templates() const;

 private:
  struct State {
    int64_t tmpl = 0;
    size_t segment = 0;    // the segment being read
    size_t offset = 0;     // characters of it read
    std::string partial;   // a label field's characters so far
    bool done = false;     // past the last segment
  };
  bool advance(State& s, char c) const;
  void settle(State& s) const;  // moves past a finished literal or fixed-length field
  void add_allowed(const State& s, std::string& out) const;

  const SequenceFormat* format_;
  std::vector<State> states_;
  int64_t length_ = 0;
};

/// Whether `text` (unpadded) is a whole line of the format.
bool format_matches(const SequenceFormat& format, std::string_view text);

}  // namespace vlm
