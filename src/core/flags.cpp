#include "vlm/core/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "vlm/core/check.h"
#include "vlm/core/quote.h"

namespace vlm {
namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

template <class T>
T parse_integer(const std::string& key, const std::string& text, const char* type) {
  std::string v = trim(text);
  VLM_CHECK(!v.empty(), "--", key, ": expected ", type, ", got an empty value");
  errno = 0;
  char* end = nullptr;
  T out{};
  if constexpr (std::is_signed_v<T>) {
    long long x = std::strtoll(v.c_str(), &end, 10);
    VLM_CHECK(end && *end == '\0' && errno == 0, "--", key, ": expected ", type, ", got ", quote_excerpt(text));
    VLM_CHECK(x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max(), "--", key, ": ", text,
              " is out of range for ", type);
    out = static_cast<T>(x);
  } else {
    VLM_CHECK(v[0] != '-', "--", key, ": expected a non-negative integer, got ", quote_excerpt(text));
    unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    VLM_CHECK(end && *end == '\0' && errno == 0, "--", key, ": expected ", type, ", got ", quote_excerpt(text));
    out = static_cast<T>(x);
  }
  return out;
}

double parse_real(const std::string& key, const std::string& text) {
  std::string v = trim(text);
  errno = 0;
  char* end = nullptr;
  double x = v.empty() ? 0 : std::strtod(v.c_str(), &end);
  VLM_CHECK(!v.empty() && end && *end == '\0' && errno == 0 && std::isfinite(x), "--", key,
            ": expected a finite number, got ", quote_excerpt(text));
  return x;
}

// A key as typed, for messages: as is when short and printable, else quoted, escaped and cut.
std::string display_key(const std::string& key) {
  bool plain = key.size() <= 80;
  for (char c : key) plain = plain && c > ' ' && c < 127;
  return plain ? key : quote_excerpt(key);
}

std::string format_real(double x) { return fmt::format("{:g}", x); }

}  // namespace

Flags::Flags(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {}

Flags& Flags::add_entry(Entry e) {
  VLM_CHECK(!index_.count(e.key), "flag --", e.key, " registered twice");
  index_[e.key] = entries_.size();
  entries_.push_back(std::move(e));
  return *this;
}

Flags& Flags::add(const std::string& key, bool* f, std::string help) {
  return add_entry({key, "bool", std::move(help),
                    [key, f](const std::string& t) {
                      std::string v = trim(t);
                      if (v == "" || v == "1" || v == "true" || v == "yes" || v == "on") *f = true;
                      else if (v == "0" || v == "false" || v == "no" || v == "off") *f = false;
                      else VLM_FAIL("--", key, ": expected true/false, got ", quote_excerpt(t));
                    },
                    [f] { return std::string(*f ? "true" : "false"); }, [f] { return nlohmann::json(*f); }});
}
Flags& Flags::add(const std::string& key, int* f, std::string help) {
  return add_entry({key, "int", std::move(help),
                    [key, f](const std::string& t) { *f = parse_integer<int>(key, t, "an integer"); },
                    [f] { return std::to_string(*f); }, [f] { return nlohmann::json(*f); }});
}
Flags& Flags::add(const std::string& key, int64_t* f, std::string help) {
  return add_entry({key, "int", std::move(help),
                    [key, f](const std::string& t) { *f = parse_integer<int64_t>(key, t, "an integer"); },
                    [f] { return std::to_string(*f); }, [f] { return nlohmann::json(*f); }});
}
Flags& Flags::add(const std::string& key, uint64_t* f, std::string help) {
  return add_entry({key, "uint", std::move(help),
                    [key, f](const std::string& t) { *f = parse_integer<uint64_t>(key, t, "a non-negative integer"); },
                    [f] { return std::to_string(*f); }, [f] { return nlohmann::json(*f); }});
}
Flags& Flags::add(const std::string& key, float* f, std::string help) {
  return add_entry({key, "float", std::move(help),
                    [key, f](const std::string& t) { *f = static_cast<float>(parse_real(key, t)); },
                    [f] { return format_real(*f); }, [f] { return nlohmann::json(*f); }});
}
Flags& Flags::add(const std::string& key, double* f, std::string help) {
  return add_entry({key, "float", std::move(help), [key, f](const std::string& t) { *f = parse_real(key, t); },
                    [f] { return format_real(*f); }, [f] { return nlohmann::json(*f); }});
}
Flags& Flags::add(const std::string& key, std::string* f, std::string help) {
  return add_entry({key, "string", std::move(help),
                    [key, f](const std::string& t) {
                      // The configuration is stored as JSON (to_json), which holds UTF-8 only.
                      VLM_CHECK(is_valid_utf8(t), "--", key, ": the value ", quote_excerpt(t),
                                " is not valid UTF-8");
                      *f = t;
                    },
                    [f] { return *f; },
                    [f] { return nlohmann::json(*f); }});
}

Flags& Flags::add_preset(const std::string& name, std::function<void()> apply, std::string help) {
  presets_[name] = {std::move(apply), std::move(help)};
  return *this;
}

Flags& Flags::set_preset_loader(std::function<void(const std::string&)> load, std::string help) {
  preset_loader_ = std::move(load);
  preset_loader_help_ = std::move(help);
  return *this;
}

Flags& Flags::add_choice(const std::string& key, std::string* field,
                         std::map<std::string, std::function<void()>> choices, std::string help) {
  std::string names;
  for (const auto& [name, apply] : choices) names += (names.empty() ? "" : ", ") + name;
  Entry e{key, "choice", help + " (" + names + ")",
          [this, key, field, choices, names](const std::string& v) {
            auto it = choices.find(v);
            VLM_CHECK(it != choices.end(), program_, ": --", key, "=", v, " is not one of ", names);
            it->second();
            *field = v;
          },
          [field] { return *field; }, [field] { return nlohmann::json(*field); }};
  e.early = true;
  return add_entry(std::move(e));
}

void Flags::set(const std::string& key, const std::string& value) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    std::string known;
    for (const auto& e : entries_) known += (known.empty() ? "" : ", ") + e.key;
    VLM_FAIL(program_, ": unknown flag --", display_key(key), " (known: ", known, (presets_.empty() ? "" : ", preset"),
             "; see --help)");
  }
  entries_[it->second].set(value);
}

