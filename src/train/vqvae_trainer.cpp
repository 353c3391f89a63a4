#include "vlm/train/vqvae_trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <utility>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/progress.h"
#include "vlm/dist/process_group.h"
#include "vlm/io/checkpoint.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace vlm {

nlohmann::json VQVAEEpochLog::to_json() const {
  return {{"epoch", epoch},           {"lr", lr},
          {"train_loss", train_loss}, {"train_recon_mse", train_recon},
          {"train_vq_loss", train_vq}, {"val_loss", val_loss},
          {"val_recon_mse", val_recon}, {"val_vq_loss", val_vq},
          {"perplexity", perplexity}, {"codes_used", codes_used},
          {"val_perplexity", val_perplexity}, {"val_codes_used", val_codes_used},
          {"train_label_loss", train_label_loss}, {"train_label_acc", train_label_acc},
          {"train_mi", train_mi},     {"train_view_agreement", train_view_agreement},
          {"restarts", restarts},     {"seconds", seconds},
          {"improved", improved}};
}

std::string VQVAEEpochLog::views_summary() const {
  if (train_view_agreement <= 0) return {};
  return fmt::format("  views: MI {:.3f} nats, letters shared {:.3f}", train_mi, train_view_agreement);
}

VQVAEEpochLog VQVAEEpochLog::from_json(const nlohmann::json& j) {
  VQVAEEpochLog e;
  j.at("epoch").get_to(e.epoch);
  j.at("lr").get_to(e.lr);
  j.at("train_loss").get_to(e.train_loss);
  j.at("train_recon_mse").get_to(e.train_recon);
  j.at("train_vq_loss").get_to(e.train_vq);
  j.at("val_loss").get_to(e.val_loss);
  j.at("val_recon_mse").get_to(e.val_recon);
  j.at("val_vq_loss").get_to(e.val_vq);
  j.at("perplexity").get_to(e.perplexity);
  j.at("codes_used").get_to(e.codes_used);
  j.at("val_perplexity").get_to(e.val_perplexity);
  j.at("val_codes_used").get_to(e.val_codes_used);
  j.at("train_label_loss").get_to(e.train_label_loss);
  j.at("train_label_acc").get_to(e.train_label_acc);
  e.train_mi = j.value("train_mi", 0.0);  // absent in logs written before the unsupervised objectives
  e.train_view_agreement = j.value("train_view_agreement", 0.0);
  j.at("restarts").get_to(e.restarts);
  j.at("seconds").get_to(e.seconds);
  j.at("improved").get_to(e.improved);
  return e;
}

VQVAETrainOptions VQVAETrainOptions::preset(const std::string& variant) {
  VQVAETrainOptions o;
  if (variant == "mlp") return o;
  VLM_CHECK(variant == "conv", "unknown VQ-VAE variant '", variant, "'; expected mlp or conv");
  o.learning_rate = 2e-3;
  o.lr_schedule = "cosine";
  o.max_epochs = 15;
  o.patience = 0;
  o.monitor = "val_recon";
  // Caption alignment, measured at 5 epochs (test MSE / 10-NN probe): off 0.0194 / 0.878, joint 0.01 0.0147 / 0.938,
  // joint 0.05 0.0164 / 0.979, per_code 0.01 0.0205 / 0.973 (docs/results.md).
  o.label_weight = 0.05;
  return o;
}

nlohmann::json tokenizer_metrics(const VQVAEEvaluation& test, const TokenStats& stats, const ProbeResult& probe,
                                 const VQVAETrainResult& result, const std::string& monitor) {
  return {{"test", {{"images", probe.queries},
                    {"recon_mse", test.recon_mse},
                    {"vq_loss", test.vq_loss},
                    {"perplexity", stats.perplexity},
                    {"codes_used", stats.codes_used},
                    {"distinct_fraction", stats.distinct_fraction},
                    {"probe_k", probe.k},
                    {"probe_accuracy", probe.accuracy}}},
          {"training", {{"seconds", result.seconds},
                        {"epochs", result.history.size()},
                        {"best_epoch", result.best_epoch},
                        {"monitor", monitor},
                        {"best_monitored", result.best_val_loss},
                        {"early_stopped", result.early_stopped}}}};
}

VQVAEEvaluation evaluate_vqvae(VQVAE& model, const at::Tensor& images, int64_t batch_size, bool keep_recon,
                               bool keep_latents) {
  VLM_CHECK(batch_size > 0, "evaluate_vqvae: batch_size must be positive, got ", batch_size);
  at::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  const int64_t n = images.size(0);
  double sq_err = 0, vq = 0;
  std::vector<at::Tensor> codes, recons, latents;
  for (int64_t i = 0; i < n; i += batch_size) {
    auto x = images.slice(0, i, i + batch_size).to(device);  // (b, 1, H, W)
    auto out = model->forward(x);
    sq_err += (out.recon - x).pow(2).sum().item<double>();
    vq += out.vq_loss.item<double>() * x.size(0);  // batch means, weighted back to a mean over images
    codes.push_back(out.codes.cpu());
    if (keep_recon) recons.push_back(out.recon.cpu());
    if (keep_latents) latents.push_back(out.latents.cpu());
  }
  model->train(was_training);
  VQVAEEvaluation e;
  VLM_CHECK(n > 0, "evaluate_vqvae: no images");
  e.recon_mse = sq_err / static_cast<double>(images.numel());
  e.vq_loss = vq / n;
  e.loss = e.recon_mse + e.vq_loss;
  e.codes = at::cat(codes);
  if (keep_recon) e.recon = at::cat(recons);
  if (keep_latents) e.latents = at::cat(latents);
  return e;
}

