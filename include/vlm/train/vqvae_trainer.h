#pragma once
// The image tokenizer's trainer (the shape of vlm/train/trainer.h), shared by examples/train_vqvae.cpp and the
// pipeline.
//
//   vlm::VQVAE model(vlm::VQVAEOptions::preset("mlp"));
//   vlm::VQVAETrainOptions opt;                    // the seed: Adam 2e-4, batch 128, patience 3, at most 50 epochs
//   opt.out_dir = "runs/vqvae-mlp";               // vqvae.pt, epochs.jsonl, state.pt (empty: in memory)
//   vlm::VQVAETrainer trainer(model, opt, split.train, split.validation, device);
//   auto result = trainer.train();                 // the model ends at the best epoch
//
// Per epoch: train loss = reconstruction MSE + VQ loss, then the same on validation; the code histogram of the
// epoch's training batches gives perplexity and codes used. Whenever the monitored value improves, the model is
// written as a tokenizer checkpoint (kind "vqvae", version 1, atomic) with meta {options, alphabet, codes_per_image,
// epoch, val_loss, ...}; training stops after `patience` epochs without improvement, and the best weights are
// restored into `model` at the end.
//
// Crash safety: with an `out_dir`, the whole training state (weights, optimizer, best epoch's weights, history,
// random generator) is written to state.pt atomically after every epoch; init_from "resume" continues from it, so a killed run loses
// at most the epoch in progress and ends as the uninterrupted run would have.
//
// Data-parallel (set_process_group): `batch_size` is the global batch; each rank trains on its contiguous share of
// every batch, gradients and the quantizer's statistics are summed across ranks, validation is sharded and summed, so
// early stopping is decided from the same numbers everywhere; only rank 0 writes files, logs and progress.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/core/options.h"
#include "vlm/data/augment.h"
#include "vlm/data/image_clusters.h"
#include "vlm/data/labeled_images.h"
#include "vlm/eval/token_probe.h"
#include "vlm/models/vqvae.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/train/trainer.h"

namespace torch::optim {
class Adam;
}

namespace vlm {

class ProcessGroup;
class GradientReducer;

struct VQVAETrainOptions {
  /// "mlp": the seed's schedule (the defaults below). "conv": Adam 2e-3 with a cosine decay over a fixed 15 epochs,
  /// no early stopping, best epoch by validation reconstruction MSE, caption alignment (joint head, weight 0.05);
  /// measured on MNIST, see docs/results.md.
  static VQVAETrainOptions preset(const std::string& variant);

