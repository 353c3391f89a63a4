#include "vlm/train/gpt_trainer.h"

#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
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
#include "vlm/core/runtime.h"
#include "vlm/eval/classify.h"
#include "vlm/io/checkpoint.h"
#include "vlm/models/gpt_checkpoint.h"

namespace vlm {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Options, schedule, records

void GPTTrainOptions::validate() const {
  VLM_CHECK(batch_size > 0, "--batch_size must be positive, got ", batch_size);
  VLM_CHECK(max_iters >= 0, "--max_iters must be >= 0, got ", max_iters);
  VLM_CHECK(learning_rate > 0 && min_lr >= 0, "--learning_rate must be positive and --min_lr >= 0");
  VLM_CHECK(warmup_iters >= 0, "--warmup_iters must be >= 0, got ", warmup_iters);
  VLM_CHECK(lr_decay_iters >= 0, "--lr_decay_iters must be >= 0 (0 = --max_iters), got ", lr_decay_iters);
  VLM_CHECK(!decay_lr || max_iters == 0 || decay_iters() > warmup_iters, "--lr_decay_iters (", decay_iters(),
            lr_decay_iters > 0 ? "" : ", --max_iters's", ") must exceed --warmup_iters (", warmup_iters, ")");
  VLM_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "--beta1 and --beta2 must be in [0, 1)");
  VLM_CHECK(weight_decay >= 0 && grad_clip >= 0, "--weight_decay and --grad_clip must be >= 0");
  VLM_CHECK(eval_interval >= 0 && checkpoint_interval >= 0 && log_interval >= 0 && eval_iters > 0,
            "--eval_interval, --checkpoint_interval, --log_interval must be >= 0 and --eval_iters positive");
  VLM_CHECK(eval_classify >= -1 && final_classify >= -1, "--eval_classify and --final_classify must be >= -1");
  VLM_CHECK(init_from == "scratch" || init_from == "resume", "--init_from must be scratch or resume, got '", init_from,
            "'");
  VLM_CHECK(!out_dir.empty() || init_from == "scratch", "--init_from=resume needs the --out_dir to resume from");
  VLM_CHECK(peak_gflops >= 0, "--peak_gflops must be >= 0, got ", peak_gflops);
  parse_template_mode(template_mode);
}

int64_t GPTTrainOptions::decay_iters() const { return lr_decay_iters > 0 ? lr_decay_iters : max_iters; }

double learning_rate_at(const GPTTrainOptions& o, int64_t it) {
  if (!o.decay_lr) return o.learning_rate;
  const int64_t decay_iters = o.decay_iters();
  if (it < o.warmup_iters)
    return o.learning_rate * static_cast<double>(it + 1) / static_cast<double>(o.warmup_iters + 1);
  if (it > decay_iters) return o.min_lr;
  const double ratio = static_cast<double>(it - o.warmup_iters) / static_cast<double>(decay_iters - o.warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));  // 1 -> 0
  return o.min_lr + coeff * (o.learning_rate - o.min_lr);
}

nlohmann::json GPTStepLog::to_json() const {
  return {{"kind", "train"}, {"iter", iter},        {"loss", loss}, {"lr", lr},
          {"ms_per_iter", ms_per_iter}, {"tokens_per_s", tokens_per_second}, {"mfu", mfu}, {"grad_norm", grad_norm}};
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
          {"all_reduce_ms", 1e3 * all_reduce / n}, {"eval_s", eval}, {"checkpoint_s", checkpoint}};
}

nlohmann::json GPTTrainResult::to_json() const {
  auto j = common_json();  // seconds, steps, val_loss, val_accuracy: as every trainer's
  j.update({{"kind", "summary"},         {"start_iter", start_iter},
            {"end_iter", steps},         {"ms_per_iter", ms_per_iter},
            {"tokens_per_s", tokens_per_second}, {"peak_gflops", peak.gflops},
            {"peak_source", peak.source}, {"mfu", mfu},
            {"phases", phases.to_json(steps - start_iter)},
            {"best_val_loss", best_val_loss}, {"last_eval", last_eval.to_json()}});
  return j;
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

// The keys whose values differ between two JSON objects, for "resume with other options" errors.
std::string differing_keys(const nlohmann::json& a, const nlohmann::json& b) {
  std::string out;
  for (const auto& [key, value] : a.items())
    if (!b.contains(key) || b[key] != value)
      out += fmt::format("{}{} = {} (checkpoint: {})", out.empty() ? "" : ", ", key, b.value(key, nlohmann::json()).dump(),
                         value.dump());
  return out;
}
}  // namespace