namespace {
// A copy of every parameter and buffer, to put the best epoch back at the end.
std::vector<at::Tensor> snapshot(const VQVAE& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  for (const auto& b : model->buffers()) out.push_back(b.detach().clone());
  return out;
}
void restore(VQVAE& model, const std::vector<at::Tensor>& state) {
  at::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : model->parameters()) p.copy_(state[i++]);
  for (auto& b : model->buffers()) b.copy_(state[i++]);
}

}  // namespace

// The caption-alignment head: linear maps from quantized latents to class logits, discarded after training.
struct VQVAETrainer::LabelHead {
  bool per_code = true;
  at::Tensor weight, bias;  // per_code: (L, D, C), (L, 1, C); joint: (L*D, C), (C)

  LabelHead(const std::string& kind, int64_t L, int64_t D, int64_t C, c10::Device device) : per_code(kind == "per_code") {
    VLM_CHECK(kind == "per_code" || kind == "joint", "--label_head must be per_code or joint, got '", kind, "'");
    VLM_CHECK(C >= 2, "--num_classes must be at least 2, got ", C);
    const int64_t fan_in = per_code ? D : L * D;
    auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
    weight = (per_code ? at::randn({L, D, C}, opts) : at::randn({L * D, C}, opts)) / std::sqrt(double(fan_in));
    bias = per_code ? at::zeros({L, 1, C}, opts) : at::zeros({C}, opts);
    weight.set_requires_grad(true);
    bias.set_requires_grad(true);
  }
  // quantized (B, L, D) -> logits (B, C) of the joint head
  at::Tensor logits(const at::Tensor& quantized) const { return at::addmm(bias, quantized.flatten(1), weight); }
  // quantized (B, L, D), labels (B) -> (mean cross-entropy, accuracy); per_code averages over the L positions.
  std::pair<at::Tensor, double> loss(const at::Tensor& quantized, const at::Tensor& labels) const {
    const int64_t B = quantized.size(0), L = quantized.size(1);
    if (per_code) {
      auto logits = at::baddbmm(bias, quantized.transpose(0, 1), weight);  // (L, B, C)
      auto target = labels.unsqueeze(0).expand({L, B}).reshape({-1});      // (L*B)
      auto flat = logits.reshape({L * B, -1});                             // (L*B, C)
      const double acc = flat.argmax(1).eq(target).to(at::kFloat).mean().item<double>();
      return {at::cross_entropy_loss(flat, target), acc};
    }
    auto logits = this->logits(quantized);  // (B, C)
    const double acc = logits.argmax(1).eq(labels).to(at::kFloat).mean().item<double>();
    return {at::cross_entropy_loss(logits, labels), acc};
  }
};

namespace {
// IIC's objective (Ji et al. 2019, their eq. 3 with the joint symmetrised and floored as in their code): the mutual
// information between the cluster assignments of paired views, from their joint distribution (C, C) (the mean over
// the batch of pa^T pb, for soft assignments pa, pb). Returns I (a () tensor, at most ln C); the trainer minimises -I.
at::Tensor mutual_information(const at::Tensor& joint_mean) {
  auto joint = ((joint_mean + joint_mean.t()) / 2).clamp_min(1e-8);
  auto pi = joint.sum(1, /*keepdim=*/true), pj = joint.sum(0, /*keepdim=*/true);  // (C, 1), (1, C) marginals
  return (joint * (joint.log() - pi.log() - pj.log())).sum();
}
}  // namespace

// IIC's cluster head: quantized latents (B, L, D) -> cluster logits (B, C), linear or with one ReLU hidden layer.
struct VQVAETrainer::ClusterHead {
  int64_t positions = 0;           // letters read: the first `positions` of L
  std::vector<at::Tensor> params;  // linear: W (P*D, C), b (C); hidden: W1 (P*D, H), b1 (H), W2 (H, C), b2 (C)
  ClusterHead(int64_t positions_, int64_t D, int64_t hidden, int64_t C, c10::Device device) : positions(positions_) {
    const int64_t in = positions * D;
    auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
    auto layer = [&](int64_t fan_in, int64_t out) {
      params.push_back((at::randn({fan_in, out}, opts) / std::sqrt(double(fan_in))).set_requires_grad(true));
      params.push_back(at::zeros({out}, opts).set_requires_grad(true));
    };
    if (hidden > 0) layer(in, hidden), layer(hidden, C);
    else layer(in, C);
  }
  at::Tensor logits(const at::Tensor& quantized) const {
    auto h = quantized.slice(1, 0, positions).flatten(1);  // (B, positions*D)
    for (size_t i = 0; i < params.size(); i += 2) {
      if (i > 0) h = at::relu(h);
      h = at::addmm(params[i + 1], h, params[i]);
    }
    return h;  // (B, C)
  }
};