  double learning_rate = 2e-4;          ///< Adam learning rate (the seed's)
  int64_t batch_size = 128;
  int64_t max_epochs = 50;
  int64_t patience = 3;                 ///< epochs without a better monitored value before stopping; 0 = never stop
  /// What "better" means for early stopping and the best checkpoint: "val_loss" (recon MSE + VQ loss, the seed's
  /// monitor) or "val_recon" (recon MSE alone: the VQ terms grow with the latents' scale and can stop training
  /// while the reconstructions still improve).
  std::string monitor = "val_loss";
  std::string lr_schedule = "constant"; ///< "constant" (the seed) or "cosine" (to min_lr over max_epochs)
  double min_lr = 0.0;
  /// Caption alignment (0 = off, the seed's unsupervised tokenizer): weight of a cross-entropy term in which the
  /// quantized latents predict the image's caption (its digit, from the training labels only) through a linear head
  /// that the trainer owns and discards. Semantic tokenizers of recent multimodal models are trained the same way
  /// (aligned with text, not only with pixels); here it makes the 8 letters carry the class, which reconstruction
  /// alone does not (docs/results.md).
  double label_weight = 0.0;
  /// "joint": one head on all L x D quantized values (measured best, docs/results.md); "per_code": each code
  /// position alone predicts the caption (one head per position), so every letter carries class information.
  std::string label_head = "joint";
  int64_t num_classes = 10;            ///< labels in [0, num_classes)
  // Unsupervised semantic objectives: they read no label, only the images and random views of them (`augment`).
  // Reconstruction alone spends the letters on pose and stroke; these make what a digit's views share (its class,
  // for MNIST) cheap to read from the letters (docs/results.md, "The unsupervised tokenizer").
  /// IIC (Ji et al. 2019): weight of -I(y; y'), the mutual information between the cluster assignments y, y' of an
  /// image and of a random view of it, read from the quantized latents by a linear head of `mi_clusters` outputs
  /// that the trainer owns and discards (the unsupervised twin of the caption head). 0 = off.
  double mi_weight = 0.0;
  int64_t mi_clusters = 10;            ///< clusters of that head (more than the classes: IIC's over-clustering)
  int64_t mi_hidden = 0;               ///< 0: the head is linear; else one ReLU hidden layer of this width
  /// The second view's image: 0 = the image itself; k > 0 = one of its k nearest training images by pixel distance
  /// (pixel_neighbours, found once before training; no label read), as SCAN pairs neighbours. Either is then warped.
  int64_t mi_neighbours = 0;
  /// The neighbour search compares deskewed images (deskew_images: upright and centred), so that two digits that
  /// differ only in slant count as near; the second view is still the neighbour as drawn.
  bool mi_deskew = false;
  /// The cluster head reads the first `mi_positions` letters only (0 = all L): the class is then written in those
  /// letters and the others stay free for the drawing's detail.
  int64_t mi_positions = 0;
  /// "constant", or "lr": the weight follows the learning rate's schedule (mi_weight x lr / --learning_rate), so that the last
  /// epochs, when the letters' clusters have formed, spend the encoder on the reconstruction.
  std::string mi_schedule = "constant";
  /// Pseudo-captions: weight of the caption head's loss on clusters of the training images found without a label
  /// (cluster_images: spectral clustering of the deskewed pixel-neighbour graph, computed once before training) in
  /// place of their labels; the letters then name the image's cluster as the caption-aligned tokenizer's name its
  /// digit. 0 = off.
  double pseudo_weight = 0.0;
  int64_t pseudo_clusters = 50;         ///< clusters (over-clustering: a digit's variants keep clusters of their own)
  int64_t pseudo_neighbours = 10;       ///< edges per image of the graph that is clustered
  /// Weight of the view-invariance term mean((z' - sg[q])^2): the latents z' of a random view are pulled to the
  /// codes q of the image itself, so both views are written with the same letters. 0 = off.
  double invariance_weight = 0.0;
  /// Invariant reconstruction (Dubois et al. 2021): the encoder sees a random view and the decoder must rebuild the
  /// original image, so the letters cannot spend their bits on the view's pose. Off: it sees the original.
  bool invariant_recon = false;
  AugmentOptions augment;               ///< the random views of the three objectives above
  /// Epochs after the max_epochs that train the decoder alone (its own Adam, cosine from decoder_lr to min_lr) on the
  /// letters the finished encoder writes: the letters, and so what they say about the class, stay exactly as they
  /// are, while the drawing from them improves (the semantic objectives above cost reconstruction). 0 = none.
  int64_t decoder_epochs = 0;
  double decoder_lr = 0;  ///< peak lr of the decoder epochs (cosine to min_lr over them); 0 = learning_rate
  int64_t eval_batch_size = 1000;
  /// vqvae.pt (the best epoch's tokenizer checkpoint), epochs.jsonl (one line per epoch, rewritten atomically) and
  /// state.pt (the training state after every epoch, for init_from = "resume"); empty = in memory, nothing written.
  std::string out_dir;
  std::string init_from = "scratch";    ///< "scratch" or "resume" (continue from out_dir/state.pt), as the GPT's
  std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";  ///< stored in the checkpoint for the codec
  bool quiet = false;                   ///< no progress line (with ETA) per epoch