GPTTrainer::GPTTrainer(GPTOptions model, GPTTrainOptions train, TokenDataset train_set, TokenDataset val_set,
                       c10::Device device)
    : opt_(std::move(train)),
      device_(device),
      train_(std::move(train_set)),
      val_(std::move(val_set)),
      mode_(parse_template_mode(opt_.template_mode)) {
  opt_.validate();
  VLM_CHECK(train_.format == val_.format, "GPTTrainer: the training data's sequence format ",
            train_.format.to_json().dump(), " differs from the validation data's ", val_.format.to_json().dump());
  model.vocab_size(train_.tokenizer.vocab_size());
  model.validate();
  VLM_CHECK(train_.block_size() == model.block_size() && val_.block_size() == model.block_size(),
            "GPTTrainer: the data is padded to ", train_.block_size(), " and ", val_.block_size(),
            " characters, the model's block_size is ", model.block_size());
  if (opt_.init_from == "resume") {
    auto stored = read_gpt_checkpoint_header(checkpoint_path());
    VLM_CHECK(stored.format == train_.format, "'", checkpoint_path(), "' was trained on the sequence format ",
              stored.format.to_json().dump(), ", this run's data has ", train_.format.to_json().dump());
    const auto want = options_to_json(model), have = options_to_json(stored.options);
    VLM_CHECK(want == have, "cannot resume '", checkpoint_path(), "' with a different model: ",
              differing_keys(have, want), ". Give the checkpoint's options, or start again with --init_from=scratch");
  }
  at::manual_seed(opt_.seed);
  data_gen_ = at::make_generator<at::CPUGeneratorImpl>(opt_.seed + 1);
  model_ = GPT(model);
  model_->to(device_);
  optimizer_ = make_optimizer(model_, opt_);
  // Rows are whole sequences: block_size characters give block_size - 1 (input, target) pairs. Without padding in
  // the loss, the trailing '#' inputs change no counted logit (causal), so rows stop at the longest text.
  train_T_ = opt_.ignore_padding ? train_.max_text_length - 1 : model.block_size() - 1;
  if (opt_.init_from == "resume") resume();
}

GPTTrainer::~GPTTrainer() = default;  // here: GradientReducer is complete

bool GPTTrainer::writes_files() const { return !opt_.out_dir.empty(); }

std::string GPTTrainer::recovery_hint(const std::string& fix) const {
  if (!writes_files()) return fix + " (the run keeps no checkpoint: it had no --out_dir)";
  return "The last good checkpoint '" + checkpoint_path() + "' is untouched: " + fix +
         ", then continue with --init_from=resume";
}

std::string GPTTrainer::checkpoint_path() const { return (std::filesystem::path(opt_.out_dir) / "ckpt.pt").string(); }
std::string GPTTrainer::best_checkpoint_path() const {
  return (std::filesystem::path(opt_.out_dir) / "best.pt").string();
}

void GPTTrainer::set_process_group(ProcessGroup* group) {
  group_ = group && group->distributed() ? group : nullptr;
  if (!group_) return;
  VLM_CHECK(opt_.batch_size % group_->world_size() == 0, "--batch_size=", opt_.batch_size,
            " (the global batch) must be a multiple of the ", group_->world_size(), " processes");
  group_->broadcast(model_->parameters());  // rank 0's weights (fresh or resumed) everywhere
  group_->broadcast(model_->buffers());
  reducer_ = std::make_unique<GradientReducer>(*group_, model_->parameters());
  // Dropout masks: each rank its own stream (rank 0 keeps the one a single process would draw, and saves it), so
  // the shards are not dropped alike. With dropout the run equals one process in distribution, not bit for bit.
  if (group_->rank() > 0) at::manual_seed(opt_.seed + 7919 * static_cast<uint64_t>(group_->rank()) + iter_);
}

