#include "vlm/train/gpt_trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/progress.h"
#include "vlm/eval/classify.h"
#include "vlm/io/checkpoint.h"

namespace vlm {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Options, schedule, presets

void GPTTrainOptions::validate() const {
  VLM_CHECK(batch_size > 0, "--batch_size must be positive, got ", batch_size);
  VLM_CHECK(max_iters >= 0, "--max_iters must be >= 0, got ", max_iters);
  VLM_CHECK(learning_rate > 0 && min_lr >= 0, "--learning_rate must be positive and --min_lr >= 0");
  VLM_CHECK(warmup_iters >= 0, "--warmup_iters must be >= 0, got ", warmup_iters);
  VLM_CHECK(!decay_lr || lr_decay_iters > warmup_iters, "--lr_decay_iters (", lr_decay_iters,
            ") must exceed --warmup_iters (", warmup_iters, ")");
  VLM_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "--beta1 and --beta2 must be in [0, 1)");
  VLM_CHECK(weight_decay >= 0 && grad_clip >= 0, "--weight_decay and --grad_clip must be >= 0");
  VLM_CHECK(eval_interval >= 0 && checkpoint_interval >= 0 && log_interval >= 0 && eval_iters > 0,
            "--eval_interval, --checkpoint_interval, --log_interval must be >= 0 and --eval_iters positive");
  VLM_CHECK(init_from == "scratch" || init_from == "resume", "--init_from must be scratch or resume, got '", init_from,
            "'");
  VLM_CHECK(!out_dir.empty(), "--out_dir must not be empty");
  parse_template_mode(template_mode);
}

nlohmann::json GPTTrainOptions::to_json() const {
  return {{"out_dir", out_dir},
          {"init_from", init_from},
          {"eval_interval", eval_interval},
          {"eval_iters", eval_iters},
          {"eval_classify", eval_classify},
          {"final_classify", final_classify},
          {"log_interval", log_interval},
          {"checkpoint_interval", checkpoint_interval},
          {"batch_size", batch_size},
          {"template_mode", template_mode},
          {"ignore_padding", ignore_padding},
          {"learning_rate", learning_rate},
          {"max_iters", max_iters},
          {"weight_decay", weight_decay},
          {"beta1", beta1},
          {"beta2", beta2},
          {"grad_clip", grad_clip},
          {"decay_lr", decay_lr},
          {"warmup_iters", warmup_iters},
          {"lr_decay_iters", lr_decay_iters},
          {"min_lr", min_lr},
          {"seed", seed}};
}

double learning_rate_at(const GPTTrainOptions& o, int64_t it) {
  if (!o.decay_lr) return o.learning_rate;
  if (it < o.warmup_iters)
    return o.learning_rate * static_cast<double>(it + 1) / static_cast<double>(o.warmup_iters + 1);
  if (it > o.lr_decay_iters) return o.min_lr;
  const double ratio = static_cast<double>(it - o.warmup_iters) / static_cast<double>(o.lr_decay_iters - o.warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));  // 1 -> 0
  return o.min_lr + coeff * (o.learning_rate - o.min_lr);
}

void apply_seed_preset(GPTOptions& m, GPTTrainOptions& t) {
  m.block_size(32).n_layer(8).n_head(8).n_embd(384).dropout(0.2).bias(false);
  t.batch_size = 256;
  t.learning_rate = 1e-3;
  t.min_lr = 1e-4;
  t.max_iters = 5000;
  t.lr_decay_iters = 5000;
  t.warmup_iters = 100;
  t.beta1 = 0.9;
  t.beta2 = 0.99;
  t.weight_decay = 0.1;
  t.grad_clip = 1.0;
  t.eval_interval = 250;
  t.checkpoint_interval = 250;
  t.eval_iters = 20;
  t.eval_classify = 1000;  // a forward of this model over 10k prompts takes minutes here; the final eval uses all
  t.template_mode = "once";
  t.ignore_padding = false;  // nanoGPT trains on every character, padding included
}

