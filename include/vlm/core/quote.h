#pragma once
// Quoting outside input inside error messages: a 10 MB line or a binary file must not be echoed whole (or raw) to
// the terminal. Header-only and torch-free, so that every parser (and its fuzz target) can use it.
#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace vlm {

/// `"text"` with at most `max_chars` input bytes shown; control and non-ASCII bytes escaped (\n, \t, \r, \", \\,
/// \xNN); a longer input ends in `..." (N bytes)` so the reader knows it was cut.
inline std::string quote_excerpt(std::string_view text, size_t max_chars = 80) {
  std::string out = "\"";
  const size_t n = text.size() < max_chars ? text.size() : max_chars;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  if (n < text.size()) {
    out.insert(out.size() - 1, "...");
    out += " (" + std::to_string(text.size()) + " bytes)";
  }
  return out;
}

/// One character for a message: 'a', or \xNN / \n for bytes that are not printable ASCII.
inline std::string quote_char(char ch) {
  std::string q = quote_excerpt(std::string_view(&ch, 1));
  return "'" + q.substr(1, q.size() - 2) + "'";
}

/// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): what
/// nlohmann::json needs to dump a string without throwing.
inline bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return false;
    i += len;
  }
  return true;
}

}  // namespace vlm