bool GPTTrainer::is_main() const { return !group_ || group_->is_main(); }

GPTBatch GPTTrainer::get_batch() {
  const int64_t B = opt_.batch_size, N = train_.size(), T = train_T_;
  GPTBatch b;
  const int64_t K = train_.num_templates();
  if (mode_ == TemplateMode::kAll) {
    auto k = at::randint(K * N, {B}, data_gen_, at::kLong);  // (B) over every (record, template) pair
    b.index = k.remainder(N);
    b.templates = k.div(N, "floor");
  } else {
    b.index = at::randint(N, {B}, data_gen_, at::kLong);  // (B)
    b.templates = mode_ == TemplateMode::kFresh ? at::randint(K, {B}, data_gen_, at::kLong)
                                                : train_.once_template.index_select(0, b.index);
  }
  auto rows = train_.tokens.index({b.index, b.templates});  // (B, L)
  b.x = rows.narrow(1, 0, T).contiguous();                 // (B, T)
  b.y = rows.narrow(1, 1, T).contiguous();                 // (B, T)
  if (opt_.ignore_padding) b.y.masked_fill_(b.y == train_.tokenizer.pad_id(), -1);
  b.global_targets = opt_.ignore_padding ? b.y.ne(-1).sum().item<int64_t>() : b.y.numel();
  if (group_) {
    // Every rank drew the same global batch from the same data RNG; each keeps its own contiguous rows.
    const int64_t rows_per_rank = B / group_->world_size(), first = group_->rank() * rows_per_rank;
    b.x = b.x.narrow(0, first, rows_per_rank).contiguous();
    b.y = b.y.narrow(0, first, rows_per_rank).contiguous();
    b.index = b.index.narrow(0, first, rows_per_rank);
    b.templates = b.templates.narrow(0, first, rows_per_rank);
  }
  return b;
}

GPTEvalResult GPTTrainer::evaluate(bool final_eval) {
  torch::NoGradGuard no_grad;
  const bool was_training = model_->is_training();
  model_->eval();
  GPTEvalResult r;
  r.iter = iter_;
  const int64_t pad = train_.tokenizer.pad_id();
  // Fixed subsets (the first eval_iters * batch_size sequences, in their stored templates), so that successive
  // evaluations compare like with like and consume no randomness of the training run. Data-parallel, rank r takes
  // every W-th batch and the sums are added across ranks.
  const int64_t rank = group_ ? group_->rank() : 0, world = group_ ? group_->world_size() : 1;
  auto split_loss = [&](const TokenDataset& d, double* all) {
    const int64_t n = std::min(d.size(), opt_.eval_iters * opt_.batch_size), L = d.block_size();
    std::vector<double> sums(4, 0.0);  // masked sum, masked count, all sum, all count
    for (int64_t s = rank * opt_.batch_size; s < n; s += world * opt_.batch_size) {
      const int64_t B = std::min(opt_.batch_size, n - s);
      auto rows = d.tokens.index({at::arange(s, s + B, at::kLong), d.once_template.narrow(0, s, B)});  // (B, L)
      auto x = rows.narrow(1, 0, L - 1).to(device_), y = rows.narrow(1, 1, L - 1).reshape({-1});     // (B, L-1)
      auto logits = model_->forward(x);                                                               // (B, L-1, V)
      auto nll = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).cpu(), y, {},
                                        at::Reduction::None);  // (B*(L-1))
      auto keep = y != pad;
      sums[2] += nll.sum().item<double>();
      sums[3] += static_cast<double>(nll.numel());
      sums[0] += nll.masked_select(keep).sum().item<double>();
      sums[1] += static_cast<double>(keep.sum().item<int64_t>());
    }
    if (group_) sums = group_->all_reduce_sum(sums);
    if (all) *all = sums[2] / sums[3];
    return opt_.ignore_padding ? sums[0] / sums[1] : sums[2] / sums[3];
  };
  r.train_loss = split_loss(train_, nullptr);
  r.val_loss = split_loss(val_, &r.val_loss_all);
  const int64_t want = final_eval ? opt_.final_classify : opt_.eval_classify;
  // Every label field read from the codec fields (a format that can classify): the combination's accuracy.
  const auto classes = label_combinations(train_.format);
  bool can_classify = !classes.fields.empty();
  for (int64_t f : classes.fields) can_classify &= train_.format.reading_template(f) >= 0;
  if (want != 0 && can_classify) {
    const int64_t n = want < 0 ? val_.size() : std::min(val_.size(), want);
    // This rank's contiguous share of the first n validation records.
    const int64_t first = n * rank / world, last = n * (rank + 1) / world;
    std::vector<std::vector<int64_t>> field_labels;
    for (int64_t f : classes.fields) field_labels.push_back(val_.labels(f));
    std::vector<int64_t> mine;
    for (int64_t i = first; i < last; ++i) {
      std::vector<int64_t> c;
      for (const auto& l : field_labels) c.push_back(l[static_cast<size_t>(i)]);
      mine.push_back(classes.index(c));
    }
    std::vector<Record> records(val_.records.begin() + first, val_.records.begin() + last);
    std::vector<double> right{0.0};
    if (!records.empty()) {
      auto c = classify_joint(model_, train_.tokenizer, train_.format, records, {}, 1000);
      for (size_t i = 0; i < mine.size(); ++i) right[0] += c.predicted[i] == mine[i];
    }
    if (group_) right = group_->all_reduce_sum(right);
    r.val_accuracy = right[0] / static_cast<double>(n);
  }
  if (was_training) model_->train();
  return r;
}

