#include "vlm/eval/classify.h"

#include <algorithm>
#include <chrono>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"
#include "vlm/dist/process_group.h"
#include "vlm/sample/shared_prefix.h"
#include "vlm/io/svg_plot.h"
#include "vlm/models/gpt_checkpoint.h"

namespace vlm {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

namespace {
// The template to classify the label field from, and the field's index.
std::pair<int64_t, int64_t> classification_template(const SequenceFormat& format, int64_t label_field) {
  if (label_field < 0) label_field = format.first_label_field();
  VLM_CHECK(label_field >= 0 && format.field(label_field).is_label(), "classify: the format has no label field ",
            label_field >= 0 ? "'" + format.field(label_field).name + "'" : std::string());
  const int64_t tmpl = format.reading_template(label_field);
  VLM_CHECK(tmpl >= 0, "classify: no template of the format writes field '", format.field(label_field).name,
            "' after every codec field, so there is no prompt to classify it from");
  return {tmpl, label_field};
}

// The label fields written before `field` in `tmpl`, then `field`: what is scored, in the template's order.
std::vector<int64_t> label_chain(const SequenceFormat& format, int64_t tmpl, int64_t field) {
  std::vector<int64_t> chain;
  for (int64_t f : format.fields_before(tmpl, field))
    if (format.field(f).is_label()) chain.push_back(f);
  chain.push_back(field);
  return chain;
}

bool sharded(const ProcessGroup* group) { return group && group->distributed(); }

std::vector<Record> slice(const std::vector<Record>& records, std::pair<int64_t, int64_t> range) {
  return {records.begin() + range.first, records.begin() + range.second};
}

// The predictions, the posterior and (with labels) the metrics, from the log-likelihoods (N, C).
void finish_exact(ExactClassification& out, const at::Tensor& labels) {
  const int64_t N = out.log_probs.size(0);
  out.predicted.assign(static_cast<size_t>(N), -1);
  if (N > 0) {
    auto pred = out.log_probs.argmax(1).contiguous();
    std::copy(pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + N, out.predicted.begin());
  }
  out.probs = at::softmax(out.log_probs, 1);  // the posterior over the words
  if (labels.defined() && N > 0) {
    out.has_labels = true;
    out.metrics = classification_metrics(at::tensor(out.predicted, at::kLong), labels.to(at::kCPU), out.words,
                                         out.probs);
  }
}

// log p(word | prompt) (N, C) for every word of `field`, the prompt being `tmpl` up to the field, earlier fields
// taken from the records.
at::Tensor word_log_probs(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                          const std::vector<Record>& records, int64_t tmpl, int64_t field, int64_t batch_size) {
  const FieldSpec& spec = format.field(field);
  const int64_t N = static_cast<int64_t>(records.size()), C = spec.num_classes();
  auto out = at::empty({N, C}, at::kFloat);
  const auto device = model->wte->weight.device();
  // Each word as model input (its characters but the last) and targets (its characters after the first). A word
  // that begins another word ("shirt" / "shirts") also needs the character that ends the field after it; in a
  // prefix-free vocabulary (the digits, Fashion-MNIST's words) the word's own characters already decide the field.
  const char delimiter = format.delimiter_after(tmpl, field);
  std::vector<at::Tensor> word_input(C), word_target(C);
  std::vector<int64_t> first_char(C);
  for (int64_t w = 0; w < C; ++w) {
    bool begins_another = false;
    for (const auto& other : spec.words)
      begins_another |=
          other.size() > spec.words[w].size() && other.compare(0, spec.words[w].size(), spec.words[w]) == 0;
    auto ids = tokenizer.encode(begins_another ? spec.words[w] + delimiter : spec.words[w]);
    first_char[w] = ids[0];
    if (ids.size() == 1) continue;  // scored by the prompt's own next-token distribution
    word_input[w] = at::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1), at::kLong).to(device);  // (Lw)
    word_target[w] = at::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end()), at::kLong).to(device);  // (Lw)
  }
  auto first_index = at::tensor(first_char, at::kLong).to(device);  // (C)

  // Absolute position embeddings: only prompts of the same length can share a batch.
  std::map<size_t, std::vector<int64_t>> by_length;
  std::vector<std::vector<int64_t>> encoded(records.size());
  for (int64_t i = 0; i < N; ++i) {
    encoded[i] = tokenizer.encode(format.prompt(records[i], tmpl, field));
    by_length[encoded[i].size()].push_back(i);
  }
  for (const auto& [T, members] : by_length) {
    for (size_t start = 0; start < members.size(); start += static_cast<size_t>(batch_size)) {
      const size_t end = std::min(members.size(), start + static_cast<size_t>(batch_size));
      const int64_t B = static_cast<int64_t>(end - start);
      auto idx = at::empty({B, static_cast<int64_t>(T)}, at::kLong);  // (B, T)
      auto* p = idx.data_ptr<int64_t>();
      for (size_t r = start; r < end; ++r)
        std::copy(encoded[members[r]].begin(), encoded[members[r]].end(), p + (r - start) * T);
      // Every prompt starts with the same characters ("image:"): they run once, shared by the batch.
      GPTImpl::KVCache cache;
      auto first = at::log_softmax(forward_last_shared_prefix(model, idx.to(device), cache).to(at::kFloat), -1);
      auto lp = first.index_select(1, first_index);  // (B, C): log p(first character of each word)
      // The rest of each word and the delimiter, after the prompt's cached keys and values (the cache is shared:
      // each word's forward extends a copy of it).
      for (int64_t w = 0; w < C; ++w) {
        if (!word_input[w].defined()) continue;
        GPTImpl::KVCache word_cache = cache;
        const int64_t Lw = word_input[w].size(0);
        auto logits = model->forward(word_input[w].unsqueeze(0).expand({B, Lw}), &word_cache);  // (B, Lw, V)
        auto rest = at::log_softmax(logits.to(at::kFloat), -1)
                        .gather(2, word_target[w].view({1, Lw, 1}).expand({B, Lw, 1}))
                        .sum({1, 2});  // (B)
        lp.select(1, w).add_(rest);
      }
      auto rows = at::tensor(std::vector<int64_t>(members.begin() + start, members.begin() + end), at::kLong);
      out.index_copy_(0, rows, lp.cpu());
    }
  }
  return out;
}