void apply_cpu_preset(GPTOptions& m, GPTTrainOptions& t) {
  // Chosen by measurement on 2 cores (docs/lm_presets.md).
  m.block_size(32).n_layer(4).n_head(4).n_embd(128).dropout(0.0).bias(false);
  t.batch_size = 64;
  t.learning_rate = 2e-3;
  t.min_lr = 2e-4;
  t.max_iters = 4000;
  t.lr_decay_iters = 4000;
  t.warmup_iters = 100;
  t.beta1 = 0.9;
  t.beta2 = 0.99;
  t.weight_decay = 0.1;
  t.grad_clip = 1.0;
  t.eval_interval = 1000;
  t.checkpoint_interval = 1000;
  t.eval_iters = 20;
  t.eval_classify = 2000;
  t.template_mode = "both";
  t.ignore_padding = true;
}

nlohmann::json GPTEvalResult::to_json() const {
  nlohmann::json j = {{"iter", iter}, {"train_loss", train_loss}, {"val_loss", val_loss}, {"val_loss_all", val_loss_all}};
  if (val_accuracy >= 0) j["val_accuracy"] = val_accuracy;
  return j;
}

nlohmann::json GPTPhaseTimes::to_json(int64_t iters) const {
  const double n = std::max<int64_t>(iters, 1);
  return {{"data_ms", 1e3 * data / n},         {"forward_ms", 1e3 * forward / n},
          {"backward_ms", 1e3 * backward / n}, {"optimizer_ms", 1e3 * optimizer / n},
          {"eval_s", eval},                    {"checkpoint_s", checkpoint}};
}

// ---------------------------------------------------------------------------------------------------------------
// Data