void GPTTrainer::save_checkpoint(const std::string& path) {
  if (!is_main() || !writes_files()) return;  // one writer: the ranks hold identical weights
  ensure_directory(opt_.out_dir);
  nlohmann::json meta = gpt_checkpoint_meta(model_, train_.tokenizer, train_.format, iter_);
  meta["train"] = options_to_json(opt_);
  meta["best_val_loss"] = best_val_loss_;
  CheckpointWriter w(kGPTCheckpointKind, kGPTCheckpointVersion, meta);
  w.add_module("model", *model_)
      .add_optimizer("optimizer", *optimizer_)
      .add_tensor("rng_cpu", cpu_rng_state())
      .add_tensor("rng_data", data_gen_.get_state());
  w.save(path);
}

void GPTTrainer::resume() {
  CheckpointReader r(checkpoint_path(), kGPTCheckpointKind, kGPTCheckpointVersion);
  r.load_module("model", *model_);
  r.load_optimizer("optimizer", *optimizer_);
  iter_ = r.meta().at("iter").get<int64_t>();
  best_val_loss_ = r.meta().at("best_val_loss").get<double>();
  set_cpu_rng_state(r.tensor("rng_cpu"));
  data_gen_.set_state(r.tensor("rng_data"));
}

void GPTTrainer::log_json(const nlohmann::json& j) {
  if (!is_main() || !writes_files()) return;
  ensure_directory(opt_.out_dir);
  const auto path = std::filesystem::path(opt_.out_dir) / "metrics.jsonl";
  std::ofstream f(path, std::ios::app);
  VLM_CHECK(f, "cannot append to '", path.string(), "': ", std::strerror(errno));
  f << j.dump() << "\n";
}