// The joint log-likelihood (N, C_1 * ... * C_m) of the label fields `chain` (in the order `tmpl` writes them, the
// first the most significant): each field scored after the earlier ones are set to each of their words. The literal
// text between fields is not scored (the format fixes it, as constrained decoding does).
at::Tensor chain_log_probs(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                           std::vector<Record> records, int64_t tmpl, const std::vector<int64_t>& chain,
                           int64_t batch_size) {
  auto first = word_log_probs(model, tokenizer, format, records, tmpl, chain[0], batch_size);  // (N, C0)
  if (chain.size() == 1) return first;
  const std::vector<int64_t> rest(chain.begin() + 1, chain.end());
  std::vector<at::Tensor> parts;
  for (int64_t w = 0; w < first.size(1); ++w) {
    for (auto& r : records) r.values[chain[0]] = format.field(chain[0]).words[w];
    parts.push_back(first.narrow(1, w, 1) + chain_log_probs(model, tokenizer, format, records, tmpl, rest, batch_size));
  }
  return at::cat(parts, 1);
}

// classify_exact and classify_joint: `log_probs` (N, C) from the records, sharded over a group.
template <class LogProbs>
ExactClassification classify_with(const std::vector<Record>& records, const at::Tensor& labels,
                                  std::vector<std::string> words, ProcessGroup* group, GPT& model,
                                  const LogProbs& log_probs) {
  const int64_t N = static_cast<int64_t>(records.size());
  VLM_CHECK(!labels.defined() || (labels.dim() == 1 && labels.size(0) == N), "classify_exact: ", N,
            " records but labels of shape ", labels.defined() ? labels.sizes() : at::IntArrayRef{});
  const auto t0 = Clock::now();
  ExactClassification out;
  out.words = std::move(words);
  const bool was_training = model->is_training();
  model->eval();
  {
    torch::NoGradGuard no_grad;
    if (sharded(group))
      out.log_probs = group->all_gather_rows(log_probs(slice(records, group->shard(N))));  // (N, C), in record order
    else
      out.log_probs = log_probs(records);
  }
  if (was_training) model->train();
  finish_exact(out, labels);
  out.seconds = since(t0);
  return out;
}
}  // namespace