TokenizedSequences TokenizedSequences::build(const std::vector<Sequence>& seqs, const CharTokenizer& tok,
                                             int64_t block_size) {
  VLM_CHECK(!seqs.empty(), "no sequences to train or evaluate on");
  TokenizedSequences d;
  const int64_t N = static_cast<int64_t>(seqs.size()), L = block_size;
  d.tokens = at::empty({N, 2, L}, at::kLong);
  d.once_template = at::empty({N}, at::kLong);
  auto* tp = d.tokens.data_ptr<int64_t>();
  auto* op = d.once_template.data_ptr<int64_t>();
  d.images.reserve(seqs.size());
  d.labels.reserve(seqs.size());
  for (int64_t i = 0; i < N; ++i) {
    Sequence s = seqs[i];
    op[i] = static_cast<int64_t>(s.tmpl);
    for (int64_t t = 0; t < 2; ++t) {
      s.tmpl = static_cast<Template>(t);
      d.max_text_length = std::max<int64_t>(d.max_text_length, format_sequence_unpadded(s).size());
      auto ids = tok.encode(format_sequence(s, L));
      std::copy(ids.begin(), ids.end(), tp + (i * 2 + t) * L);
    }
    d.images.push_back(s.image);
    d.labels.push_back(s.label);
  }
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// Trainer

namespace {
std::unique_ptr<torch::optim::AdamW> make_optimizer(GPT& model, const GPTTrainOptions& o) {
  // Weight decay on the matrices (Linear weights, embeddings) only, as nanoGPT's configure_optimizers.
  std::vector<at::Tensor> decay, no_decay;
  for (auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto base = torch::optim::AdamWOptions(o.learning_rate).betas({o.beta1, o.beta2}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(base).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay,
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), base);
}
}  // namespace

GPTTrainer::GPTTrainer(GPTTrainOptions train, GPTOptions model, CharTokenizer tokenizer,
                       const std::vector<Sequence>& train_set, const std::vector<Sequence>& val_set)
    : opt_(std::move(train)), tokenizer_(std::move(tokenizer)), mode_(parse_template_mode(opt_.template_mode)) {
  opt_.validate();
  if (opt_.init_from == "resume") {
    auto head = peek_checkpoint(checkpoint_path());
    model = GPTOptions::from_json(head["meta"].at("gpt"));
    auto stored = CharTokenizer::from_json(head["meta"].at("tokenizer"));
    VLM_CHECK(stored == tokenizer_, "'", checkpoint_path(), "' was trained with vocabulary \"", stored.chars(),
              "\", this run's data gives \"", tokenizer_.chars(), "\"");
  }
  model.vocab_size(tokenizer_.vocab_size());
  model.validate();
  at::manual_seed(opt_.seed);
  data_gen_ = at::make_generator<at::CPUGeneratorImpl>(opt_.seed + 1);
  model_ = GPT(model);
  optimizer_ = make_optimizer(model_, opt_);

  train_ = TokenizedSequences::build(train_set, tokenizer_, model.block_size());
  val_ = TokenizedSequences::build(val_set, tokenizer_, model.block_size());
  // Rows are whole sequences: block_size characters give block_size - 1 (input, target) pairs. Without padding in
  // the loss, the trailing '#' inputs change no counted logit (causal), so rows stop at the longest text.
  train_T_ = opt_.ignore_padding ? train_.max_text_length - 1 : model.block_size() - 1;
  if (opt_.init_from == "resume") resume();
}

GPTTrainer::~GPTTrainer() = default;

std::string GPTTrainer::checkpoint_path() const { return (std::filesystem::path(opt_.out_dir) / "ckpt.pt").string(); }
std::string GPTTrainer::best_checkpoint_path() const {
  return (std::filesystem::path(opt_.out_dir) / "best.pt").string();
}

GPTBatch GPTTrainer::get_batch() {
  const int64_t B = opt_.batch_size, N = train_.size(), T = train_T_;
  GPTBatch b;
  at::Tensor rows;
  if (mode_ == TemplateMode::kBoth) {
    auto k = at::randint(2 * N, {B}, data_gen_, at::kLong);  // (B) over every (image, template) pair
    b.index = k.remainder(N);
    b.templates = k.div(N, "floor");
  } else {
    b.index = at::randint(N, {B}, data_gen_, at::kLong);  // (B)
    b.templates = mode_ == TemplateMode::kFresh ? at::randint(2, {B}, data_gen_, at::kLong)
                                                : train_.once_template.index_select(0, b.index);
  }
  rows = train_.tokens.index({b.index, b.templates});  // (B, L)
  b.x = rows.narrow(1, 0, T).contiguous();           // (B, T)
  b.y = rows.narrow(1, 1, T).contiguous();           // (B, T)
  if (opt_.ignore_padding) b.y.masked_fill_(b.y == tokenizer_.pad_id(), -1);
  return b;
}

at::Tensor GPTTrainer::loss_of(const at::Tensor& logits, const at::Tensor& y) const {
  const int64_t V = logits.size(-1);
  return at::cross_entropy_loss(logits.reshape({-1, V}), y.reshape({-1}), {}, at::Reduction::Mean, -1);
}

GPTEvalResult GPTTrainer::evaluate(bool classify_all) {  // classify_all: the final evaluation
  torch::NoGradGuard no_grad;
  const bool was_training = model_->is_training();
  model_->eval();
  GPTEvalResult r;
  r.iter = iter_;
  const int64_t pad = tokenizer_.pad_id();
  // Fixed subsets (the first eval_iters * batch_size sequences, in their stored templates), so that successive
  // evaluations compare like with like and consume no randomness of the training run.
  auto split_loss = [&](const TokenizedSequences& d, double* all) {
    const int64_t n = std::min(d.size(), opt_.eval_iters * opt_.batch_size), L = d.tokens.size(2);
    double sum_masked = 0, sum_all = 0;
    int64_t count_masked = 0, count_all = 0;
    for (int64_t s = 0; s < n; s += opt_.batch_size) {
      const int64_t B = std::min(opt_.batch_size, n - s);
      auto idx = at::arange(s, s + B, at::kLong);
      auto rows = d.tokens.index({idx, d.once_template.narrow(0, s, B)});  // (B, L)
      auto x = rows.narrow(1, 0, L - 1), y = rows.narrow(1, 1, L - 1);    // (B, L-1)
      auto logits = model_->forward(x.contiguous());                        // (B, L-1, V)
      auto nll = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}), {},
                                        at::Reduction::None);  // (B*(L-1))
      auto keep = y.reshape({-1}) != pad;
      sum_all += nll.sum().item<double>();
      count_all += nll.numel();
      sum_masked += nll.masked_select(keep).sum().item<double>();
      count_masked += keep.sum().item<int64_t>();
    }
    if (all) *all = sum_all / count_all;
    return opt_.ignore_padding ? sum_masked / count_masked : sum_all / count_all;
  };
  r.train_loss = split_loss(train_, nullptr);
  r.val_loss = split_loss(val_, &r.val_loss_all);
  if ((classify_all ? opt_.final_classify : opt_.eval_classify) != 0) {
    const int64_t want = classify_all ? opt_.final_classify : opt_.eval_classify;
    const int64_t n = want < 0 ? val_.size() : std::min(val_.size(), want);
    std::vector<std::string> images(val_.images.begin(), val_.images.begin() + n);
    std::vector<int64_t> labels(val_.labels.begin(), val_.labels.begin() + n);
    auto c = classify_images(model_, tokenizer_, images, 1000);
    r.val_accuracy = classification_accuracy(c.predicted, labels);
  }
  if (was_training) model_->train();
  return r;
}

