#include "vlm/sample/sampler.h"

#include <limits>
#include <map>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "vlm/core/check.h"
#include "vlm/sample/shared_prefix.h"
#include "vlm/sample/constrained_rows.h"

namespace vlm {

Sampler::Sampler(GPT model, CharTokenizer tokenizer, SamplerOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(options),
      generator_(at::make_generator<at::CPUGeneratorImpl>(options.seed())) {
  VLM_CHECK(model_, "Sampler: no model");
  VLM_CHECK(model_->options.vocab_size() == tokenizer_.vocab_size(), "Sampler: the model has ",
            model_->options.vocab_size(), " tokens but the tokenizer ", tokenizer_.vocab_size());
  VLM_CHECK(options_.greedy() || options_.temperature() > 0, "Sampler: temperature must be > 0, got ",
            options_.temperature(), " (use greedy for argmax)");
  VLM_CHECK(options_.top_k() >= 0 && options_.batch_size() > 0 && options_.max_new_tokens() >= 0,
            "Sampler: top_k, batch_size and max_new_tokens must be non-negative (batch_size positive)");
  VLM_CHECK(options_.stop() == '\0' || tokenizer_.contains(options_.stop()), "Sampler: the stop character '",
            options_.stop(), "' is not in the vocabulary");
}

void Sampler::reseed(uint64_t seed) { generator_ = at::make_generator<at::CPUGeneratorImpl>(seed); }

at::Tensor Sampler::pick(at::Tensor logits) {
  return sample_next(std::move(logits), options_.temperature(), options_.top_k(), options_.greedy(), generator_);
}

std::vector<std::string> Sampler::complete(const std::vector<std::string>& prompts,
                                           const SequenceFormat* constraint) {
  // Batch prompts of equal length together, keeping the caller's order in the result.
  std::map<size_t, std::vector<size_t>> by_length;
  for (size_t i = 0; i < prompts.size(); ++i) by_length[prompts[i].size()].push_back(i);
  std::vector<std::string> out(prompts.size());
  for (const auto& [len, rows] : by_length)
    for (size_t b = 0; b < rows.size(); b += options_.batch_size()) {
      std::vector<std::string> batch;
      size_t end = std::min(rows.size(), b + static_cast<size_t>(options_.batch_size()));
      for (size_t r = b; r < end; ++r) batch.push_back(prompts[rows[r]]);
      auto done = complete_batch(batch, constraint);
      for (size_t r = b; r < end; ++r) out[rows[r]] = std::move(done[r - b]);
    }
  return out;
}

std::vector<std::string> Sampler::complete_batch(const std::vector<std::string>& prompts,
                                                 const SequenceFormat* constraint) {
  const int64_t B = static_cast<int64_t>(prompts.size()), T0 = static_cast<int64_t>(prompts[0].size());
  const int64_t block = model_->options.block_size();
  VLM_CHECK(T0 >= 1, "Sampler: empty prompt (the model needs at least one character of context)");
  VLM_CHECK(T0 < block, "Sampler: prompt of ", T0, " characters leaves no room in the block of ", block);
  std::unique_ptr<ConstrainedRows> rows;  // what the format allows each row next
  if (constraint) rows = std::make_unique<ConstrainedRows>(*constraint, tokenizer_, prompts);
  // Absolute position limit (exclusive). The cache holds at most block_size positions; without it the context is
  // cropped to the last block_size tokens, as nanoGPT's generate does, so max_new_tokens may run past the block.
  int64_t limit = block;
  if (options_.max_new_tokens() > 0)
    limit = options_.use_cache() ? std::min(block, T0 + options_.max_new_tokens()) : T0 + options_.max_new_tokens();

  const auto device = model_->parameters().front().device();
  at::NoGradGuard no_grad;
  const bool was_training = model_->is_training();
  model_->eval();

  std::vector<int64_t> ids;
  ids.reserve(B * T0);
  for (const auto& p : prompts) {
    auto e = tokenizer_.encode(p);
    ids.insert(ids.end(), e.begin(), e.end());
  }
  auto seq = at::tensor(ids, at::kLong).view({B, T0});  // (B, T) on CPU, grows by one column per step
  const int64_t stop_id = constraint ? tokenizer_.pad_id()
                                     : options_.stop() == '\0' ? -1 : tokenizer_.id(options_.stop());
  auto finished = at::zeros({B}, at::kBool);
  GPTImpl::KVCache cache;
  // Logits of the last position only (B, V): nanoGPT's inference path, plus the last block on that position alone;
  // with the cache, the prompts' common prefix (all of it for the evaluator's repeated prompts) runs once.
  at::Tensor logits = options_.use_cache() ? forward_last_shared_prefix(model_, seq.to(device), cache)
                                           : model_->forward(seq.to(device), nullptr, true).select(1, 0);  // (B, V)

  for (int64_t pos = T0; pos < limit; ++pos) {
    auto last = logits.to(at::kCPU, at::kFloat);  // (B, V)
    auto next = pick(rows ? rows->mask(last) : last);  // (B)
    tokens_generated_ += B;
    seq = at::cat({seq, next.view({B, 1})}, 1);
    if (rows) rows->push(next);
    else finished |= next.eq(stop_id);
    if ((rows ? rows->all_finished() : finished.all().item<bool>()) || pos + 1 >= limit) break;
    auto input = options_.use_cache() ? next.view({B, 1})  // (B, 1) after the cached tokens
                                      : seq.narrow(1, std::max<int64_t>(0, seq.size(1) - block),
                                                   std::min(seq.size(1), block));  // nanoGPT: the last block_size
    logits = model_->forward(input.to(device), options_.use_cache() ? &cache : nullptr, true).select(1, 0);
  }
  model_->train(was_training);

  std::vector<std::string> out(B);
  auto acc = seq.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = T0; t < seq.size(1); ++t) {
      if (constraint && acc[b][t] == stop_id) break;  // the pad that ended the line
      out[b] += tokenizer_.character(acc[b][t]);
      if (acc[b][t] == stop_id) break;
    }
  return out;
}

}  // namespace vlm
