#include "vlm/engine/engine.h"

#include <filesystem>
#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"
#include "vlm/core/options.h"
#include "vlm/data/records.h"
#include "vlm/data/token_dataset.h"
#include "vlm/eval/classify.h"
#include "vlm/eval/generation_metrics.h"
#include "vlm/models/image_classifier.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/sample/constrained_rows.h"

namespace vlm {
namespace {

constexpr int64_t kGenerateRows = 256;

}  // namespace

Engine::Engine(std::shared_ptr<const TokenCodec> codec, SequenceFormat format, GPT model, CharTokenizer tokenizer,
               std::shared_ptr<const Grader> grader, std::string name)
    : codec_(std::move(codec)), format_(std::move(format)), model_(std::move(model)),
      tokenizer_(std::move(tokenizer)), grader_(std::move(grader)), name_(std::move(name)) {
  VLM_CHECK(codec_ && model_, "Engine: no codec or no model");
  codec_field_ = format_.first_codec_field();
  label_field_ = format_.first_label_field();
  VLM_CHECK(codec_field_ >= 0 && label_field_ >= 0,
            "Engine: the format needs a codec field (the items' letters) and a label field (their classes)");
  classes_ = label_combinations(format_);
  words_ = classes_.names(format_);
  const FieldSpec& field = format_.field(codec_field_);
  codec_->check_field(field, "Engine");
  // What the format allows is checked here and said when it is asked for: a format that only reads (or only draws)
  // still makes an Engine for what it can do.
  for (int64_t f : classes_.fields)
    if (format_.reading_template(f) < 0 && cannot_classify_.empty())
      cannot_classify_ = "no template writes the label '" + format_.field(f).name + "' after the '" + field.name +
                         "' field";
  std::string why;
  if (!can_generate_per_class(format_, codec_field_, -1, &why)) {
    cannot_generate_ = why;
  } else {  // a class is asked for: the drawing template must write every label field before the codec field
    const size_t written = format_.fields_before(format_.template_ending_with(codec_field_), codec_field_).size();
    if (written != classes_.fields.size())
      cannot_generate_ = "the template that writes '" + field.name + "' last writes " + std::to_string(written) +
                         " of the " + std::to_string(classes_.fields.size()) + " label fields before it";
  }
  VLM_CHECK(format_.vocabulary() == tokenizer_.chars(), "Engine: the format's characters \"", format_.vocabulary(),
            "\" are not the tokenizer's \"", tokenizer_.chars(), "\"");
  VLM_CHECK(model_->options.vocab_size() == tokenizer_.vocab_size() &&
                model_->options.block_size() >= format_.block_size(),
            "Engine: the GPT (", model_->options.vocab_size(), " tokens, block ", model_->options.block_size(),
            ") does not fit the tokenizer's ", tokenizer_.vocab_size(), " tokens and the format's block of ",
            format_.block_size());
  VLM_CHECK(!grader_ || grader_->num_classes() == static_cast<int64_t>(words().size()), "Engine: the grader has ",
            grader_ ? grader_->num_classes() : 0, " classes but the label field ", words().size(), " words");
  model_->eval();
  auto one = codec_->decode({std::string(static_cast<size_t>(codec_->length()), codec_->alphabet()[0])});  // (1, ...)
  item_shape_.assign(one.sizes().begin() + 1, one.sizes().end());
}

Engine Engine::load(const std::string& run_dir, c10::Device device) {
  const auto paths = RunPaths::of(run_dir);
  std::shared_ptr<const TokenCodec> codec = load_codec(paths.vqvae, device);
  LoadedGPT gpt = load_gpt_checkpoint(paths.gpt, device);
  auto name = std::filesystem::path(run_dir).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(run_dir).lexically_normal().parent_path().filename().string();
  return Engine(std::move(codec), std::move(gpt.format), std::move(gpt.model), std::move(gpt.tokenizer),
                load_classifier_grader(paths.classifier, device), name);
}

Engine Engine::train(std::shared_ptr<const TokenCodec> codec, const SequenceFormat& format,
                     const LabeledImages& train, const LabeledImages& validation, GPTOptions model,
                     GPTTrainOptions options, c10::Device device) {
  VLM_CHECK(codec, "Engine::train: no codec");
  model.block_size(format.block_size());
  GPTTrainer trainer(model, options, TokenDataset::build(format, records_of(format, *codec, train, options.seed)),
                     TokenDataset::build(format, records_of(format, *codec, validation, options.seed + 1)), device);
  trainer.train();
  return Engine(std::move(codec), format, trainer.model(), trainer.tokenizer());
}

const std::vector<std::string>& Engine::words() const { return words_; }

nlohmann::json Engine::describe() const {
  nlohmann::json codec = {{"kind", codec_->kind()}, {"alphabet", codec_->alphabet()},
                          {"letters_per_image", codec_->length()}, {"item_shape", item_shape_}};
  return {{"name", name_},
          {"device", model_->wte->weight.device().str()},
          {"gpt", {{"options", options_to_json(model_->options)}, {"parameters", model_->num_params()}}},
          {"tokenizer", codec},
          {"format", format_.to_json()},
          {"vocabulary", tokenizer_.chars()},
          {"image_field", format_.field(codec_field_).name},
          {"label_field", format_.field(label_field_).name},
          {"label_fields", label_field_names()},
          {"labels", words()}};
}

std::vector<std::string> Engine::encode(const at::Tensor& items) const {
  VLM_CHECK(items.dim() == static_cast<int64_t>(item_shape_.size()) + 1 &&
                items.sizes().slice(1).vec() == item_shape_,
            "encode: expected a batch of items of shape ", at::IntArrayRef(item_shape_), ", got ", items.sizes());
  return codec_->encode(items);
}

at::Tensor Engine::decode(const std::vector<std::string>& letters) const { return codec_->decode(letters); }

at::Tensor Engine::grade(const at::Tensor& items) const {
  VLM_CHECK(grader_, "grade: the engine '", name_, "' has no grader (a reference classifier)");
  return grader_->probabilities(items);
}

std::vector<std::string> Engine::label_field_names() const {
  std::vector<std::string> out;
  for (int64_t f : classes_.fields) out.push_back(format_.field(f).name);
  return out;
}

std::vector<Record> Engine::records_for(const std::vector<std::string>& letters) const {
  std::vector<Record> records;
  for (const auto& l : letters) {
    format_.check_value(codec_field_, l, "classify");
    Record r{0, std::vector<std::string>(format_.num_fields())};  // the label fields are what is asked
    r.values[codec_field_] = l;
    records.push_back(std::move(r));
  }
  return records;
}

at::Tensor Engine::classify(const std::vector<std::string>& letters) {
  VLM_CHECK(cannot_classify_.empty(), "classify: the engine '", name_, "' cannot classify: ", cannot_classify_);
  return classify_joint(model_, tokenizer_, format_, records_for(letters), {}, /*batch_size=*/1024).probs;
}

at::Tensor Engine::classify(const std::vector<std::string>& letters, const std::string& field) {
  const int64_t f = format_.field_index(field);
  VLM_CHECK(format_.field(f).is_label(), "classify: '", field, "' is not a label field");
  VLM_CHECK(cannot_classify_.empty(), "classify: the engine '", name_, "' cannot classify: ", cannot_classify_);
  return classify_exact(model_, tokenizer_, format_, records_for(letters), {}, /*batch_size=*/1024, f).probs;
}

at::Tensor Engine::predict(const at::Tensor& items) { return classify(encode(items)).argmax(1); }

double Engine::accuracy(const LabeledImages& data) {
  VLM_CHECK(data.size() > 0, "accuracy: no items");
  return predict(data.images).eq(data.combined_labels(classes_.sizes)).to(at::kDouble).mean().item<double>();
}

std::vector<double> Engine::field_accuracies(const LabeledImages& data) {
  VLM_CHECK(data.size() > 0, "field_accuracies: no items");
  VLM_CHECK(data.label_columns() == static_cast<int64_t>(classes_.fields.size()), "field_accuracies: the items have ",
            data.label_columns(), " label columns, the engine ", classes_.fields.size(), " label fields");
  // The predicted combination's digits in mixed radix, the last field the least significant.
  auto rest = predict(data.images).to(at::kLong);  // (N)
  std::vector<double> out(classes_.fields.size());
  for (size_t k = out.size(); k-- > 0;) {
    const int64_t size = classes_.sizes[k];
    out[k] = rest.remainder(size).eq(data.label_column(static_cast<int64_t>(k)).to(at::kLong))
                 .to(at::kDouble).mean().item<double>();
    rest = rest.div(size, "floor");
  }
  return out;
}

GenerateResult Engine::generate(const std::string& word, int64_t n, double temperature, int64_t top_k, uint64_t seed) {
  const int64_t label = classes_.find(format_, word);
  VLM_CHECK(label >= 0, "generate: '", word, "' is not a class (", words_.size() <= 12 ? "" : "e.g. ", "'",
            words_.front(), "' ... '", words_.back(), "')");
  return generate({GenerateRequest{label, n, temperature, top_k, seed}})[0];
}

std::vector<GenerateResult> Engine::generate(const std::vector<GenerateRequest>& requests) {
  VLM_CHECK(cannot_generate_.empty(), "generate: the engine '", name_, "' cannot generate: ", cannot_generate_);
  const int64_t V = tokenizer_.vocab_size();
  std::vector<std::string> prompts;
  for (const auto& q : requests) {
    VLM_CHECK(q.label >= 0 && q.label < static_cast<int64_t>(words().size()), "generate: no class ", q.label);
    VLM_CHECK(q.n >= 1, "generate: n must be positive, got ", q.n);
    VLM_CHECK(q.temperature > 0, "generate: temperature must be > 0, got ", q.temperature);
    VLM_CHECK(q.top_k >= 0 && q.top_k <= V, "generate: top_k must be in [0, ", V, "], got ", q.top_k);
    std::vector<std::string> given(format_.num_fields());
    const auto c = classes_.classes(q.label);
    for (size_t k = 0; k < c.size(); ++k) given[classes_.fields[k]] = format_.field(classes_.fields[k]).words[c[k]];
    prompts.push_back(format_.prompt_for(codec_field_, given));
  }
  // Absolute position embeddings: prompts of one length run together (all of them, with the digits).
  std::map<size_t, std::vector<size_t>> by_length;
  for (size_t i = 0; i < prompts.size(); ++i) by_length[prompts[i].size()].push_back(i);
  std::vector<GenerateResult> out(requests.size());
  for (const auto& [len, members] : by_length) {
    // At most kGenerateRows rows per sampling loop: past that, the key/value caches leave the caches and a row costs
    // more (measured here: 0.6 ms a row at 240 rows, 0.9 ms at 768).
    for (size_t begin = 0; begin < members.size();) {
      std::vector<GenerateRequest> qs;
      std::vector<std::string> ps;
      int64_t rows = 0;
      size_t end = begin;
      for (; end < members.size() && (end == begin || rows + requests[members[end]].n <= kGenerateRows); ++end) {
        qs.push_back(requests[members[end]]), ps.push_back(prompts[members[end]]);
        rows += requests[members[end]].n;
      }
      auto done = generate_same_length(qs, ps);
      for (size_t k = begin; k < end; ++k) out[members[k]] = std::move(done[k - begin]);
      begin = end;
    }
  }
  return out;
}

// Sampler::complete_batch with a format constraint, for several requests at once: one forward pass per step for all
// rows, but each request masks, scales, cuts to top-k and draws its own rows from its own generator, in the same
// order and shapes as a Sampler running that request alone, so it draws the same characters (only the logits'
// last-bit rounding can depend on the batch: OpenBLAS's products round a row according to the rows around it).
std::vector<GenerateResult> Engine::generate_same_length(const std::vector<GenerateRequest>& requests,
                                                         const std::vector<std::string>& prompts) {
  torch::NoGradGuard no_grad;
  const auto device = model_->wte->weight.device();
  const int64_t R = static_cast<int64_t>(requests.size()), T0 = static_cast<int64_t>(prompts[0].size());
  const int64_t block = model_->options.block_size();
  VLM_CHECK(T0 >= 1 && T0 < block, "generate: a prompt of ", T0, " characters does not fit the block of ", block);
  const int64_t pad_id = tokenizer_.pad_id();

  std::vector<int64_t> start(R + 1, 0);
  for (int64_t r = 0; r < R; ++r) start[r + 1] = start[r] + requests[r].n;
  const int64_t B = start[R];
  std::vector<at::Generator> generators;
  for (const auto& q : requests) generators.push_back(at::make_generator<at::CPUGeneratorImpl>(q.seed));

  // Each request's prompt alone, for one row, as forward_last_shared_prefix does for identical rows; its keys and
  // values are then repeated for the request's rows.
  GPTImpl::KVCache cache;
  std::vector<std::vector<at::Tensor>> ks, vs;
  std::vector<at::Tensor> first_logits;
  for (int64_t r = 0; r < R; ++r) {
    // A prompt's forward pass is the same every time (one row, one thread): kept per prompt after the first.
    auto it = prompt_cache_.find(prompts[r]);
    if (it == prompt_cache_.end()) {
      PromptState state;
      auto ids = tokenizer_.encode(prompts[r]);
      auto idx = at::tensor(ids, at::kLong).view({1, T0}).to(device);
      state.logits = model_->forward(idx, &state.cache, true).select(1, 0);
      it = prompt_cache_.emplace(prompts[r], std::move(state)).first;
    }
    const PromptState& one = it->second;
    first_logits.push_back(one.logits.expand({requests[r].n, -1}));
    if (ks.empty()) ks.resize(one.cache.layers.size()), vs.resize(one.cache.layers.size());
    for (size_t l = 0; l < one.cache.layers.size(); ++l) {
      ks[l].push_back(one.cache.layers[l].k.expand({requests[r].n, -1, -1, -1}));
      vs[l].push_back(one.cache.layers[l].v.expand({requests[r].n, -1, -1, -1}));
    }
    cache.length = one.cache.length;
  }
  cache.layers.resize(ks.size());
  for (size_t l = 0; l < ks.size(); ++l) cache.layers[l] = {at::cat(ks[l]), at::cat(vs[l])};
  at::Tensor logits = at::cat(first_logits);  // (B, V)

  std::vector<std::string> row_prompts;
  for (int64_t r = 0; r < R; ++r) row_prompts.insert(row_prompts.end(), requests[r].n, prompts[r]);
  ConstrainedRows rows(format_, tokenizer_, row_prompts);
  std::vector<char> request_done(R, 0);
  std::vector<std::vector<int64_t>> generated(B);
  int64_t active = R;
  for (int64_t pos = T0; pos < block && active > 0; ++pos) {
    auto last = rows.mask(logits.to(at::kCPU, at::kFloat));  // (B, V)
    auto next_all = at::full({B}, pad_id, at::kLong);
    for (int64_t r = 0; r < R; ++r) {
      if (request_done[r]) continue;
      const int64_t s = start[r], n = requests[r].n;
      auto next = sample_next(last.narrow(0, s, n), requests[r].temperature, requests[r].top_k, false, generators[r]);
      next_all.narrow(0, s, n).copy_(next);
      auto na = next.accessor<int64_t, 1>();
      for (int64_t b = 0; b < n; ++b) generated[s + b].push_back(na[b]);
    }
    rows.push(next_all);
    for (int64_t r = 0; r < R; ++r) {
      if (request_done[r]) continue;
      bool all_finished = true;
      for (int64_t b = start[r]; b < start[r + 1]; ++b) all_finished &= rows.finished(b);
      if (all_finished || pos + 1 >= block) request_done[r] = 1, --active;
    }
    if (active == 0 || pos + 1 >= block) break;
    logits = model_->forward(next_all.view({B, 1}).to(device), &cache, true).select(1, 0);
  }

  std::vector<GenerateResult> out(R);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = start[r]; b < start[r + 1]; ++b) {
      std::string completion;
      for (int64_t id : generated[b]) {
        if (id == pad_id) break;  // the pad that ended the line
        completion += tokenizer_.character(id);
      }
      out[r].letters.push_back(format_.answer(codec_field_, prompts[r], completion));
      out[r].completions.push_back(std::move(completion));
    }
  return out;
}

}  // namespace vlm