ImageClusterOptions VQVAETrainOptions::pseudo_cluster_options() const {
  ImageClusterOptions o;
  o.clusters = pseudo_clusters;
  o.neighbours = pseudo_neighbours;
  return o;
}

void VQVAETrainOptions::validate() const {
  VLM_CHECK(batch_size > 0, "--batch_size must be positive, got ", batch_size);
  VLM_CHECK(max_epochs > 0, "--max_epochs must be positive, got ", max_epochs);
  VLM_CHECK(decoder_epochs >= 0, "--decoder_epochs must be >= 0, got ", decoder_epochs);
  VLM_CHECK(init_from == "scratch" || init_from == "resume", "--init_from must be scratch or resume, got '", init_from,
            "'");
  VLM_CHECK(!out_dir.empty() || init_from == "scratch", "--init_from=resume needs the --out_dir to resume from");
  VLM_CHECK(decoder_lr >= 0, "--decoder_lr must be >= 0 (0 = --learning_rate), got ", decoder_lr);
  VLM_CHECK(patience >= 0, "--patience must be >= 0, got ", patience);
  VLM_CHECK(learning_rate > 0 && min_lr >= 0, "--learning_rate must be positive and --min_lr >= 0, got ", learning_rate,
            " and ", min_lr);
  VLM_CHECK(lr_schedule == "constant" || lr_schedule == "cosine", "--lr_schedule must be constant or cosine, got '",
            lr_schedule, "'");
  VLM_CHECK(monitor == "val_loss" || monitor == "val_recon", "--monitor must be val_loss or val_recon, got '", monitor,
            "'");
  VLM_CHECK(label_weight >= 0, "--label_weight must be >= 0, got ", label_weight);
  VLM_CHECK(label_head == "per_code" || label_head == "joint", "--label_head must be per_code or joint, got '",
            label_head, "'");
  VLM_CHECK(num_classes >= 2, "--num_classes must be at least 2, got ", num_classes);
  VLM_CHECK(mi_weight >= 0, "--mi_weight must be >= 0, got ", mi_weight);
  VLM_CHECK(mi_clusters >= 2, "--mi_clusters must be at least 2, got ", mi_clusters);
  VLM_CHECK(mi_hidden >= 0, "--mi_hidden must be >= 0, got ", mi_hidden);
  VLM_CHECK(mi_neighbours >= 0, "--mi_neighbours must be >= 0, got ", mi_neighbours);
  VLM_CHECK(mi_positions >= 0, "--mi_positions must be >= 0, got ", mi_positions);
  VLM_CHECK(mi_schedule == "constant" || mi_schedule == "lr", "--mi_schedule must be constant or lr, got '",
            mi_schedule, "'");
  VLM_CHECK(pseudo_weight >= 0, "--pseudo_weight must be >= 0, got ", pseudo_weight);
  pseudo_cluster_options().validate();
  VLM_CHECK(invariance_weight >= 0, "--invariance_weight must be >= 0, got ", invariance_weight);
  augment.validate();
  VLM_CHECK(augment.any() || !invariant_recon, "--invariant_recon needs random views, but every augmentation amount is 0");
  VLM_CHECK(augment.any() || mi_neighbours > 0 || (mi_weight == 0 && invariance_weight == 0),
            "--mi_weight and --invariance_weight need a second view: a random view (an augmentation amount > 0) or a ",
            "pixel neighbour (--mi_neighbours > 0), but every augmentation amount is 0");
  VLM_CHECK(eval_batch_size > 0, "--eval_batch_size must be positive, got ", eval_batch_size);
}

VQVAETrainer::VQVAETrainer(VQVAE model, VQVAETrainOptions options, LabeledImages train, LabeledImages validation,
                           c10::Device device)
    : model_(std::move(model)), opt_(std::move(options)), train_(std::move(train)), val_(std::move(validation)),
      device_(device) {
  opt_.validate();
  VLM_CHECK(train_.size() > 0 && val_.size() > 0, "VQVAETrainer: empty training (", train_.size(),
            ") or validation (", val_.size(), ") set");
  check_alphabet(opt_.alphabet, model_->num_embeddings());
  model_->to(device_);
  std::vector<at::Tensor> params = model_->parameters();
  if (opt_.label_weight > 0) {
    VLM_CHECK(train_.labels.defined() && train_.labels.size(0) == train_.size(),
              "--label_weight needs the training labels (one per image)");
    train_.labels = train_.labels.to(at::kLong);
    VLM_CHECK(train_.labels.min().item<int64_t>() >= 0 && train_.labels.max().item<int64_t>() < opt_.num_classes,
              "--label_weight: training labels must lie in [0, ", opt_.num_classes, ")");
    head_ = std::make_unique<LabelHead>(opt_.label_head, model_->n_codes(),
                                        model_->options.quantizer().embedding_dim(), opt_.num_classes, device_);
  }
  if (opt_.mi_weight > 0) {
    VLM_CHECK(opt_.mi_positions <= model_->n_codes(), "--mi_positions=", opt_.mi_positions, " exceeds the ",
              model_->n_codes(), " letters per image");
    const int64_t read = opt_.mi_positions > 0 ? opt_.mi_positions : model_->n_codes();
    cluster_head_ = std::make_unique<ClusterHead>(read, model_->options.quantizer().embedding_dim(), opt_.mi_hidden,
                                                  opt_.mi_clusters, device_);
  }
  if (opt_.pseudo_weight > 0) {
    VLM_CHECK(opt_.pseudo_clusters <= train_.size() && opt_.pseudo_neighbours < train_.size(), "--pseudo_clusters=",
              opt_.pseudo_clusters, " and --pseudo_neighbours=", opt_.pseudo_neighbours, " need more training images, got ",
              train_.size());
    pseudo_head_ = std::make_unique<LabelHead>("joint", model_->n_codes(), model_->options.quantizer().embedding_dim(),
                                               opt_.pseudo_clusters, device_);
  }
  for (const auto& p : head_parameters()) params.push_back(p);
  if (two_views() && opt_.mi_neighbours > 0)
    VLM_CHECK(opt_.mi_neighbours < train_.size(), "--mi_neighbours=", opt_.mi_neighbours, " needs more than that many ",
              "training images, got ", train_.size());
  optimizer_ = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(opt_.learning_rate));
  if (opt_.decoder_epochs > 0)
    decoder_optimizer_ =
        std::make_unique<torch::optim::Adam>(model_->decoder->parameters(), torch::optim::AdamOptions(opt_.learning_rate));
  steps_per_epoch_ = (train_.size() + opt_.batch_size - 1) / opt_.batch_size;
}

