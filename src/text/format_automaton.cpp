#include "vlm/text/format_automaton.h"

#include <algorithm>
#include <set>

#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {

FormatCursor::FormatCursor(const SequenceFormat& format) : format_(&format) {
  for (int64_t t = 0; t < format.num_templates(); ++t) {
    State s;
    s.tmpl = t;
    settle(s);
    states_.push_back(s);
  }
}

void FormatCursor::settle(State& s) const {
  const auto& segs = format_->segments(s.tmpl);
  while (!s.done) {
    const auto& seg = segs[s.segment];
    bool finished = seg.is_field() ? (format_->field(seg.field).is_codec() && format_->field(seg.field).length > 0 &&
                                      static_cast<int64_t>(s.offset) == format_->field(seg.field).length)
                                   : s.offset == seg.text.size();
    if (!finished) return;
    ++s.segment, s.offset = 0, s.partial.clear();
    s.done = s.segment == segs.size();
  }
}

bool FormatCursor::advance(State& s, char c) const {
  if (s.done) return false;
  const auto& segs = format_->segments(s.tmpl);
  const auto& seg = segs[s.segment];
  if (!seg.is_field()) {
    if (seg.text[s.offset] != c) return false;
    ++s.offset;
    settle(s);
    return true;
  }
  const FieldSpec& f = format_->field(seg.field);
  const char delim = format_->delimiter_after(s.tmpl, seg.field);
  if (f.is_codec()) {
    if (f.alphabet.find(c) != std::string::npos && static_cast<int64_t>(s.offset) < f.max_length) {
      ++s.offset;
      settle(s);
      return true;
    }
    if (f.length == 0 && s.offset >= 1 && c == delim && s.segment + 1 < segs.size()) {
      ++s.segment, s.offset = 0;
      return advance(s, c);
    }
    return false;
  }
  std::string next = s.partial + c;
  for (const auto& w : f.words)
    if (w.compare(0, next.size(), next) == 0) {
      s.partial = std::move(next);
      ++s.offset;
      return true;
    }
  if (c == delim && f.word_index(s.partial) >= 0 && s.segment + 1 < segs.size()) {
    ++s.segment, s.offset = 0, s.partial.clear();
    return advance(s, c);
  }
  return false;
}

bool FormatCursor::try_push(char c) {
  std::vector<State> next;
  for (State s : states_)
    if (advance(s, c)) next.push_back(std::move(s));
  if (next.empty()) return false;
  states_ = std::move(next);
  ++length_;
  return true;
}

void FormatCursor::push(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i)
    VLM_CHECK(try_push(text[i]), "text ", quote_excerpt(text), " leaves the sequence format at column ", length_ + 1,
              ": ", quote_char(text[i]), " is not one of \"", allowed(), "\"");
}

void FormatCursor::add_allowed(const State& s, std::string& out) const {
  if (s.done) {
    out += format_->pad();
    return;
  }
  const auto& segs = format_->segments(s.tmpl);
  const auto& seg = segs[s.segment];
  if (!seg.is_field()) {
    out += seg.text[s.offset];
    return;
  }
  const FieldSpec& f = format_->field(seg.field);
  const char delim = format_->delimiter_after(s.tmpl, seg.field);
  if (f.is_codec()) {
    if (static_cast<int64_t>(s.offset) < f.max_length) out += f.alphabet;
    if (f.length == 0 && s.offset >= 1) out += delim;
    return;
  }
  for (const auto& w : f.words)
    if (w.size() > s.partial.size() && w.compare(0, s.partial.size(), s.partial) == 0) out += w[s.partial.size()];
  if (f.word_index(s.partial) >= 0) out += delim;
}

std::string FormatCursor::allowed() const {
  std::string all;
  for (const auto& s : states_) add_allowed(s, all);
  std::set<char> unique(all.begin(), all.end());
  return std::string(unique.begin(), unique.end());
}

bool FormatCursor::complete() const {
  return std::any_of(states_.begin(), states_.end(), [&](const State& s) {
    if (s.done) return true;
    // A label or variable-length field that ends the template ends with the line.
    const auto& segs = format_->segments(s.tmpl);
    if (s.segment + 1 != segs.size() || !segs[s.segment].is_field()) return false;
    const FieldSpec& f = format_->field(segs[s.segment].field);
    return f.is_label() ? f.word_index(s.partial) >= 0 : (f.length == 0 && s.offset >= 1);
  });
}

std::vector<int64_t> FormatCursor::templates() const {
  std::vector<int64_t> out;
  for (const auto& s : states_) out.push_back(s.tmpl);
  return out;
}

bool format_matches(const SequenceFormat& format, std::string_view text) {
  FormatCursor c(format);
  for (char ch : text)
    if (!c.try_push(ch)) return false;
  return c.complete();
}

}  // namespace vlm