ExactClassification classify_exact(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                   const std::vector<Record>& records, const at::Tensor& labels, int64_t batch_size,
                                   int64_t label_field, ProcessGroup* group) {
  VLM_CHECK(batch_size > 0, "classify_exact: batch_size must be positive, got ", batch_size);
  const auto [tmpl, field] = classification_template(format, label_field);
  const auto chain = label_chain(format, tmpl, field);
  const int64_t C = format.field(field).num_classes();
  return classify_with(records, labels, format.field(field).words, group, model, [&](const std::vector<Record>& rs) {
    if (rs.empty()) return at::empty({0, C}, at::kFloat);
    auto joint = chain_log_probs(model, tokenizer, format, rs, tmpl, chain, batch_size);  // (N, ... * C)
    // The label fields written before this one are not given: summed over.
    return chain.size() == 1 ? joint : joint.view({joint.size(0), -1, C}).logsumexp(1);
  });
}

ExactClassification classify_joint(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                   const std::vector<Record>& records, const at::Tensor& labels, int64_t batch_size,
                                   ProcessGroup* group) {
  VLM_CHECK(batch_size > 0, "classify_joint: batch_size must be positive, got ", batch_size);
  const auto all = label_combinations(format);
  VLM_CHECK(!all.fields.empty(), "classify_joint: the format has no label field");
  // The template that writes every label field after the codec fields: the reading template of its last one.
  int64_t tmpl = -1;
  std::vector<int64_t> chain;
  for (int64_t f : all.fields) {
    const int64_t t = format.reading_template(f);
    if (t < 0) continue;
    auto c = label_chain(format, t, f);
    if (c.size() == all.fields.size()) tmpl = t, chain = c;
  }
  VLM_CHECK(tmpl >= 0, "classify_joint: no template of the format writes every label field after the codec fields");
  // The chain's order is the template's; combinations are numbered in the format's order.
  std::vector<int64_t> sizes, order;
  for (int64_t f : chain) sizes.push_back(format.field(f).num_classes());
  for (int64_t f : all.fields)
    order.push_back(1 + (std::find(chain.begin(), chain.end(), f) - chain.begin()));
  order.insert(order.begin(), 0);
  return classify_with(records, labels, all.names(format), group, model, [&](const std::vector<Record>& rs) {
    if (rs.empty()) return at::empty({0, all.count()}, at::kFloat);
    auto joint = chain_log_probs(model, tokenizer, format, rs, tmpl, chain, batch_size);
    std::vector<int64_t> shape = {joint.size(0)};
    shape.insert(shape.end(), sizes.begin(), sizes.end());
    return joint.view(shape).permute(order).reshape({joint.size(0), all.count()}).contiguous();
  });
}

nlohmann::json ExactClassification::to_json() const {
  nlohmann::json j = has_labels ? metrics.to_json() : nlohmann::json{{"n", predicted.size()}};
  j["seconds"] = seconds;
  return j;
}

double classification_accuracy(const std::vector<int64_t>& predicted, const std::vector<int64_t>& labels) {
  VLM_CHECK(predicted.size() == labels.size() && !labels.empty(), "classification_accuracy: ", predicted.size(),
            " predictions for ", labels.size(), " labels");
  int64_t hit = 0;
  for (size_t i = 0; i < labels.size(); ++i) hit += predicted[i] == labels[i];
  return static_cast<double>(hit) / static_cast<double>(labels.size());
}

void write_confusion_svg(const std::string& path, const ClassificationMetrics& metrics, const std::string& title) {
  std::vector<std::string> names = metrics.class_names;
  for (int64_t c = static_cast<int64_t>(names.size()); c < metrics.num_classes; ++c) names.push_back(std::to_string(c));
  std::vector<std::vector<double>> m;
  for (const auto& row : metrics.confusion) m.emplace_back(row.begin(), row.end());
  plot::save_svg(path, plot::heatmap(m, names, names, {title, "predicted", "true", 560, 560}));
}

int64_t parse_word_answer(const FieldSpec& field, const std::string& completion, char delimiter) {
  const auto end = completion.find(delimiter);
  return end == std::string::npos ? -1 : field.word_index(std::string_view(completion).substr(0, end));
}

