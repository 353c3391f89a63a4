#include "vlm/io/nanogpt.h"

#include <optional>

#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "io/py_pickle.h"
#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"
#include "vlm/models/gpt_checkpoint.h"

namespace vlm {

namespace {

using py::Value;
using py::ValuePtr;
using Kind = py::Value::Kind;

const std::string kCompiledPrefix = "_orig_mod.";

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

nlohmann::json to_json(const ValuePtr& v) {
  switch (v->kind) {
    case Kind::None: return nullptr;
    case Kind::Bool: return v->b;
    case Kind::Int: return v->i;
    case Kind::Float: return v->f;
    case Kind::String: return v->s;
    case Kind::Tensor:
      if (v->tensor.numel() == 1) return v->tensor.to(at::kDouble).item<double>();
      return "tensor " + shape_str(v->tensor.sizes());
    case Kind::List:
    case Kind::Tuple: {
      auto a = nlohmann::json::array();
      for (const auto& x : v->items) a.push_back(to_json(x));
      return a;
    }
    case Kind::Dict: {
      auto o = nlohmann::json::object();
      for (const auto& [k, x] : v->dict)
        o[k->is(Kind::String) ? k->s : to_json(k).dump()] = to_json(x);
      return o;
    }
    default: return v->type_name();
  }
}

int64_t int_arg(const ValuePtr& args, const std::string& key, const std::string& path) {
  auto v = args->get(key);
  VLM_CHECK(v != nullptr, "'", path, "': model_args lacks '", key, "'");
  VLM_CHECK(v->is(Kind::Int), "'", path, "': model_args['", key, "'] must be an int, got ", v->type_name());
  return v->i;
}

double number(const ValuePtr& v) {
  if (v->is(Kind::Int)) return static_cast<double>(v->i);
  if (v->is(Kind::Float)) return v->f;
  if (v->is(Kind::Tensor) && v->tensor.numel() == 1) return v->tensor.to(at::kDouble).item<double>();
  return std::numeric_limits<double>::quiet_NaN();
}

/// Our parameter name of a nanoGPT key (prefix already removed); "" for the keys that are dropped after checks.
std::string our_name(const std::string& key) {
  static const std::string t = "transformer.";
  if (key.compare(0, t.size(), t) == 0) return key.substr(t.size());
  return key;
}

bool is_attention_mask(const std::string& name) {
  // h.N.attn.bias: nanoGPT's causal mask buffer (registered when flash attention is unavailable)
  const std::string suffix = ".attn.bias";
  return name.compare(0, 2, "h.") == 0 && name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

NanoGPTCheckpoint read_nanogpt_checkpoint(const std::string& path) {
  ValuePtr root = py::read_torch_save(path);
  VLM_CHECK(root->is(Kind::Dict) && root->get("model") && root->get("model_args"), "'", path,
            "' is not a nanoGPT checkpoint: expected the dict train.py saves, with 'model' and 'model_args' (got a ",
            root->type_name(), root->is(Kind::Dict) ? " without them" : "", ")");
  ValuePtr model = root->get("model"), args = root->get("model_args");
  VLM_CHECK(model->is(Kind::Dict), "'", path, "': 'model' must be a state dict, got a ", model->type_name());
  VLM_CHECK(args->is(Kind::Dict), "'", path, "': 'model_args' must be a dict, got a ", args->type_name());

  NanoGPTCheckpoint ck;
  ck.model_args = to_json(args);
  if (auto c = root->get("config")) ck.config = to_json(c);
  if (auto it = root->get("iter_num"); it && it->is(Kind::Int)) ck.iter_num = it->i;
  ck.best_val_loss = std::numeric_limits<double>::quiet_NaN();
  if (auto b = root->get("best_val_loss")) ck.best_val_loss = number(b);

  auto bias = args->get("bias");
  VLM_CHECK(bias && bias->is(Kind::Bool), "'", path, "': model_args['bias'] must be a bool, got ",
            bias ? bias->type_name() : "nothing");
  auto dropout = args->get("dropout");
  const double p = dropout ? number(dropout) : 0.0;
  VLM_CHECK(!std::isnan(p), "'", path, "': model_args['dropout'] must be a number, got ", dropout->type_name());
  ck.options.vocab_size(int_arg(args, "vocab_size", path))
      .block_size(int_arg(args, "block_size", path))
      .n_layer(int_arg(args, "n_layer", path))
      .n_head(int_arg(args, "n_head", path))
      .n_embd(int_arg(args, "n_embd", path))
      .bias(bias->b)
      .dropout(p);
  try {
    ck.options.validate();
  } catch (const Error& e) {
    VLM_FAIL("'", path, "': model_args are not a valid GPT: ", e.what());
  }

  // The state dict, under our names.
  at::Tensor lm_head;
  size_t prefixed = 0;
  std::map<std::string, std::string> stored_key;  // our name -> the key as stored
  for (const auto& [k, v] : model->dict) {
    VLM_CHECK(k->is(Kind::String), "'", path, "': a state-dict key is a ", k->type_name(), ", not a string");
    VLM_CHECK(v->is(Kind::Tensor), "'", path, "': state-dict entry '", k->s, "' is a ", v->type_name(),
              ", not a tensor");
    std::string key = k->s;
    if (key.compare(0, kCompiledPrefix.size(), kCompiledPrefix) == 0) {
      key = key.substr(kCompiledPrefix.size());
      ++prefixed;
    }
    if (key == "lm_head.weight") {
      lm_head = v->tensor;
      continue;
    }
    const std::string name = our_name(key);
    if (is_attention_mask(name)) continue;
    VLM_CHECK(ck.state.emplace(name, v->tensor.to(at::kFloat).contiguous()).second, "'", path, "': key '", k->s,
              "' appears twice (with and without the _orig_mod. prefix?)");
    stored_key[name] = k->s;
  }
  ck.compiled = prefixed > 0;

  // Check the state dict against the model model_args describe: same names, same shapes.
  GPT reference(ck.options);
  std::set<std::string> expected;
  std::vector<std::string> missing;
  for (const auto& p : reference->named_parameters()) {
    expected.insert(p.key());
    auto it = ck.state.find(p.key());
    if (it == ck.state.end()) {
      missing.push_back("transformer." + p.key());
      continue;
    }
    VLM_CHECK(it->second.sizes() == p.value().sizes(), "'", path, "': transformer.", p.key(), " has shape ",
              shape_str(it->second.sizes()), " but model_args ", ck.model_args.dump(), " make it ",
              shape_str(p.value().sizes()));
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    VLM_FAIL("'", path, "': the state dict lacks ", missing.size(), " key(s) the model of model_args ",
             ck.model_args.dump(), " needs: ", list);
  }
  for (const auto& [name, t] : ck.state)
    VLM_CHECK(expected.count(name), "'", path, "': unexpected state-dict key '", stored_key[name],
              "' (not a parameter of nanoGPT's GPT with model_args ", ck.model_args.dump(), ")");
  if (lm_head.defined()) {
    const at::Tensor& wte = ck.state.at("wte.weight");
    VLM_CHECK(lm_head.sizes() == wte.sizes(), "'", path, "': lm_head.weight has shape ", shape_str(lm_head.sizes()),
              ", transformer.wte.weight ", shape_str(wte.sizes()));
    VLM_CHECK(at::equal(lm_head.to(at::kFloat), wte), "'", path,
              "': lm_head.weight differs from transformer.wte.weight; vlm's GPT ties them (as nanoGPT does), so an "
              "untied output layer cannot be imported");
  }
  return ck;
}

GPT nanogpt_to_gpt(const NanoGPTCheckpoint& ckpt) {
  GPT model(ckpt.options);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    auto it = ckpt.state.find(p.key());
    VLM_CHECK(it != ckpt.state.end(), "nanoGPT checkpoint lacks ", p.key());
    VLM_CHECK(it->second.sizes() == p.value().sizes(), "nanoGPT checkpoint: ", p.key(), " has shape ",
              shape_str(it->second.sizes()), ", the model needs ", shape_str(p.value().sizes()));
    p.value().copy_(it->second);
  }
  model->eval();
  return model;
}

CharTokenizer nanogpt_tokenizer(const std::string& chars) { return CharTokenizer(chars); }

std::optional<SequenceFormat> seed_format_of_vocabulary(const std::string& chars, int64_t block_size) {
  // The seed's format with the characters its templates do not use as the image alphabet.
  const SequenceFormat seed = SequenceFormat::seed();
  std::string alphabet;
  for (char c : chars)
    if (seed.field(seed.first_codec_field()).alphabet.find(c) != std::string::npos ||
        seed.vocabulary().find(c) == std::string::npos)
      alphabet += c;
  try {
    SequenceFormat f = SequenceFormat::seed(alphabet, seed.field(seed.first_codec_field()).length, block_size);
    if (f.vocabulary() == chars) return f;
  } catch (const Error&) {
    // not a seed-format vocabulary
  }
  return std::nullopt;
}

CharTokenizer read_nanogpt_meta(const std::string& path) {
  ValuePtr meta = py::read_pickle_file(path);
  VLM_CHECK(meta->is(Kind::Dict) && meta->get("itos"), "'", path,
            "' is not a nanoGPT meta.pkl: expected a dict with 'vocab_size', 'itos' and 'stoi', got a ",
            meta->type_name());
  ValuePtr itos = meta->get("itos");
  VLM_CHECK(itos->is(Kind::Dict), "'", path, "': 'itos' must be a dict, got a ", itos->type_name());
  const int64_t n = static_cast<int64_t>(itos->dict.size());
  if (auto vs = meta->get("vocab_size"))
    VLM_CHECK(vs->is(Kind::Int) && vs->i == n, "'", path, "': vocab_size ", to_json(vs).dump(), " but itos has ", n,
              " entries");
  std::string chars(static_cast<size_t>(n), '\0');
  std::vector<bool> seen(static_cast<size_t>(n), false);
  for (const auto& [k, v] : itos->dict) {
    VLM_CHECK(k->is(Kind::Int) && k->i >= 0 && k->i < n && !seen[k->i], "'", path,
              "': itos keys must be the ids 0..", n - 1, " once each, found ", to_json(k).dump());
    VLM_CHECK(v->is(Kind::String) && v->s.size() == 1, "'", path, "': itos[", k->i, "] = ", to_json(v).dump(),
              " is not a single-byte character (vlm's CharTokenizer holds bytes)");
    seen[k->i] = true;
    chars[k->i] = v->s[0];
  }
  return nanogpt_tokenizer(chars);
}

NanoGPTCheckpoint import_nanogpt(const std::string& ckpt_path, const CharTokenizer& vocab,
                                 const std::string& out_path, const SequenceFormat* format) {
  NanoGPTCheckpoint ck = read_nanogpt_checkpoint(ckpt_path);
  VLM_CHECK(vocab.vocab_size() == ck.options.vocab_size(), "'", ckpt_path, "' has vocab_size ",
            ck.options.vocab_size(), " (model_args) but the vocabulary given has ", vocab.vocab_size(),
            " characters \"", vocab.chars(), "\"; give the data set's meta.pkl (nanoGPT's prepare.py writes it)");
  GPT model = nanogpt_to_gpt(ck);
  // The format's lines must fit the model's block; a model too short for them (a test's toy) is stored without one.
  const int64_t block = ck.options.block_size();
  std::optional<SequenceFormat> f;
  if (format) {
    f = format->with_block_size(block);  // throws when its lines do not fit
  } else {
    const auto seed = SequenceFormat::seed();
    f = seed_format_of_vocabulary(vocab.chars(), std::max(block, seed.max_line_length()));
    VLM_CHECK(f, "'", ckpt_path, "': the vocabulary \"", vocab.chars(),
              "\" is not the seed format's; give the sequence format the model was trained on (--format=FILE)");
    if (f->max_line_length() <= block) f = f->with_block_size(block);
    else f.reset();
  }
  VLM_CHECK(!f || f->vocabulary() == vocab.chars(), "'", ckpt_path, "': the sequence format's characters \"",
            f->vocabulary(), "\" are not the vocabulary's \"", vocab.chars(), "\"");
  nlohmann::json meta = gpt_checkpoint_meta(model, vocab, f ? *f : SequenceFormat::seed(), ck.iter_num);
  if (!f) meta.erase("format");
  meta["best_val_loss"] = std::isnan(ck.best_val_loss) ? nlohmann::json(nullptr) : nlohmann::json(ck.best_val_loss);
  meta["imported_from"] = {{"format", "nanoGPT"}, {"path", ckpt_path},       {"compiled", ck.compiled},
                           {"model_args", ck.model_args}, {"config", ck.config}};
  CheckpointWriter writer(kGPTCheckpointKind, kGPTCheckpointVersion, meta);
  writer.add_module("model", *model);
  writer.save(out_path);
  return ck;
}

}  // namespace vlm