// One optimisation step at learning rate `lr`; returns the loss. Times go to `phases`.
double GPTTrainer::step(double lr, GPTPhaseTimes& phases, double* grad_norm) {
  for (auto& g : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  auto t0 = Clock::now();
  GPTBatch batch = get_batch();
  auto x = batch.x.to(device_), y = batch.y.to(device_);
  auto t1 = Clock::now();
  auto logits = model_->forward(x);  // (B, T, V)
  // The mean over the global batch's counted targets: this shard's sum divided by the global count, so that the
  // gradients summed over ranks are those of the whole batch in one process.
  auto loss = group_ ? at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}), {},
                                              at::Reduction::Sum, -1) /
                           static_cast<double>(batch.global_targets)
                     : at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), y.reshape({-1}), {},
                                              at::Reduction::Mean, -1);
  if (loss_hook_) loss = loss_hook_(iter_, loss);
  double value = loss.item<double>();
  auto t2 = Clock::now();
  VLM_CHECK(std::isfinite(value), "training diverged at iter ", iter_, ": the loss is ", value,
            "; stopped before the update. ", recovery_hint("lower --learning_rate or raise --warmup_iters"));
  // Data-parallel: the gradients are summed across ranks bucket by bucket while backward runs, the loss along.
  at::Tensor loss_sum;
  if (group_) {
    loss_sum = at::full({1}, value, at::kFloat);
    reducer_->begin({loss_sum});
  }
  loss.backward();
  if (group_) {
    const auto t_reduce = Clock::now();
    reducer_->finish();
    value = loss_sum.item<double>();
    VLM_CHECK(std::isfinite(value), "training diverged at iter ", iter_, " on another rank: the loss is ", value);
    phases.all_reduce += seconds_since(t_reduce);
  }
  auto t3 = Clock::now();
  *grad_norm = 0;
  if (opt_.grad_clip > 0) {
    *grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), opt_.grad_clip);
    VLM_CHECK(std::isfinite(*grad_norm), "training diverged at iter ", iter_, ": the gradient norm is ", *grad_norm,
              "; stopped before the update. ", recovery_hint("lower --learning_rate"));
  }
  optimizer_->step();
  optimizer_->zero_grad();
  auto t4 = Clock::now();
  phases.data += std::chrono::duration<double>(t1 - t0).count();
  phases.forward += std::chrono::duration<double>(t2 - t1).count();
  phases.backward += std::chrono::duration<double>(t3 - t2).count();
  phases.optimizer += std::chrono::duration<double>(t4 - t3).count();
  return value;
}

void GPTTrainer::evaluate_and_keep_best(bool final_eval, GPTTrainResult& s) {
  auto t0 = Clock::now();
  GPTEvalResult r = evaluate(final_eval);
  s.phases.eval += seconds_since(t0);
  s.last_eval = r;
  if (!opt_.quiet && is_main())
    fmt::print("step {}: train loss {:.4f}, val loss {:.4f} (all targets {:.4f}){}\n", r.iter, r.train_loss,
               r.val_loss, r.val_loss_all,
               r.val_accuracy >= 0 ? fmt::format(", val accuracy {:.4f}", r.val_accuracy) : "");
  auto j = r.to_json();
  j["kind"] = "eval";
  log_json(j);
  if (r.val_loss < best_val_loss_) {
    best_val_loss_ = r.val_loss;
    auto t1 = Clock::now();
    save_checkpoint(best_checkpoint_path());
    s.phases.checkpoint += seconds_since(t1);
  }
  if (hooks_.on_eval) hooks_.on_eval(r);
  std::fflush(stdout);
}

void GPTTrainer::checkpoint(GPTTrainResult& s) {
  auto t0 = Clock::now();
  save_checkpoint(checkpoint_path());
  s.phases.checkpoint += seconds_since(t0);
  if (hooks_.on_checkpoint && is_main() && writes_files()) hooks_.on_checkpoint(iter_, checkpoint_path());
}