SampledClassification classify_sampled(GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                       const std::vector<Record>& records, const at::Tensor& labels,
                                       SamplerOptions options, int64_t label_field, ProcessGroup* group) {
  auto t0 = Clock::now();
  const auto [tmpl, field] = classification_template(format, label_field);
  if (sharded(group)) {
    const auto range = group->shard(static_cast<int64_t>(records.size()));
    std::vector<int64_t> mine;
    if (range.second > range.first) {
      SamplerOptions own = options;  // rank 0 keeps one process's stream
      own.seed(options.seed() + 7919 * static_cast<uint64_t>(group->rank()));
      mine = classify_sampled(model, tokenizer, format, slice(records, range),
                              labels.narrow(0, range.first, range.second - range.first), own, label_field)
                 .predicted;
    }
    auto all = group->all_gather_rows(at::tensor(mine, at::kLong)).contiguous();  // (N), in record order
    SampledClassification out;
    out.predicted.assign(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
    out.metrics = classification_metrics(all, labels.to(at::kCPU), format.field(field).words);
    out.seconds = since(t0);
    return out;
  }
  // With label fields before this one (colour before number), the answer is the rest of the line, which must parse.
  const auto chain = label_chain(format, tmpl, field);
  const int64_t ask = chain.front();
  std::vector<std::string> prompts;
  prompts.reserve(records.size());
  for (const auto& r : records) prompts.push_back(format.prompt(r, tmpl, ask));
  // The rest of the line ends with the character after the template's last field (its final '.'): the model never
  // learned to write padding (its loss ignores it).
  const char delimiter = format.delimiter_after(tmpl, chain.size() == 1 ? field : format.field_order(tmpl).back());
  Sampler sampler(model, tokenizer, options.stop(delimiter));
  auto completions = sampler.complete(prompts);
  SampledClassification out;
  for (size_t i = 0; i < completions.size(); ++i) {
    if (chain.size() == 1) {
      out.predicted.push_back(parse_word_answer(format.field(field), completions[i], delimiter));
      continue;
    }
    int64_t answer = -1;
    try {
      const Record r = format.parse(prompts[i] + completions[i]);
      if (r.tmpl == tmpl) answer = format.field(field).word_index(r.values[field]);
    } catch (const Error&) {  // not a line of the format: an invalid answer
    }
    out.predicted.push_back(answer);
  }
  out.seconds = since(t0);
  out.metrics = classification_metrics(at::tensor(out.predicted, at::kLong), labels.to(at::kCPU),
                                       format.field(field).words);
  return out;
}

nlohmann::json SampledClassification::to_json() const {
  auto j = metrics.to_json();
  j["seconds"] = seconds;
  return j;
}

CheckpointAccuracy accuracy_over_checkpoints(const std::vector<std::string>& checkpoints,
                                             const std::vector<Record>& records, const at::Tensor& labels,
                                             int64_t batch_size, c10::Device device, ProcessGroup* group) {
  CheckpointAccuracy out;
  for (const auto& path : checkpoints) {
    auto loaded = load_gpt_checkpoint(path, device);
    auto r = classify_joint(loaded.model, loaded.tokenizer, loaded.format, records, labels, batch_size, group);
    out.rows.push_back({path, loaded.meta.value("iter", int64_t(0)), r.metrics.accuracy, r.metrics.std_error});
  }
  return out;
}

nlohmann::json CheckpointAccuracy::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const auto& r : rows)
    rows_json.push_back(
        {{"checkpoint", r.checkpoint}, {"iter", r.iter}, {"accuracy", r.accuracy}, {"std_error", r.std_error}});
  return rows_json;
}

void write_accuracy_over_checkpoints_svg(const std::string& path, const CheckpointAccuracy& accuracy) {
  plot::Series s{"exact classification", {}, {}, {}};
  for (const auto& r : accuracy.rows)
    s.x.push_back(static_cast<double>(r.iter)), s.y.push_back(r.accuracy), s.yerr.push_back(r.std_error);
  plot::save_svg(path, plot::line_chart({s}, {"Classification accuracy over training (+- 1 standard error)",
                                              "iteration", "accuracy"}));
}

}  // namespace vlm