VQVAETrainer::~VQVAETrainer() = default;

std::vector<at::Tensor> VQVAETrainer::head_parameters() const {
  std::vector<at::Tensor> out;
  if (head_) out.insert(out.end(), {head_->weight, head_->bias});
  if (pseudo_head_) out.insert(out.end(), {pseudo_head_->weight, pseudo_head_->bias});
  if (cluster_head_) out.insert(out.end(), cluster_head_->params.begin(), cluster_head_->params.end());
  return out;
}

bool VQVAETrainer::is_main() const { return !group_ || group_->is_main(); }

void VQVAETrainer::set_process_group(ProcessGroup* group) {
  group_ = group && group->distributed() ? group : nullptr;
  model_->quantizer->set_process_group(group_);
  if (!group_) return;
  VLM_CHECK(opt_.batch_size >= group_->world_size(), "--batch_size=", opt_.batch_size, " (the global batch) is smaller ",
            "than the ", group_->world_size(), " processes");
  std::vector<at::Tensor> state = model_->parameters();
  for (const auto& b : model_->buffers()) state.push_back(b);
  for (const auto& p : head_parameters()) state.push_back(p);
  {
    at::NoGradGuard no_grad;
    group_->broadcast(state);  // rank 0's initial weights everywhere
  }
  std::vector<at::Tensor> params = model_->parameters();
  for (const auto& p : head_parameters()) params.push_back(p);
  reducer_ = std::make_unique<GradientReducer>(*group_, params);
  if (decoder_optimizer_) decoder_reducer_ = std::make_unique<GradientReducer>(*group_, model_->decoder->parameters());
}

// From lr at progress 0 to min_lr at progress 1, along a half cosine.
std::string VQVAETrainer::file(const char* name) const {
  return opt_.out_dir.empty() ? std::string() : (std::filesystem::path(opt_.out_dir) / name).string();
}

std::shared_ptr<const ImageTokenCodec> VQVAETrainer::codec() const {
  return std::make_shared<ImageTokenCodec>(model_, opt_.alphabet, device_);
}

double VQVAETrainer::cosine_lr(double progress, double peak) const {
  if (peak <= 0) peak = opt_.learning_rate;
  return opt_.min_lr + 0.5 * (peak - opt_.min_lr) * (1 + std::cos(M_PI * progress));
}

// This rank's contiguous share [lo, hi) of a global batch of `global` images; false when a last batch has fewer
// images than ranks, which all of them skip alike.
bool VQVAETrainer::rank_share(int64_t global, int64_t& lo, int64_t& hi) const {
  lo = 0, hi = global;
  if (!group_) return true;
  const int64_t W = group_->world_size(), r = group_->rank();
  if (global < W) return false;
  lo = global * r / W, hi = global * (r + 1) / W;
  return true;
}

// loss.backward() for a loss that is a mean over this rank's `share` images of a global batch of `global`: weighted
// by the share, the gradients summed over the ranks by `reducer` are those of the global batch's mean.
void VQVAETrainer::backward(const at::Tensor& loss, int64_t share, int64_t global, GradientReducer* reducer) {
  if (!group_) {
    loss.backward();
    return;
  }
  reducer->begin();
  (loss * (static_cast<double>(share) / static_cast<double>(global))).backward();
  reducer->finish();
}