void GPTTrainer::save_checkpoint(const std::string& path) {
  ensure_directory(opt_.out_dir);
  nlohmann::json meta = {{"gpt", model_->options.to_json()},
                         {"tokenizer", tokenizer_.to_json()},
                         {"train", opt_.to_json()},
                         {"iter", iter_},
                         {"best_val_loss", best_val_loss_}};
  CheckpointWriter w("gpt", kCheckpointVersion, meta);
  w.add_module("model", *model_)
      .add_optimizer("optimizer", *optimizer_)
      .add_tensor("rng_cpu", cpu_rng_state())
      .add_tensor("rng_data", data_gen_.get_state());
  w.save(path);
}

void GPTTrainer::resume() {
  CheckpointReader r(checkpoint_path(), "gpt", kCheckpointVersion);
  r.load_module("model", *model_);
  r.load_optimizer("optimizer", *optimizer_);
  iter_ = r.meta().at("iter").get<int64_t>();
  best_val_loss_ = r.meta().at("best_val_loss").get<double>();
  set_cpu_rng_state(r.tensor("rng_cpu"));
  data_gen_.set_state(r.tensor("rng_data"));
}

void GPTTrainer::log_json(const nlohmann::json& j) {
  ensure_directory(opt_.out_dir);
  std::ofstream f(std::filesystem::path(opt_.out_dir) / "metrics.jsonl", std::ios::app);
  VLM_CHECK(f, "cannot append to '", opt_.out_dir, "/metrics.jsonl'");
  f << j.dump() << "\n";
}

double measure_gemm_gflops(int64_t n, double seconds) {
  torch::NoGradGuard no_grad;
  auto a = at::randn({n, n}), b = at::randn({n, n}), c = at::empty({n, n});
  at::mm_out(c, a, b);  // warm-up: thread pool, packing buffers
  int64_t reps = 0;
  auto t0 = Clock::now();
  do {
    at::mm_out(c, a, b);
    ++reps;
  } while (seconds_since(t0) < seconds);
  return 2.0 * n * n * n * reps / seconds_since(t0) / 1e9;
}