bool Flags::parse(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse(args);
}

bool Flags::parse(const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::map<std::string, std::string> seen;
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << usage();
      return false;
    }
    if (a.rfind("--", 0) != 0) {
      VLM_CHECK(allow_positional_, program_, ": unexpected argument ", quote_excerpt(a), ": flags are written --key=value");
      positional_.push_back(a);
      continue;
    }
    auto eq = a.find('=');
    std::string key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string value = eq == std::string::npos ? "" : a.substr(eq + 1);
    VLM_CHECK(!key.empty(), program_, ": malformed argument ", quote_excerpt(a), ": expected --key=value");
    // Bare --key is only meaningful for booleans.
    if (eq == std::string::npos && key != "preset") {
      auto it = index_.find(key);
      VLM_CHECK(it == index_.end() || entries_[it->second].type == "bool", program_, ": --", key,
                " needs a value: --", key, "=VALUE");
    }
    auto [first, inserted] = seen.emplace(key, value);
    VLM_CHECK(inserted, program_, ": --", display_key(key), " is given twice (--", display_key(key), "=", quote_excerpt(first->second),
              " and --", display_key(key), "=", quote_excerpt(value), "); give each flag once");
    pairs.emplace_back(key, value);
  }
  // Presets first, so that explicit flags override them whatever their order.
  for (const auto& [key, value] : pairs) {
    if (key != "preset" || index_.count("preset")) continue;
    auto it = presets_.find(value);
    if (it != presets_.end()) {
      it->second.first();
    } else if (preset_loader_) {
      preset_loader_(value);  // throws naming the value when it is neither a preset nor a preset file
    } else {
      std::string known;
      for (const auto& [name, p] : presets_) known += (known.empty() ? "" : ", ") + name;
      VLM_FAIL(program_, ": unknown preset ", quote_excerpt(value), " (known: ", known.empty() ? "none" : known, ")");
    }
    preset_ = value;
  }
  // Then choices, then everything else in order.
  auto is_early = [this](const std::string& key) {
    auto it = index_.find(key);
    return it != index_.end() && entries_[it->second].early;
  };
  for (bool early : {true, false})
    for (const auto& [key, value] : pairs) {
      if ((key == "preset" && !index_.count("preset")) || is_early(key) != early) continue;
      set(key, value);
      given_[key] = true;
    }
  return true;
}

std::string Flags::usage() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [--key=value ...]\n" << description_ << "\n";
  if (!presets_.empty()) {
    os << "\npresets (--preset=NAME, applied before other flags):\n";
    for (const auto& [name, p] : presets_) os << fmt::format("  {:<22} {}\n", name, p.second);
    if (preset_loader_) os << fmt::format("  {:<22} {}\n", "FILE", preset_loader_help_);
  }
  os << "\nflags (current value in brackets):\n";
  for (const auto& e : entries_)
    os << fmt::format("  --{:<20} {} [{}] ({})\n", e.key, e.help, e.get(), e.type);
  return os.str();
}

std::string Flags::resolved() const {
  std::ostringstream os;
  os << program_ << " configuration" << (preset_.empty() ? "" : " (preset " + preset_ + ")") << ":\n";
  for (const auto& e : entries_) os << fmt::format("  {:<22} = {}\n", e.key, e.get());
  return os.str();
}

nlohmann::json Flags::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  if (!preset_.empty() && !index_.count("preset")) j["preset"] = preset_;
  for (const auto& e : entries_) j[e.key] = e.json();
  return j;
}

}  // namespace vlm