GPTTrainResult GPTTrainer::train() {
  GPTTrainResult s;
  s.start_iter = iter_;
  s.tokens_per_row = train_T_;
  s.peak = peak_flops(device_.is_cpu(), std::max(current_threads().torch, current_threads().blas), opt_.peak_gflops);
  const auto wall0 = Clock::now();
  const bool quiet = opt_.quiet || !is_main();
  if (is_main() && writes_files()) ensure_directory(opt_.out_dir);
  if (is_main() && writes_files() && opt_.init_from == "scratch" && iter_ == 0)
    write_text_atomically((std::filesystem::path(opt_.out_dir) / "metrics.jsonl").string(), "");
  const int64_t tokens_per_iter = opt_.batch_size * train_T_;
  const double flops_per_iter = model_->flops_per_token(train_T_) * static_cast<double>(tokens_per_iter);
  if (group_) s.peak.gflops *= static_cast<double>(group_->world_size());  // every process's cores
  if (!quiet) {
    fmt::print("gpt: {:.2f}M parameters, {} train / {} val sequences, {} tokens per iteration (T = {}), "
               "template mode {}, {} to {} on {}{}\nmfu reference: {:.1f} GFLOP/s, {}\n",
               model_->num_params() / 1e6, train_.size(), val_.size(), tokens_per_iter, train_T_, opt_.template_mode,
               iter_ == 0 ? "from scratch" : fmt::format("resumed at iter {}", iter_), opt_.max_iters, device_.str(),
               group_ ? fmt::format(", data-parallel over {} processes", group_->world_size()) : "",
               s.peak.gflops, s.peak.source);
    std::fflush(stdout);
  }
  auto mfu_of = [&](double seconds_per_iter) {
    return s.peak.gflops > 0 ? flops_per_iter / seconds_per_iter / (s.peak.gflops * 1e9) : 0.0;
  };

  model_->train();
  double step_seconds = 0;
  GPTStepLog window;  // sums since the last log line
  int64_t window_iters = 0;
  double window_seconds = 0;
  while (iter_ < opt_.max_iters) {
    if (iter_ != s.start_iter && opt_.eval_interval > 0 && iter_ % opt_.eval_interval == 0)
      evaluate_and_keep_best(false, s);
    if (iter_ != s.start_iter && opt_.checkpoint_interval > 0 && iter_ % opt_.checkpoint_interval == 0) checkpoint(s);

    const auto t0 = Clock::now();
    window.lr = learning_rate_at(opt_, iter_);
    window.loss += step(window.lr, s.phases, &window.grad_norm);
    const double dt = seconds_since(t0);
    step_seconds += dt, window_seconds += dt, ++window_iters, ++iter_;

    if (opt_.log_interval > 0 && (iter_ % opt_.log_interval == 0 || iter_ == opt_.max_iters)) {
      GPTStepLog line = window;
      line.iter = iter_;
      line.loss /= window_iters;
      line.ms_per_iter = 1e3 * window_seconds / window_iters;
      line.tokens_per_second = tokens_per_iter / (line.ms_per_iter * 1e-3);
      line.mfu = mfu_of(line.ms_per_iter * 1e-3);
      const double eta = seconds_since(wall0) / double(iter_ - s.start_iter) * double(opt_.max_iters - iter_);
      if (!quiet) {
        fmt::print("iter {}: loss {:.4f}, time {:.2f}ms, {:.0f} tok/s, mfu {:.2f}%, lr {:.2e}, eta {}\n", iter_,
                   line.loss, line.ms_per_iter, line.tokens_per_second, 100 * line.mfu, line.lr,
                   Progress::format_duration(eta));
        std::fflush(stdout);
      }
      log_json(line.to_json());
      if (hooks_.on_log) hooks_.on_log(line);
      window = {}, window_iters = 0, window_seconds = 0;
    }
  }
  if (iter_ != s.start_iter || s.start_iter == 0) {
    evaluate_and_keep_best(true, s);
    checkpoint(s);
  }

  s.steps = iter_;
  s.val_loss = s.last_eval.val_loss;
  if (s.last_eval.val_accuracy >= 0) s.val_accuracy = s.last_eval.val_accuracy;
  s.best_val_loss = best_val_loss_;
  s.seconds = seconds_since(wall0);
  const int64_t steps = iter_ - s.start_iter;
  if (steps > 0) {
    s.ms_per_iter = 1e3 * step_seconds / steps;
    s.tokens_per_second = tokens_per_iter * steps / step_seconds;
    s.mfu = mfu_of(step_seconds / steps);
  }
  log_json(s.to_json());
  if (!quiet) {
    const double n = std::max<int64_t>(steps, 1);
    fmt::print("done: {} iterations in {} ({:.2f} ms/iter, {:.0f} tok/s, mfu {:.2f}% of {:.1f} GFLOP/s)\n"
               "per iteration: data {:.2f} ms, forward {:.2f} ms, backward {:.2f} ms{}, optimizer {:.2f} ms; "
               "eval {:.1f} s, checkpoints {:.1f} s in total\n",
               steps, Progress::format_duration(s.seconds), s.ms_per_iter, s.tokens_per_second, 100 * s.mfu,
               s.peak.gflops, 1e3 * s.phases.data / n, 1e3 * s.phases.forward / n, 1e3 * s.phases.backward / n,
               group_ ? fmt::format(" (of which all-reduce {:.2f} ms)", 1e3 * s.phases.all_reduce / n) : "",
               1e3 * s.phases.optimizer / n, s.phases.eval, s.phases.checkpoint);
    std::fflush(stdout);
  }
  return s;
}

}  // namespace vlm
