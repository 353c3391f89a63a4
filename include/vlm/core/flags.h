#pragma once
// Typed command-line configuration in nanoGPT's `--key=value` style.
//
//   GPTOptions opt;
//   vlm::Flags flags("train_gpt", "Train the GPT on token text files");
//   flags.add("n_layer", &opt.n_layer, "transformer blocks");
//   flags.add_preset("cpu", [&] { opt.n_layer = 4; });
//   flags.parse(argc, argv);           // --preset=NAME first, then every --key=value in order
//   std::cout << flags.resolved();     // the configuration actually used
//
// Unknown keys, repeated keys, malformed values and values of the wrong type are errors naming the flag and what
// was expected.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vlm {

class Flags {
 public:
  Flags(std::string program, std::string description);

  Flags& add(const std::string& key, bool* field, std::string help);
  Flags& add(const std::string& key, int* field, std::string help);
  Flags& add(const std::string& key, int64_t* field, std::string help);
  Flags& add(const std::string& key, uint64_t* field, std::string help);
  Flags& add(const std::string& key, float* field, std::string help);
  Flags& add(const std::string& key, double* field, std::string help);
  Flags& add(const std::string& key, std::string* field, std::string help);

  /// A preset sets several fields at once; `--preset=NAME` is applied before any other flag.
  Flags& add_preset(const std::string& name, std::function<void()> apply, std::string help = "");
  /// What --preset=VALUE does when VALUE is not a named preset (e.g. read a preset file); without one, an error.
  Flags& set_preset_loader(std::function<void(const std::string&)> load, std::string help);
  /// A choice among named groups of defaults (e.g. --vq.variant=mlp|conv, each with its own sizes): applied after
  /// --preset and before every other flag, so that explicit flags override what the choice set. `*field` holds the
  /// name chosen; an unknown name is an error listing the known ones.
  Flags& add_choice(const std::string& key, std::string* field, std::map<std::string, std::function<void()>> choices,
                    std::string help);

  /// Parses argv. Returns false when --help was given (usage already printed to stdout), true otherwise.
  /// Arguments that do not start with `--` are errors unless `allow_positional` was set.
  bool parse(int argc, const char* const* argv);
  bool parse(const std::vector<std::string>& args);

  /// Sets one field from its textual value; throws vlm::Error naming the key on a bad value or unknown key.
  void set(const std::string& key, const std::string& value);
  bool has(const std::string& key) const { return index_.count(key) > 0; }
  /// Whether the key was given explicitly on the command line (not by a preset or default).
  bool given(const std::string& key) const { return given_.count(key) > 0; }

  void allow_positional(bool allow) { allow_positional_ = allow; }
  const std::vector<std::string>& positional() const { return positional_; }
  const std::string& preset() const { return preset_; }

  std::string usage() const;
  /// "key = value" lines of the configuration in force, in registration order.
  std::string resolved() const;
  /// The configuration in force as a JSON object (numbers as numbers, strings as strings).
  nlohmann::json to_json() const;

 private:
  struct Entry {
    std::string key, type, help;
    std::function<void(const std::string&)> set;
    std::function<std::string()> get;
    std::function<nlohmann::json()> json;
    bool early = false;  ///< a choice: applied before the other flags
  };
  Flags& add_entry(Entry e);

  std::string program_, description_, preset_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::pair<std::function<void()>, std::string>> presets_;
  std::function<void(const std::string&)> preset_loader_;
  std::string preset_loader_help_;
  std::map<std::string, bool> given_;
  std::vector<std::string> positional_;
  bool allow_positional_ = false;
};

}  // namespace vlm
