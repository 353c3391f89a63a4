#include "vlm/serve/inference.h"

#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"
#include "vlm/core/options.h"
#include "vlm/eval/classify.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/text/format_automaton.h"

namespace vlm {
namespace {
constexpr int64_t kGenerateRows = 256;
}  // namespace

InferenceEngine::InferenceEngine(const std::string& run_dir, c10::Device device)
    : run_dir_(run_dir), device_(device), codec_(ImageTokenCodec::load(RunPaths::of(run_dir).vqvae, device)) {
  const auto paths = RunPaths::of(run_dir);
  gpt_ = load_gpt_checkpoint(paths.gpt, device);
  classifier_ = load_digit_classifier(paths.classifier, device);
  classifier_->eval();
  const auto& format = gpt_.format;
  image_field_ = format.first_codec_field();
  label_field_ = format.first_label_field();
  VLM_CHECK(image_field_ >= 0 && label_field_ >= 0, "'", paths.gpt,
            "' was trained on a format without an image and a label field; vlm serve needs both");
  VLM_CHECK(format.field(image_field_).alphabet == codec_.alphabet() &&
                format.field(image_field_).length == codec_.codes_per_image(),
            "the GPT's image field (", format.field(image_field_).length, " letters of ",
            format.field(image_field_).alphabet, ") is not what the tokenizer writes (", codec_.codes_per_image(),
            " letters of ", codec_.alphabet(), ")");
  classify_template_ = format.template_ending_with(label_field_);
  generate_template_ = format.template_ending_with(image_field_);
  VLM_CHECK(classify_template_ >= 0 && generate_template_ >= 0, "'", paths.gpt,
            "': the format needs a template ending with the label (to classify) and one ending with the image (to "
            "generate)");
  VLM_CHECK(classifier_->options.num_classes() == static_cast<int64_t>(words().size()),
            "the reference classifier has ", classifier_->options.num_classes(), " classes but the label field ",
            words().size(), " words");
}

int64_t InferenceEngine::image_size() const { return codec_.model()->options.image_size(); }

const std::vector<std::string>& InferenceEngine::words() const { return gpt_.format.field(label_field_).words; }

nlohmann::json InferenceEngine::describe() const {
  const auto& image = gpt_.format.field(image_field_);
  return {{"run_dir", run_dir_},
          {"device", device_.str()},
          {"image_size", image_size()},
          {"gpt", {{"options", options_to_json(gpt_.model->options)},
                   {"parameters", gpt_.model->num_params()},
                   {"iter", gpt_.meta.value("iter", int64_t(0))}}},
          {"tokenizer", {{"kind", codec_.kind()},
                         {"alphabet", codec_.alphabet()},
                         {"letters_per_image", codec_.codes_per_image()},
                         {"options", options_to_json(codec_.model()->options)}}},
          {"format", gpt_.format.to_json()},
          {"vocabulary", gpt_.tokenizer.chars()},
          {"image_field", image.name},
          {"label_field", gpt_.format.field(label_field_).name},
          {"labels", words()}};
}

std::vector<std::string> InferenceEngine::encode(const at::Tensor& images) {
  VLM_CHECK(images.dim() == 4 && images.size(1) == 1 && images.size(2) == image_size() &&
                images.size(3) == image_size(),
            "encode: expected images (N, 1, ", image_size(), ", ", image_size(), "), got ", images.sizes());
  return codec_.encode_text(images);
}

// Chunks of 64 images: the reference CNN's activations for 768 images at once (180 MB) made it 4x slower an image.
at::Tensor InferenceEngine::decode(const std::vector<std::string>& letters) { return codec_.decode_text(letters, 64); }

at::Tensor InferenceEngine::grade(const at::Tensor& images) { return classifier_probabilities(classifier_, images, 64); }

at::Tensor InferenceEngine::classify(const std::vector<std::string>& letters) {
  const auto& format = gpt_.format;
  std::vector<Record> records;
  for (const auto& l : letters) {
    format.check_value(image_field_, l, "classify");
    Record r{classify_template_, std::vector<std::string>(format.num_fields())};
    r.values[image_field_] = l;
    records.push_back(std::move(r));
  }
  return classify_exact(gpt_.model, gpt_.tokenizer, format, records, {}, /*batch_size=*/1024, label_field_).probs;
}

std::vector<GenerateResult> InferenceEngine::generate(const std::vector<GenerateRequest>& requests) {
  const auto& format = gpt_.format;
  const int64_t V = gpt_.tokenizer.vocab_size();
  std::vector<std::string> prompts;
  for (const auto& q : requests) {
    VLM_CHECK(q.label >= 0 && q.label < static_cast<int64_t>(words().size()), "generate: no class ", q.label);
    VLM_CHECK(q.n >= 1, "generate: n must be positive, got ", q.n);
    VLM_CHECK(q.temperature > 0, "generate: temperature must be > 0, got ", q.temperature);
    VLM_CHECK(q.top_k >= 0 && q.top_k <= V, "generate: top_k must be in [0, ", V, "], got ", q.top_k);
    Record r{generate_template_, std::vector<std::string>(format.num_fields())};
    r.values[label_field_] = words()[q.label];
    prompts.push_back(format.prompt(r, generate_template_, image_field_));
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
std::vector<GenerateResult> InferenceEngine::generate_same_length(const std::vector<GenerateRequest>& requests,
                                                                  const std::vector<std::string>& prompts) {
  const auto& format = gpt_.format;
  const auto& tokenizer = gpt_.tokenizer;
  GPT& model = gpt_.model;
  torch::NoGradGuard no_grad;
  const auto device = model->wte->weight.device();
  const int64_t R = static_cast<int64_t>(requests.size()), T0 = static_cast<int64_t>(prompts[0].size());
  const int64_t block = model->options.block_size();
  VLM_CHECK(T0 >= 1 && T0 < block, "generate: a prompt of ", T0, " characters does not fit the block of ", block);
  const int64_t pad_id = tokenizer.pad_id(), V = tokenizer.vocab_size();
  const float ninf = -std::numeric_limits<float>::infinity();

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
      auto ids = tokenizer.encode(prompts[r]);
      auto idx = at::tensor(ids, at::kLong).view({1, T0}).to(device);
      state.logits = model->forward(idx, &state.cache, true).select(1, 0);
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

  std::vector<FormatCursor> cursors;
  std::vector<std::string> allowed;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < requests[r].n; ++i) {
      cursors.emplace_back(format);
      cursors.back().push(prompts[r]);
      allowed.push_back(cursors.back().allowed());
    }
  std::vector<char> row_finished(B, 0), request_done(R, 0);
  std::vector<std::vector<int64_t>> generated(B);
  int64_t active = R;
  for (int64_t pos = T0; pos < block && active > 0; ++pos) {
    auto last = logits.to(at::kCPU, at::kFloat);  // (B, V)
    auto next_all = at::full({B}, pad_id, at::kLong);
    for (int64_t r = 0; r < R; ++r) {
      if (request_done[r]) continue;
      const int64_t s = start[r], n = requests[r].n;
      auto mask = at::full({n, V}, ninf, at::kFloat);
      auto m = mask.accessor<float, 2>();
      for (int64_t b = 0; b < n; ++b)
        for (char c : row_finished[s + b] ? std::string(1, format.pad()) : allowed[s + b]) m[b][tokenizer.id(c)] = 0;
      auto x = (last.narrow(0, s, n) + mask) / requests[r].temperature;
      const int64_t k = std::min<int64_t>(requests[r].top_k, V);
      if (k > 0 && k < V) {
        auto kth = std::get<0>(x.topk(k, -1)).narrow(-1, k - 1, 1);
        x = x.masked_fill(x < kth, ninf);
      }
      auto next = at::multinomial(at::softmax(x, -1), 1, /*replacement=*/false, generators[r]).squeeze(-1);
      next_all.narrow(0, s, n).copy_(next);
      auto na = next.accessor<int64_t, 1>();
      bool all_finished = true;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t row = s + b;
        generated[row].push_back(na[b]);
        if (na[b] == pad_id) row_finished[row] = 1;
        if (!row_finished[row]) {
          cursors[row].try_push(tokenizer.character(na[b]));
          allowed[row] = cursors[row].allowed();
          if (cursors[row].complete() && allowed[row] == std::string(1, format.pad())) row_finished[row] = 1;
        }
        all_finished &= row_finished[row] != 0;
      }
      if (all_finished || pos + 1 >= block) request_done[r] = 1, --active;
    }
    if (active == 0 || pos + 1 >= block) break;
    logits = model->forward(next_all.view({B, 1}).to(device), &cache, true).select(1, 0);
  }

  std::vector<GenerateResult> out(R);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t b = start[r]; b < start[r + 1]; ++b) {
      std::string completion;
      for (int64_t id : generated[b]) {
        if (id == pad_id) break;  // the pad that ended the line
        completion += tokenizer.character(id);
      }
      std::string value;
      try {
        Record parsed = format.parse(prompts[r] + completion);
        if (parsed.tmpl == generate_template_ && parsed.values[label_field_] == words()[requests[r].label])
          value = parsed.values[image_field_];
      } catch (const Error&) {
        // not a line of the format: invalid, as generate_per_class counts it
      }
      out[r].completions.push_back(std::move(completion));
      out[r].letters.push_back(std::move(value));
    }
  return out;
}

}  // namespace vlm