  void validate() const;
  /// The clustering behind the pseudo-captions (cluster_images's options from pseudo_clusters and pseudo_neighbours).
  ImageClusterOptions pseudo_cluster_options() const;
  template <class V>
  void fields(V& v) {
    v("learning_rate", learning_rate, "Adam learning rate");
    v("lr_schedule", lr_schedule, "constant or cosine");
    v("min_lr", min_lr, "floor of the cosine schedule");
    v("batch_size", batch_size, "training batch size");
    v("max_epochs", max_epochs, "at most this many epochs");
    v("patience", patience, "early stopping patience in epochs (0 = off)");
    v("monitor", monitor, "val_loss (the seed) or val_recon: early stopping and best epoch");
    v("label_weight", label_weight,
      "caption alignment: weight of the loss in which the codes predict the label (0 = unsupervised)");
    v("label_head", label_head, "per_code (every letter predicts the label) or joint");
    v("num_classes", num_classes, "labels in [0, num_classes) for caption alignment");
    v("mi_weight", mi_weight, "IIC: weight of the mutual information between the clusters of two views (0 = off)");
    v("mi_clusters", mi_clusters, "clusters of the IIC head");
    v("mi_hidden", mi_hidden, "hidden width of the IIC head (0 = linear)");
    v("mi_neighbours", mi_neighbours, "second view from one of the k nearest images in pixel space (0 = itself)");
    v("mi_deskew", mi_deskew, "the neighbour search compares deskewed images");
    v("mi_positions", mi_positions, "the IIC head reads the first N letters only (0 = all)");
    v("mi_schedule", mi_schedule, "constant, or lr: the IIC weight follows the learning rate's schedule");
    v("pseudo_weight", pseudo_weight, "pseudo-captions: weight of the caption loss on unsupervised image clusters (0 = off)");
    v("pseudo_clusters", pseudo_clusters, "clusters of the pseudo-captions");
    v("pseudo_neighbours", pseudo_neighbours, "neighbours per image of the graph the pseudo-captions cluster");
    v("invariance_weight", invariance_weight, "weight pulling a random view's latents to the image's codes (0 = off)");
    v("invariant_recon", invariant_recon, "the encoder sees a random view, the decoder rebuilds the original");
    v("augment", augment, "the random views (no label read)");
    v("decoder_epochs", decoder_epochs, "epochs after max_epochs that train the decoder alone on the fixed letters");
    v("decoder_lr", decoder_lr, "peak learning rate of the decoder epochs (0 = lr)");
    v("alphabet", alphabet, "the letters of the codes, stored in the checkpoint");
    v("eval_batch_size", eval_batch_size, "images per validation forward pass", FieldKind::kRunControl);
    v("out_dir", out_dir, "vqvae.pt, epochs.jsonl and state.pt (empty: train in memory, write nothing)",
      FieldKind::kRunControl);
    v("init_from", init_from, "scratch or resume (from out_dir/state.pt)", FieldKind::kRunControl);
    v("quiet", quiet, "no progress line per epoch", FieldKind::kRunControl);
  }
};

struct VQVAEEpochLog {
  int64_t epoch = 0;  ///< 1-based
  double lr = 0;
  double train_loss = 0, train_recon = 0, train_vq = 0;
  double train_label_loss = 0, train_label_acc = 0;  ///< caption alignment (label_weight > 0); per_code: mean of L
  double train_mi = 0;          ///< IIC: mutual information of the two views' clusters in nats (at most ln C)
  double train_view_agreement = 0;  ///< fraction of letters a random view shares with its image (two-view objectives)
  double val_loss = 0, val_recon = 0, val_vq = 0;
  double perplexity = 0;      ///< of the codes of this epoch's training batches
  int64_t codes_used = 0;     ///< codes used at least once in this epoch's training batches
  double val_perplexity = 0;
  int64_t val_codes_used = 0;
  int64_t restarts = 0;       ///< dead codes restarted so far
  double seconds = 0;         ///< this epoch, training and validation
  bool improved = false;      ///< the best monitored value so far (and the checkpoint was written)
  /// "  views: MI ... nats, letters shared ..." when a two-view objective ran this epoch, else "" (for log lines)
  std::string views_summary() const;
  nlohmann::json to_json() const;
  static VQVAEEpochLog from_json(const nlohmann::json& j);  ///< the inverse of to_json
};

struct VQVAETrainResult : TrainResult {  // steps: epochs trained (decoder epochs included)
  std::vector<VQVAEEpochLog> history;
  int64_t best_epoch = 0;
  double best_val_loss = 0;  ///< the monitored value (val_loss or val_recon) at best_epoch
  bool early_stopped = false;
};

/// Loss terms and codes of a model on a set of images, in eval mode without gradients.
struct VQVAEEvaluation {
  double loss = 0;       ///< recon_mse + vq_loss, the seed's validation loss
  double recon_mse = 0;  ///< mean squared error per pixel, images in [0, 1]
  double vq_loss = 0;
  at::Tensor codes;      ///< (N, L) int64 on the CPU
  at::Tensor recon;      ///< (N, C, H, W) on the CPU, only when keep_recon
  at::Tensor latents;    ///< (N, L, D) encoder outputs on the CPU, only when keep_latents
};
/// On the model's device, in batches; results come back on the CPU.
VQVAEEvaluation evaluate_vqvae(VQVAE& model, const at::Tensor& images, int64_t batch_size = 1000,
                               bool keep_recon = false, bool keep_latents = false);

/// A trained tokenizer's metrics.json, one schema for the main job's vqvae stage and the train_vqvae tool
/// (docs/checkpoints.md, "Metrics files"):
///   {"test": {"images", "recon_mse", "vq_loss", "perplexity", "codes_used", "distinct_fraction", "probe_k",
///             "probe_accuracy"},
///    "training": {"seconds", "epochs", "best_epoch", "monitor", "best_monitored", "early_stopped"}}
/// `test` is evaluate_vqvae on the test images, `stats` and `probe` their token_stats and knn_probe
/// (vlm/eval/token_probe.h).
nlohmann::json tokenizer_metrics(const VQVAEEvaluation& test, const TokenStats& stats, const ProbeResult& probe,
                                 const VQVAETrainResult& result, const std::string& monitor);

class VQVAETrainer {
 public:
  using Hooks = TrainerHooks<VQVAEEpochLog, VQVAEEpochLog>;  ///< on_log and on_eval both see each epoch's log

