#pragma once
// One convention for every options struct of the library: the struct lists its fields once, in a member template
//
//   struct ClassifierTrainOptions {
//     int64_t epochs = 3;
//     double learning_rate = 2e-3;
//     template <class V> void fields(V& v) {
//       v("epochs", epochs, "training epochs");
//       v("learning_rate", learning_rate, "Adam learning rate");
//     }
//   };
//
// and everything else is derived from that list, so it cannot drift:
//   options_to_json(o)           {"epochs": 3, "learning_rate": 0.002}   (checkpoints, run records, stage hashes)
//   options_from_json<O>(j, w)   the reverse; a key the struct does not have is an error naming it and `w`
//   add_option_flags(f, o, "p.") --p.epochs=N, --p.learning_rate=X
// A field whose type has its own fields() is nested as a JSON object and flattened into the parent's flags.
// A field's kind says where it goes: kConfig (the default) everywhere; kRunControl (output paths, verbosity) says
// where and how a run happens, not what it computes, so it is left out of options_config_json(), the part a stage's
// configuration hash is made of; kDerived (e.g. a vocabulary size set from the tokenizer) is serialised but offered
// as no flag.
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "vlm/core/check.h"
#include "vlm/core/flags.h"

namespace vlm {

enum class FieldKind { kConfig, kRunControl, kDerived };

namespace options_detail {

// A type is an options struct when it has fields(visitor).
struct Probe {
  template <class T>
  void operator()(const char*, T&, const char*, FieldKind = FieldKind::kConfig) {}
};
template <class T, class = void>
struct is_options : std::false_type {};
template <class T>
struct is_options<T, std::void_t<decltype(std::declval<T&>().fields(std::declval<Probe&>()))>> : std::true_type {};

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else return "an object";
}

struct ToJson {
  nlohmann::json& out;
  bool config_only;
  template <class T>
  void operator()(const char* key, T& field, const char* = "", FieldKind kind = FieldKind::kConfig) {
    if (config_only && kind == FieldKind::kRunControl) return;
    if constexpr (is_options<T>::value) {
      nlohmann::json sub = nlohmann::json::object();
      ToJson inner{sub, config_only};
      field.fields(inner);
      out[key] = std::move(sub);
    } else {
      out[key] = field;
    }
  }
};

struct KeyCollector {
  nlohmann::json& keys;
  template <class T>
  void operator()(const char* key, T&, const char* = "", FieldKind = FieldKind::kConfig) {
    keys[key] = true;
  }
};

template <class O>
void reject_unknown_keys(const nlohmann::json& j, O& options, const std::string& where) {
  nlohmann::json keys = nlohmann::json::object();
  KeyCollector c{keys};
  options.fields(c);
  for (const auto& item : j.items())
    VLM_CHECK(keys.contains(item.key()), where, ": unknown key '", item.key(),
              "' (written by a newer vlm, or a typo?)");
}

struct FromJson {
  const nlohmann::json& in;
  std::string where;
  template <class T>
  void operator()(const char* key, T& field, const char* = "", FieldKind = FieldKind::kConfig) {
    auto it = in.find(key);
    if (it == in.end()) return;  // absent: the default (files written before the field existed)
    const std::string name = where + "." + key;
    if constexpr (is_options<T>::value) {
      VLM_CHECK(it->is_object(), name, ": expected an object, got ", it->dump().substr(0, 200));
      reject_unknown_keys(*it, field, name);
      FromJson inner{*it, name};
      field.fields(inner);
    } else {
      bool ok;
      if constexpr (std::is_same_v<T, bool>) ok = it->is_boolean();
      else if constexpr (std::is_unsigned_v<T>) ok = it->is_number_integer() && it->template get<int64_t>() >= 0;
      else if constexpr (std::is_integral_v<T>) ok = it->is_number_integer();
      else if constexpr (std::is_floating_point_v<T>) ok = it->is_number();
      else ok = it->is_string();
      VLM_CHECK(ok, name, ": expected ", type_name<T>(), ", got ", it->dump().substr(0, 200));
      field = it->template get<T>();
    }
  }
};

struct FlagAdder {
  Flags& flags;
  const std::string& prefix;
  bool with_run_control;
  template <class T>
  void operator()(const char* key, T& field, const char* help = "", FieldKind kind = FieldKind::kConfig) {
    if (kind == FieldKind::kDerived || (kind == FieldKind::kRunControl && !with_run_control)) return;
    if constexpr (is_options<T>::value) {
      FlagAdder inner{flags, prefix, with_run_control};
      field.fields(inner);
    } else if (!flags.has(prefix + key)) {  // registered before, e.g. as a Flags::add_choice: that one stays
      flags.add(prefix + key, &field, help);
    }
  }
};

}  // namespace options_detail

/// Every field (run control included) as a JSON object.
template <class O>
nlohmann::json options_to_json(const O& options) {
  O copy = options;  // fields() hands out mutable references; serialising must not need a mutable struct
  nlohmann::json out = nlohmann::json::object();
  options_detail::ToJson v{out, false};
  copy.fields(v);
  return out;
}

/// The fields that change what is computed (run control left out): what a stage's configuration hash is made of.
template <class O>
nlohmann::json options_config_json(const O& options) {
  O copy = options;
  nlohmann::json out = nlohmann::json::object();
  options_detail::ToJson v{out, true};
  copy.fields(v);
  return out;
}

/// Options from JSON: absent keys keep `defaults`' values; an unknown key or a value of the wrong type is an error
/// naming `where` and the key.
template <class O>
O options_from_json(const nlohmann::json& j, const std::string& where, O defaults = O()) {
  VLM_CHECK(j.is_object(), where, ": expected a JSON object of options, got ", j.dump().substr(0, 200));
  options_detail::reject_unknown_keys(j, defaults, where);
  options_detail::FromJson v{j, where};
  defaults.fields(v);
  return defaults;
}

/// Registers every field as a --<prefix><key>=value flag; nested options are flattened under the same prefix.
/// Run-control fields (paths, verbosity) only when `with_run_control` (a stand-alone tool owns them; a pipeline
/// sets them itself).
template <class O>
void add_option_flags(Flags& flags, O& options, const std::string& prefix = "", bool with_run_control = true) {
  options_detail::FlagAdder v{flags, prefix, with_run_control};
  options.fields(v);
}

}  // namespace vlm