GPTTrainSummary GPTTrainer::train() {
  GPTTrainSummary s;
  s.start_iter = iter_;
  s.tokens_per_row = train_T_;
  const auto wall0 = Clock::now();
  ensure_directory(opt_.out_dir);
  if (opt_.init_from == "scratch" && iter_ == 0)
    write_text_atomically((std::filesystem::path(opt_.out_dir) / "metrics.jsonl").string(), "");
  if (opt_.measure_gemm) s.gemm_gflops = measure_gemm_gflops();
  const int64_t tokens_per_iter = opt_.batch_size * train_T_;
  const double flops_per_iter = model_->flops_per_token(train_T_) * static_cast<double>(tokens_per_iter);
  if (!opt_.quiet) {
    fmt::print("gpt: {:.2f}M parameters, {} train / {} val sequences, {} tokens per iteration (T = {}), "
               "template mode {}, {} to {}\n",
               model_->num_params() / 1e6, train_.size(), val_.size(), tokens_per_iter, train_T_, opt_.template_mode,
               iter_ == 0 ? "from scratch" : fmt::format("resumed at iter {}", iter_), opt_.max_iters);
    if (s.gemm_gflops > 0) fmt::print("gemm reference: {:.1f} GFLOP/s (1024^3 at::mm, this process)\n", s.gemm_gflops);
    std::fflush(stdout);
  }

  auto do_eval = [&](bool final_eval) {
    auto t0 = Clock::now();
    GPTEvalResult r = evaluate(final_eval);
    s.phases.eval += seconds_since(t0);
    s.last_eval = r;
    if (!opt_.quiet) {
      fmt::print("step {}: train loss {:.4f}, val loss {:.4f} (all targets {:.4f}){}\n", r.iter, r.train_loss,
                 r.val_loss, r.val_loss_all,
                 r.val_accuracy >= 0 ? fmt::format(", val accuracy {:.4f}", r.val_accuracy) : "");
      std::fflush(stdout);
    }
    auto j = r.to_json();
    j["kind"] = "eval";
    j["elapsed_s"] = seconds_since(wall0);
    log_json(j);
    if (r.val_loss < best_val_loss_) {
      best_val_loss_ = r.val_loss;
      auto t1 = Clock::now();
      save_checkpoint(best_checkpoint_path());
      s.phases.checkpoint += seconds_since(t1);
    }
  };
  auto do_checkpoint = [&] {
    auto t0 = Clock::now();
    save_checkpoint(checkpoint_path());
    s.phases.checkpoint += seconds_since(t0);
  };

  model_->train();
  double step_seconds = 0, window_seconds = 0;
  int64_t window_iters = 0;
  double window_loss = 0;
  while (iter_ < opt_.max_iters) {
    if (opt_.eval_interval > 0 && iter_ % opt_.eval_interval == 0 && iter_ != s.start_iter) do_eval(false);
    if (opt_.checkpoint_interval > 0 && iter_ % opt_.checkpoint_interval == 0 && iter_ != s.start_iter)
      do_checkpoint();

    const double lr = learning_rate_at(opt_, iter_);
    for (auto& g : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);

    auto t0 = Clock::now();
    GPTBatch batch = get_batch();
    auto t1 = Clock::now();
    auto logits = model_->forward(batch.x);  // (B, T, V)
    auto loss = loss_of(logits, batch.y);
    if (loss_hook_) loss = loss_hook_(iter_, loss);
    const double loss_value = loss.item<double>();
    auto t2 = Clock::now();
    VLM_CHECK(std::isfinite(loss_value), "training diverged at iter ", iter_, ": the loss is ", loss_value,
              "; stopped before the update. The last good checkpoint '", checkpoint_path(),
              "' is untouched: lower --learning_rate or raise --warmup_iters, then continue with --init_from=resume");
    loss.backward();
    auto t3 = Clock::now();
    double grad_norm = 0;
    if (opt_.grad_clip > 0) {
      grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), opt_.grad_clip);
      VLM_CHECK(std::isfinite(grad_norm), "training diverged at iter ", iter_, ": the gradient norm is ", grad_norm,
                "; stopped before the update. The last good checkpoint '", checkpoint_path(),
                "' is untouched: lower --learning_rate, then continue with --init_from=resume");
    }
    optimizer_->step();
    optimizer_->zero_grad();
    auto t4 = Clock::now();
    s.phases.data += std::chrono::duration<double>(t1 - t0).count();
    s.phases.forward += std::chrono::duration<double>(t2 - t1).count();
    s.phases.backward += std::chrono::duration<double>(t3 - t2).count();
    s.phases.optimizer += std::chrono::duration<double>(t4 - t3).count();
    const double dt = std::chrono::duration<double>(t4 - t0).count();
    step_seconds += dt;
    window_seconds += dt;
    window_loss += loss_value;
    ++window_iters;
    ++iter_;

    if (opt_.log_interval > 0 && (iter_ % opt_.log_interval == 0 || iter_ == opt_.max_iters)) {
      const double ms = 1e3 * window_seconds / window_iters;
      const double mfu = s.gemm_gflops > 0 ? flops_per_iter / (ms * 1e-3) / (s.gemm_gflops * 1e9) : 0;
      const double done = static_cast<double>(iter_ - s.start_iter);
      const double eta = seconds_since(wall0) / done * static_cast<double>(opt_.max_iters - iter_);
      if (!opt_.quiet) {
        fmt::print("iter {}: loss {:.4f}, time {:.2f}ms, {:.0f} tok/s, mfu {:.2f}%, lr {:.2e}, eta {}\n", iter_,
                   window_loss / window_iters, ms, tokens_per_iter / (ms * 1e-3), 100 * mfu, lr,
                   Progress::format_duration(eta));
        std::fflush(stdout);
      }
      log_json({{"kind", "train"}, {"iter", iter_}, {"loss", window_loss / window_iters}, {"lr", lr},
                {"ms_per_iter", ms}, {"tokens_per_s", tokens_per_iter / (ms * 1e-3)}, {"mfu", mfu},
                {"grad_norm", grad_norm}});
      window_seconds = 0;
      window_loss = 0;
      window_iters = 0;
    }
  }
  if (iter_ != s.start_iter || s.start_iter == 0) {
    do_eval(true);
    do_checkpoint();
  }

  s.end_iter = iter_;
  s.best_val_loss = best_val_loss_;
  s.wall_seconds = seconds_since(wall0);
  const int64_t steps = iter_ - s.start_iter;
  if (steps > 0) {
    s.ms_per_iter = 1e3 * step_seconds / steps;
    s.tokens_per_second = tokens_per_iter * steps / step_seconds;
    if (s.gemm_gflops > 0) s.mfu = flops_per_iter * steps / step_seconds / (s.gemm_gflops * 1e9);
  }
  nlohmann::json j = {{"kind", "summary"},        {"start_iter", s.start_iter}, {"end_iter", s.end_iter},
                      {"wall_s", s.wall_seconds}, {"ms_per_iter", s.ms_per_iter},
                      {"tokens_per_s", s.tokens_per_second}, {"gemm_gflops", s.gemm_gflops}, {"mfu", s.mfu},
                      {"phases", s.phases.to_json(steps)},   {"best_val_loss", s.best_val_loss},
                      {"last_eval", s.last_eval.to_json()}};
  log_json(j);
  if (!opt_.quiet) {
    const double n = std::max<int64_t>(steps, 1);
    fmt::print("done: {} iterations in {} ({:.2f} ms/iter, {:.0f} tok/s, mfu {:.2f}% of {:.1f} GFLOP/s)\n"
               "per iteration: data {:.2f} ms, forward {:.2f} ms, backward {:.2f} ms, optimizer {:.2f} ms; "
               "eval {:.1f} s, checkpoints {:.1f} s in total\n",
               steps, Progress::format_duration(s.wall_seconds), s.ms_per_iter, s.tokens_per_second, 100 * s.mfu,
               s.gemm_gflops, 1e3 * s.phases.data / n, 1e3 * s.phases.forward / n, 1e3 * s.phases.backward / n,
               1e3 * s.phases.optimizer / n, s.phases.eval, s.phases.checkpoint);
    std::fflush(stdout);
  }
  return s;
}

LoadedGPT load_gpt_checkpoint(const std::string& path) {
  CheckpointReader r(path, "gpt", GPTTrainer::kCheckpointVersion);
  LoadedGPT out;
  out.meta = r.meta();
  VLM_CHECK(out.meta.contains("gpt") && out.meta.contains("tokenizer"), "'", path,
            "' lacks the GPT options or tokenizer in its metadata");
  out.model = GPT(GPTOptions::from_json(out.meta["gpt"]));
  out.tokenizer = CharTokenizer::from_json(out.meta["tokenizer"]);
  r.load_module("model", *out.model);
  out.model->eval();
  return out;
}

}  // namespace vlm