  /// Trains `model` (a handle: the caller's module is the one trained) on `device`.
  VQVAETrainer(VQVAE model, VQVAETrainOptions options, LabeledImages train, LabeledImages validation,
               c10::Device device = c10::kCPU);
  ~VQVAETrainer();

  /// The epoch loop; the model ends with the best epoch's weights, in eval mode.
  VQVAETrainResult train();

  Hooks& hooks() { return hooks_; }
  /// Extra keys stored in the checkpoint's meta (e.g. the run configuration).
  nlohmann::json& checkpoint_meta() { return checkpoint_meta_; }
  /// out_dir's files ("" without an out_dir).
  std::string checkpoint_path() const { return file("vqvae.pt"); }
  std::string log_path() const { return file("epochs.jsonl"); }
  std::string state_path() const { return file("state.pt"); }
  VQVAE& model() { return model_; }
  /// The trained tokenizer as a codec (images <-> letters of options.alphabet), sharing the model's weights.
  std::shared_ptr<const ImageTokenCodec> codec() const;
  /// Data-parallel training in `group` (see above); call before train(). Rank 0's weights go to every rank.
  void set_process_group(ProcessGroup* group);
  bool is_main() const;
  const VQVAETrainOptions& options() const { return opt_; }
  c10::Device device() const { return device_; }

 private:
  struct LabelHead;
  bool two_views() const { return opt_.mi_weight > 0 || opt_.invariance_weight > 0; }
  std::vector<at::Tensor> head_parameters() const;  // of the caption and cluster heads that are on
  VQVAEEpochLog train_epoch(int64_t epoch, int64_t& step);
  std::string file(const char* name) const;  // out_dir/name, or "" without an out_dir
  VQVAEEpochLog train_decoder_epoch(int64_t epoch);  // an epoch after max_epochs (decoder_epochs)
  int64_t total_epochs() const { return opt_.max_epochs + opt_.decoder_epochs; }
  double cosine_lr(double progress, double peak = 0) const;  // peak (0: lr) -> min_lr as progress goes 0 -> 1
  at::Tensor shared_neighbours(const at::Tensor& images, int64_t k) const;  // pixel_neighbours, rows shared by ranks
  bool rank_share(int64_t global, int64_t& lo, int64_t& hi) const;  // this rank's images of a global batch
  std::vector<double> finish_epoch(std::vector<double> sums, at::Tensor& histogram, int64_t epoch,
                                   VQVAEEpochLog& log) const;
  void backward(const at::Tensor& loss, int64_t share, int64_t global, GradientReducer* reducer);
  void save_best(const VQVAEEpochLog& log);
  struct State;
  void save_state(const State& state);
  bool load_state(State& state);
  void validate_epoch(VQVAEEpochLog& log);  // fills the validation half of the log (sharded when data-parallel)

  VQVAE model_;
  VQVAETrainOptions opt_;
  LabeledImages train_, val_;
  c10::Device device_;
  Hooks hooks_;
  nlohmann::json checkpoint_meta_ = nlohmann::json::object();
  std::unique_ptr<LabelHead> head_;          // caption alignment (label_weight > 0)
  std::unique_ptr<LabelHead> pseudo_head_;   // pseudo-captions (pseudo_weight > 0)
  at::Tensor pseudo_labels_;                 // (N) their clusters, found at the start of train()
  struct ClusterHead;
  std::unique_ptr<ClusterHead> cluster_head_;  // IIC (mi_weight > 0)
  at::Tensor neighbours_;  // (N, mi_neighbours) pixel neighbours of the training images, when the views use them
  std::unique_ptr<torch::optim::Adam> optimizer_;
  std::unique_ptr<torch::optim::Adam> decoder_optimizer_;  // decoder_epochs > 0
  std::unique_ptr<GradientReducer> decoder_reducer_;
  int64_t steps_per_epoch_ = 0;
  ProcessGroup* group_ = nullptr;
  std::unique_ptr<GradientReducer> reducer_;
};

}  // namespace vlm