// One pass over the training set in a fresh random order; fills the log's training half.
VQVAEEpochLog VQVAETrainer::train_epoch(int64_t epoch, int64_t& step) {
  const int64_t n = train_.size(), K = model_->num_embeddings(), B = opt_.batch_size;
  const int64_t total_steps = steps_per_epoch_ * opt_.max_epochs;
  auto lr_at = [&](int64_t s) {
    return opt_.lr_schedule == "constant" ? opt_.learning_rate : cosine_lr(static_cast<double>(s) / total_steps);
  };
  model_->train();
  auto order = at::randperm(n, at::kLong);  // (N), the default generator: seeded alike on every rank
  auto histogram = at::zeros({K}, at::kLong);
  // loss, recon, vq, label loss, label accuracy, images, mutual information, view agreement (all times images)
  double sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const bool show = !opt_.quiet && is_main();
  Progress bar(fmt::format("epoch {}/{}", epoch, total_epochs()), steps_per_epoch_, "batch");
  VQVAEEpochLog log;
  for (int64_t b = 0; b < steps_per_epoch_; ++b, ++step) {
    log.lr = lr_at(step);
    for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(log.lr);
    const auto batch = order.slice(0, b * B, (b + 1) * B);  // the global batch
    const int64_t global = batch.size(0);
    int64_t lo, hi;
    if (!rank_share(global, lo, hi)) continue;
    const auto idx = batch.slice(0, lo, hi);
    auto x = train_.images.index_select(0, idx).to(device_);  // (b, 1, H, W)
    const int64_t nb = x.size(0);
    // Random views are drawn for the global batch and cut to this rank's share, so that every rank draws the same
    // numbers and N processes train on the views one process would (the warp itself is cheap at 28 x 28).
    auto share_of_view = [&](const at::Tensor& global_images) {
      return augment_images(global_images.to(device_), opt_.augment).slice(0, lo, hi);
    };
    // The encoder's input: the image, or a random view of it that the decoder must undo (invariant_recon).
    auto seen = opt_.invariant_recon ? share_of_view(train_.images.index_select(0, batch)) : x;
    VQVAEOutput out;
    at::Tensor other_z;  // (b, L, D) latents of a second random view, for the two-view objectives
    if (two_views()) {
      auto second = batch;  // the images themselves, or one of each one's pixel neighbours
      if (neighbours_.defined()) {
        auto pick = at::randint(neighbours_.size(1), {global, 1}, at::kLong);   // (B, 1)
        second = neighbours_.index_select(0, batch).gather(1, pick).squeeze(1);  // (B)
      }
      auto view = share_of_view(train_.images.index_select(0, second));         // (b, 1, H, W)
      auto z = model_->encode(at::cat({seen, view}));  // (2b, L, D): one encoder pass
      out = model_->forward_latents(z.slice(0, 0, nb));  // the quantizer's statistics see the first view only
      other_z = z.slice(0, nb);
    } else {
      out = model_->forward(seen);
    }
    auto recon = at::mse_loss(out.recon, x);
    auto loss = recon + out.vq_loss;
    const double bsz = static_cast<double>(nb);
    const double mi_weight = opt_.mi_schedule == "lr" ? opt_.mi_weight * log.lr / opt_.learning_rate : opt_.mi_weight;
    double logged_correction = 0;  // data-parallel: the logged loss holds -w I, not the surrogate the step uses
    if (other_z.defined()) {
      auto other_codes = model_->quantizer->quantize(other_z);                                  // (b, L)
      auto other_q = other_z + (model_->quantizer->lookup(other_codes) - other_z).detach();  // straight-through
      if (cluster_head_) {
        auto joint = at::mm(at::softmax(cluster_head_->logits(out.quantized), 1).t(),
                            at::softmax(cluster_head_->logits(other_q), 1));  // (C, C) summed over this batch
        if (group_) {
          // The joint of the global batch, as one process would form it: its sum over the ranks, and on each rank
          // the surrogate <dI/dJ, J_rank> whose gradients, summed by the reducer, are those of I(global joint).
          auto global_joint = joint.detach().clone();
          group_->all_reduce_sum({global_joint});
          auto leaf = (global_joint / static_cast<double>(global)).set_requires_grad(true);
          auto mi = mutual_information(leaf);
          mi.backward();
          // After the loss's bsz / global scaling below this term is <dI/dJ, J_rank> / global.
          auto surrogate = (leaf.grad() * joint).sum() / bsz;
          loss = loss - mi_weight * surrogate;
          logged_correction = mi_weight * (surrogate.item<double>() - mi.item<double>());
          sums[6] += mi.item<double>() * bsz;
        } else {
          auto mi = mutual_information(joint / bsz);
          loss = loss - mi_weight * mi;
          sums[6] += mi.item<double>() * bsz;
        }
      }
      if (opt_.invariance_weight > 0) loss = loss + opt_.invariance_weight * at::mse_loss(other_z, out.quantized.detach());
      sums[7] += other_codes.eq(out.codes).to(at::kFloat).mean().item<double>() * bsz;
    }
    if (pseudo_head_) {
      auto [pseudo_loss, acc] = pseudo_head_->loss(out.quantized, pseudo_labels_.index_select(0, idx).to(device_));
      loss = loss + opt_.pseudo_weight * pseudo_loss;
      sums[3] += pseudo_loss.item<double>() * bsz;
      sums[4] += acc * bsz;
    }
    if (head_) {
      auto [label_loss, acc] = head_->loss(out.quantized, train_.labels.index_select(0, idx).to(device_));
      loss = loss + opt_.label_weight * label_loss;
      sums[3] += label_loss.item<double>() * bsz;
      sums[4] += acc * bsz;
    }
    optimizer_->zero_grad();
    backward(loss, nb, global, reducer_.get());
    optimizer_->step();
    sums[0] += (loss.item<double>() + logged_correction) * bsz;
    sums[1] += recon.item<double>() * bsz;
    sums[2] += out.vq_loss.item<double>() * bsz;
    sums[5] += bsz;
    histogram += at::bincount(out.codes.flatten().cpu(), {}, K);
    if (show) bar.update(b + 1, fmt::format("loss {:.5f}", sums[0] / sums[5]));
  }
  if (show) bar.finish();
  const auto totals = finish_epoch(std::vector<double>(sums, sums + 8), histogram, epoch, log);
  const double seen = totals[5];
  log.train_loss = totals[0] / seen;
  log.train_recon = totals[1] / seen;
  log.train_vq = totals[2] / seen;
  log.train_label_loss = totals[3] / seen;
  log.train_label_acc = totals[4] / seen;
  log.train_mi = totals[6] / seen;
  log.train_view_agreement = totals[7] / seen;
  return log;
}

// The end of a training or decoder epoch: the ranks' sums and code histograms added up, the epoch's code statistics
// into `log`; returns the summed sums.
std::vector<double> VQVAETrainer::finish_epoch(std::vector<double> sums, at::Tensor& histogram, int64_t epoch,
                                               VQVAEEpochLog& log) const {
  if (group_) {
    sums = group_->all_reduce_sum(sums);
    group_->all_reduce_sum({histogram});
  }
  log.epoch = epoch;
  log.perplexity = perplexity_of_counts(histogram);
  log.codes_used = histogram.gt(0).sum().item<int64_t>();
  log.restarts = model_->quantizer->restarts();
  return sums;
}

// An epoch of the decoder alone: the encoder and the codebook are frozen (eval mode, so that neither batch statistics
// nor the codebook's moving averages change), the decoder learns to draw the letters they write.
VQVAEEpochLog VQVAETrainer::train_decoder_epoch(int64_t epoch) {
  const int64_t n = train_.size(), K = model_->num_embeddings(), B = opt_.batch_size;
  const int64_t total_steps = steps_per_epoch_ * opt_.decoder_epochs;
  const int64_t first_step = steps_per_epoch_ * (epoch - opt_.max_epochs - 1);
  auto order = at::randperm(n, at::kLong);  // (N), seeded alike on every rank
  auto histogram = at::zeros({K}, at::kLong);
  double sums[2] = {0, 0};  // recon times images, images
  const bool show = !opt_.quiet && is_main();
  Progress bar(fmt::format("epoch {}/{} (decoder)", epoch, total_epochs()), steps_per_epoch_, "batch");
  VQVAEEpochLog log;
  model_->eval();
  model_->decoder->train();
  for (int64_t b = 0; b < steps_per_epoch_; ++b) {
    log.lr = cosine_lr(static_cast<double>(first_step + b) / static_cast<double>(total_steps), opt_.decoder_lr);
    for (auto& group : decoder_optimizer_->param_groups())
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(log.lr);
    const auto batch = order.slice(0, b * B, (b + 1) * B);
    const int64_t global = batch.size(0);
    int64_t lo, hi;
    if (!rank_share(global, lo, hi)) continue;
    auto x = train_.images.index_select(0, batch.slice(0, lo, hi)).to(device_);  // (b, 1, H, W)
    at::Tensor codes, quantized;
    {
      at::NoGradGuard no_grad;
      codes = model_->quantizer->quantize(model_->encode(x));  // (b, L)
      quantized = model_->quantizer->lookup(codes);           // (b, L, D)
    }
    auto recon = at::mse_loss(model_->decode(quantized), x);
    const double bsz = static_cast<double>(x.size(0));
    decoder_optimizer_->zero_grad();
    backward(recon, x.size(0), global, decoder_reducer_.get());
    decoder_optimizer_->step();
    sums[0] += recon.item<double>() * bsz;
    sums[1] += bsz;
    histogram += at::bincount(codes.flatten().cpu(), {}, K);
    if (show) bar.update(b + 1, fmt::format("mse {:.5f}", sums[0] / sums[1]));
  }
  if (show) bar.finish();
  const auto totals = finish_epoch({sums[0], sums[1]}, histogram, epoch, log);
  log.train_recon = totals[0] / totals[1];
  log.train_loss = log.train_recon;
  model_->train();
  return log;
}

void VQVAETrainer::validate_epoch(VQVAEEpochLog& log) {
  const int64_t n = val_.size(), K = model_->num_embeddings();
  int64_t lo = 0, hi = n;
  if (group_) lo = n * group_->rank() / group_->world_size(), hi = n * (group_->rank() + 1) / group_->world_size();
  double sq = 0, vq = 0;
  auto histogram = at::zeros({K}, at::kLong);
  if (hi > lo) {
    auto part = val_.images.slice(0, lo, hi);
    auto e = evaluate_vqvae(model_, part, opt_.eval_batch_size);
    sq = e.recon_mse * static_cast<double>(part.numel());
    vq = e.vq_loss * static_cast<double>(hi - lo);
    histogram = code_histogram(e.codes, K);
  }
  if (group_) {
    auto s = group_->all_reduce_sum(std::vector<double>{sq, vq});
    sq = s[0], vq = s[1];
    group_->all_reduce_sum({histogram});
  }
  log.val_recon = sq / static_cast<double>(val_.images.numel());
  log.val_vq = vq / static_cast<double>(n);
  log.val_loss = log.val_recon + log.val_vq;
  log.val_perplexity = perplexity_of_counts(histogram);
  log.val_codes_used = histogram.gt(0).sum().item<int64_t>();
}

void VQVAETrainer::save_best(const VQVAEEpochLog& log) {
  if (checkpoint_path().empty() || !is_main()) return;
  nlohmann::json meta = checkpoint_meta_;
  meta["epoch"] = log.epoch;
  meta["val_loss"] = log.val_loss;
  meta["val_recon_mse"] = log.val_recon;
  ImageTokenCodec(model_, opt_.alphabet, device_).save(checkpoint_path(), meta);
  if (hooks_.on_checkpoint) hooks_.on_checkpoint(log.epoch, checkpoint_path());
}

// Everything the epoch loop carries from one epoch to the next.
struct VQVAETrainer::State {
  VQVAETrainResult result;
  std::vector<at::Tensor> best_state;  // the best epoch's parameters and buffers
  int64_t epoch = 0;                   // epochs completed
  int64_t step = 0, since_best = 0;
  double seconds = 0;                  // training time of the completed epochs
  bool finished = false;               // stopped early or ran max_epochs
};

namespace {
constexpr const char* kStateKind = "vqvae_train_state";
// What must not change between a run and its resumption: the model's and the schedule's options.
nlohmann::json resume_fingerprint(const VQVAE& model, const VQVAETrainOptions& o, int64_t train_size) {
  return {{"model", options_config_json(model->options)}, {"train", options_config_json(o)}, {"train_images", train_size}};
}
}  // namespace

void VQVAETrainer::save_state(const State& st) {
  if (state_path().empty() || !is_main()) return;
  nlohmann::json history = nlohmann::json::array();
  for (const auto& h : st.result.history) history.push_back(h.to_json());
  CheckpointWriter w(kStateKind, 1,
                     {{"fingerprint", resume_fingerprint(model_, opt_, train_.size())},
                      {"epoch", st.epoch},
                      {"step", st.step},
                      {"since_best", st.since_best},
                      {"seconds", st.seconds},
                      {"finished", st.finished},
                      {"best_epoch", st.result.best_epoch},
                      {"best_val_loss", st.result.best_val_loss},
                      {"early_stopped", st.result.early_stopped},
                      {"restarts", model_->quantizer->restarts()},
                      {"best_tensors", st.best_state.size()},
                      {"history", history}});
  w.add_module("model", *model_).add_optimizer("optimizer", *optimizer_).add_tensor("rng_cpu", cpu_rng_state());
  if (decoder_optimizer_) w.add_optimizer("decoder_optimizer", *decoder_optimizer_);
  if (head_) w.add_tensor("head.weight", head_->weight).add_tensor("head.bias", head_->bias);
  if (pseudo_head_) w.add_tensor("pseudo_head.weight", pseudo_head_->weight).add_tensor("pseudo_head.bias", pseudo_head_->bias);
  if (cluster_head_)
    for (size_t i = 0; i < cluster_head_->params.size(); ++i)
      w.add_tensor(fmt::format("cluster_head.{}", i), cluster_head_->params[i]);
  for (size_t i = 0; i < st.best_state.size(); ++i) w.add_tensor(fmt::format("best.{}", i), st.best_state[i]);
  w.save(state_path());
}

bool VQVAETrainer::load_state(State& st) {
  bool here = std::filesystem::exists(state_path());
  if (group_) {
    const double seen = group_->all_reduce_sum(std::vector<double>{here ? 1.0 : 0.0})[0];
    VLM_CHECK(seen == 0 || seen == static_cast<double>(group_->world_size()), "the training state '", state_path(),
              "' exists on ", seen, " of ", group_->world_size(), " ranks; resuming needs it on all of them (a shared ",
              "directory) or on none");
  }
  if (!here) return false;
  CheckpointReader r(state_path(), kStateKind, 1);
  const auto& m = r.meta();
  const auto expected = resume_fingerprint(model_, opt_, train_.size());
  if (m.at("fingerprint") != expected) {
    std::string diff;
    for (const auto& part : {"model", "train"})
      for (const auto& [key, value] : expected[part].items())
        if (!m["fingerprint"][part].contains(key) || m["fingerprint"][part][key] != value)
          diff += fmt::format(" {}.{}: {} -> {};", part, key, m["fingerprint"][part].value(key, nlohmann::json()).dump(),
                              value.dump());
    if (m["fingerprint"]["train_images"] != expected["train_images"]) diff += " training images differ;";
    VLM_FAIL("cannot resume from '", state_path(), "': it was written with other settings (", diff,
             " ); use the same flags, or start fresh without resuming");
  }
  {
    at::NoGradGuard no_grad;
    r.load_module("model", *model_);
    if (head_) {
      head_->weight.copy_(r.tensor("head.weight"));
      head_->bias.copy_(r.tensor("head.bias"));
    }
    if (cluster_head_)
      for (size_t i = 0; i < cluster_head_->params.size(); ++i)
        cluster_head_->params[i].copy_(r.tensor(fmt::format("cluster_head.{}", i)));
    if (pseudo_head_) {
      pseudo_head_->weight.copy_(r.tensor("pseudo_head.weight"));
      pseudo_head_->bias.copy_(r.tensor("pseudo_head.bias"));
    }
  }
  r.load_optimizer("optimizer", *optimizer_);
  if (decoder_optimizer_) r.load_optimizer("decoder_optimizer", *decoder_optimizer_);
  set_cpu_rng_state(r.tensor("rng_cpu"));
  model_->quantizer->set_restarts(m.at("restarts").get<int64_t>());
  st.epoch = m.at("epoch").get<int64_t>();
  st.step = m.at("step").get<int64_t>();
  st.since_best = m.at("since_best").get<int64_t>();
  st.seconds = m.at("seconds").get<double>();
  st.finished = m.at("finished").get<bool>();
  st.result.best_epoch = m.at("best_epoch").get<int64_t>();
  st.result.best_val_loss = m.at("best_val_loss").get<double>();
  st.result.early_stopped = m.at("early_stopped").get<bool>();
  for (int64_t i = 0; i < m.at("best_tensors").get<int64_t>(); ++i) st.best_state.push_back(r.tensor(fmt::format("best.{}", i)));
  for (const auto& h : m.at("history")) st.result.history.push_back(VQVAEEpochLog::from_json(h));
  return true;
}

// (N, k) pixel neighbours of `images` (the training images or a view of them), each rank searching its share of the
// rows.
at::Tensor VQVAETrainer::shared_neighbours(const at::Tensor& images, int64_t k) const {
  auto [lo, hi] = group_ ? group_->shard(images.size(0)) : std::pair<int64_t, int64_t>{0, images.size(0)};
  auto mine = pixel_neighbours(images, k, 64, 256, lo, hi);
  return group_ ? group_->all_gather_rows(mine) : mine;
}

VQVAETrainResult VQVAETrainer::train() {
  if (two_views() && opt_.mi_neighbours > 0 && !neighbours_.defined())
    neighbours_ = shared_neighbours(opt_.mi_deskew ? deskew_images(train_.images) : train_.images, opt_.mi_neighbours);
  if (pseudo_head_ && !pseudo_labels_.defined()) {
    // The clusters, from a generator of their own seeded by one draw of the default one (alike on every rank), so
    // that they do not depend on how the neighbour search was shared; rank 0's are broadcast all the same.
    const auto start = std::chrono::steady_clock::now();
    auto graph = shared_neighbours(deskew_images(train_.images), opt_.pseudo_neighbours);
    const int64_t seed = at::randint(1 << 30, {1}, at::kLong).item<int64_t>();
    const auto saved = cpu_rng_state();
    at::manual_seed(static_cast<uint64_t>(seed));
    pseudo_labels_ = cluster_graph(graph, opt_.pseudo_cluster_options());
    set_cpu_rng_state(saved);
    if (group_) group_->broadcast({pseudo_labels_});
    if (!opt_.quiet && is_main())
      fmt::print("pseudo-captions: {} clusters of the {} training images ({} neighbours each, deskewed) in {:.1f}s\n",
                 opt_.pseudo_clusters, train_.size(), opt_.pseudo_neighbours,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  State st;
  st.result.best_val_loss = std::numeric_limits<double>::infinity();
  if (opt_.init_from == "resume") {
    VLM_CHECK(load_state(st), "--init_from=resume: there is no training state '", state_path(), "' to continue from");
    if (is_main())
      fmt::print("resuming from '{}' after epoch {}{}\n", state_path(), st.epoch,
                 st.finished ? " (training had finished)" : "");
  }
  std::string jsonl;
  for (const auto& h : st.result.history) jsonl += h.to_json().dump() + "\n";
  for (int64_t epoch = st.epoch + 1; epoch <= total_epochs() && !st.finished; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    VQVAEEpochLog log = epoch <= opt_.max_epochs ? train_epoch(epoch, st.step) : train_decoder_epoch(epoch);
    validate_epoch(log);
    const double monitored = opt_.monitor == "val_loss" ? log.val_loss : log.val_recon;
    log.improved = monitored < st.result.best_val_loss;
    if (log.improved) {
      st.result.best_val_loss = monitored;
      st.result.best_epoch = epoch;
      st.best_state = snapshot(model_);
      st.since_best = 0;
      save_best(log);
    } else {
      ++st.since_best;
    }
    log.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    st.seconds += log.seconds;
    st.result.history.push_back(log);
    if (!log_path().empty() && is_main()) {
      jsonl += log.to_json().dump() + "\n";
      write_text_atomically(log_path(), jsonl);
    }
    if (is_main() && hooks_.on_log) hooks_.on_log(log);
    if (is_main() && hooks_.on_eval) hooks_.on_eval(log);
    if (opt_.patience > 0 && st.since_best >= opt_.patience) {
      st.result.early_stopped = epoch < total_epochs();
      st.finished = true;
    }
    st.epoch = epoch;
    st.finished = st.finished || epoch == total_epochs();
    save_state(st);  // last: a kill before this point repeats the epoch, which rewrites the same files
  }
  if (!st.best_state.empty()) restore(model_, st.best_state);
  model_->eval();
  VQVAETrainResult result = st.result;
  result.seconds = st.seconds;
  result.steps = st.epoch;
  if (!result.history.empty()) result.val_loss = result.history.back().val_loss;
  return result;
}

}  // namespace vlm
