// Trains the image tokenizer (VQ-VAE) on the seed's split of MNIST and measures it on the 10,000 test images.
//
//   train_vqvae --variant=mlp                      # the seed, exactly
//   train_vqvae --variant=conv --threads=1         # the stronger tokenizer, same 8 x 26 token budget
//   train_vqvae --variant=conv --resume            # continue a killed run from its state.pt (after its last epoch)
//   vlm launch --nproc=2 -- train_vqvae --variant=conv    # data-parallel (also mpirun, srun, torchrun)
//
// Writes to --out_dir (default runs/vqvae-<variant>): vqvae.pt (best epoch, a tokenizer checkpoint that
// ImageTokenCodec::load reads), epochs.jsonl, metrics.json, recon.png (test originals above their reconstructions)
// and latents.png (a 2-D t-SNE, or PCA, map of encoder outputs of validation images, coloured by digit).
#include <filesystem>
#include <chrono>
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "vlm/core/run_lock.h"
#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/data/mnist.h"
#include "vlm/eval/token_probe.h"
#include "vlm/eval/tsne.h"
#include "vlm/io/png.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/train/vqvae_trainer.h"

namespace {

// Rows of originals above rows of their reconstructions, `cols` images per row.
at::Tensor originals_above_reconstructions(const at::Tensor& originals, const at::Tensor& recons, int64_t cols) {
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < originals.size(0); i += cols) {
    rows.push_back(originals.slice(0, i, i + cols));
    rows.push_back(recons.slice(0, i, i + cols));
  }
  return vlm::image_grid(at::cat(rows), cols);
}

// Projects the rows of x (N, F) on their two leading principal axes -> (N, 2).
at::Tensor pca_2d(const at::Tensor& x) {
  auto centred = x - x.mean(0, /*keepdim=*/true);                      // (N, F)
  auto cov = at::mm(centred.t(), centred) / std::max<int64_t>(1, x.size(0) - 1);  // (F, F)
  auto axes = std::get<1>(at::linalg_eigh(cov));                       // (F, F), eigenvalues ascending
  const int64_t f = axes.size(1);
  return at::mm(centred, at::stack({axes.select(1, f - 1), axes.select(1, f - 2)}, 1));  // (N, 2)
}

}  // namespace

int main(int argc, char** argv) {
  return vlm::examples::run_main("train_vqvae", [&] {
    vlm::examples::CommonOptions common;
    vlm::VQVAEOptions model_options = vlm::VQVAEOptions::preset("mlp");
    vlm::VQVAETrainOptions train_options = vlm::VQVAETrainOptions::preset("mlp");
    std::string variant = "mlp", out_dir;
    int64_t limit_train = 0, probe_k = 10, latent_points = 2000, recon_images = 32;
    std::string latent_map = "tsne";
    bool eval_only = false, resume = false;

    vlm::Flags flags("train_vqvae", "Train the VQ-VAE image tokenizer and measure it on MNIST test.");
    vlm::examples::add_common_flags(flags, common);
    auto choose = [&](const std::string& v) {
      model_options = vlm::VQVAEOptions::preset(v);
      train_options = vlm::VQVAETrainOptions::preset(v);
    };
    flags.add_choice("variant", &variant, {{"mlp", [&] { choose("mlp"); }}, {"conv", [&] { choose("conv"); }}},
                     "mlp (the seed) or conv; sets the defaults of the flags below");
    flags.add("out_dir", &out_dir, "output directory (checkpoint, logs, metrics, PNGs; default runs/vqvae-<variant>)")
        .add("limit_train", &limit_train, "use only the first N training-file images (0 = all; for smoke tests)")
        .add("probe_k", &probe_k, "neighbours of the Hamming k-NN token probe")
        .add("latent_points", &latent_points, "validation images in latents.png")
        .add("latent_map", &latent_map, "tsne (as the seed drew it) or pca: the 2-D map in latents.png")
        .add("recon_images", &recon_images, "test images in recon.png")
        .add("eval_only", &eval_only, "skip training: measure and plot the checkpoint already in --out_dir")
        .add("resume", &resume, "continue from --out_dir/state.pt when it exists (written after every epoch)");
    vlm::add_option_flags(flags, model_options);
    vlm::add_option_flags(flags, train_options, "", /*with_run_control=*/false);
    flags.add("quiet", &train_options.quiet, "no progress line per epoch");
    if (!flags.parse(argc, argv)) return 0;
    VLM_CHECK(latent_map == "tsne" || latent_map == "pca", "--latent_map must be tsne or pca, got '", latent_map, "'");
    VLM_CHECK(limit_train >= 0, "--limit_train must be >= 0 (0 = all), got ", limit_train);
    VLM_CHECK(latent_points >= 0 && recon_images >= 0, "--latent_points and --recon_images must be >= 0 (0 = no ",
              "picture), got ", latent_points, " and ", recon_images);
    if (out_dir.empty()) out_dir = "runs/vqvae-" + variant;
    auto [runtime, device, group] = vlm::examples::start_rank(flags, common);  // data-parallel under a launcher
    const auto& alphabet = train_options.alphabet;
    const int64_t num_embeddings = model_options.quantizer().num_embeddings();
    vlm::check_alphabet(alphabet, num_embeddings);

    VLM_CHECK(!(eval_only && group.distributed()), "--eval_only runs in one process");
    vlm::TrainTest mnist = vlm::load_mnist(common.data_dir, limit_train);
    auto split = vlm::split_train_validation(mnist.train);
    model_options.image_size(mnist.train.height()).image_channels(mnist.train.channels());
    std::unique_ptr<vlm::RunLock> lock;
    if (group.is_main()) {
      vlm::ensure_directory(out_dir);
      lock = std::make_unique<vlm::RunLock>(out_dir);  // one writer per output directory
    }
    group.barrier();  // the directory exists before any rank looks for a state in it
    train_options.out_dir = out_dir;  // vqvae.pt, epochs.jsonl, state.pt
    // --resume on every start of a crash loop: continue when a state exists, else begin.
    train_options.init_from = resume && std::filesystem::exists(out_dir + "/state.pt") ? "resume" : "scratch";

    vlm::VQVAE model(model_options);
    int64_t n_params = 0;
    for (const auto& p : model->parameters()) n_params += p.numel();
    if (group.is_main())
      fmt::print("model: {} VQ-VAE, {} parameters, {} codes of {} per image, code dim {}\n", variant, n_params,
               model_options.n_codes(), num_embeddings, model_options.quantizer().embedding_dim());
    auto log_epoch = [](const vlm::VQVAEEpochLog& e) {
      fmt::print("epoch {:>2}  lr {:.2e}  train loss {:.5f} (mse {:.5f} vq {:.5f})  val loss {:.5f} (mse {:.5f})  "
                 "perplexity {:.2f}  codes used {}  restarts {}{}  {:.1f}s{}\n",
                 e.epoch, e.lr, e.train_loss, e.train_recon, e.train_vq, e.val_loss, e.val_recon, e.perplexity,
                 e.codes_used, e.restarts,
                 (e.train_label_loss > 0 ? fmt::format("  caption loss {:.4f} acc {:.4f}", e.train_label_loss,
                                                       e.train_label_acc)
                                         : std::string()) +
                     e.views_summary(),
                 e.seconds, e.improved ? "  *" : "");
      std::fflush(stdout);
    };
    vlm::VQVAETrainResult result;
    if (!eval_only) {
      vlm::VQVAETrainer trainer(model, train_options, split.train, split.validation, device);
      trainer.set_process_group(&group);
      trainer.checkpoint_meta()["config"] = flags.to_json();
      trainer.hooks().on_eval = log_epoch;
      result = trainer.train();
    }
    if (!group.is_main()) return 0;  // the measurements below are rank 0's
    fmt::print("trained {} epochs in {:.1f}s (best epoch {}, {} {:.5f}){}\n", result.history.size(), result.seconds,
               result.best_epoch, train_options.monitor, result.best_val_loss,
               result.early_stopped ? ", early stop" : "");

    // Everything below reads the checkpoint back, so the numbers are those of the file the next stages load.
    auto codec = vlm::ImageTokenCodec::load(out_dir + "/vqvae.pt", device);
    auto test = vlm::evaluate_vqvae(codec.model(), mnist.test.images, 1000, /*keep_recon=*/true);
    auto val = vlm::evaluate_vqvae(codec.model(), split.validation.images, 1000, false, /*keep_latents=*/true);
    auto train_codes = codec.encode_codes(split.train.images);  // (50000, L)
    auto stats = vlm::token_stats(test.codes, num_embeddings);
    auto probe = vlm::knn_probe(test.codes, mnist.test.labels, train_codes, split.train.labels, probe_k);
    fmt::print("test ({} images): recon MSE {:.5f}  perplexity {:.2f}  codes used {}/{}  distinct strings {:.4f}  "
               "{}-NN Hamming probe accuracy {:.4f}\n",
               mnist.test.size(), test.recon_mse, stats.perplexity, stats.codes_used, num_embeddings,
               stats.distinct_fraction, probe_k, probe.accuracy);
    fmt::print("example test tokens: ");
    auto examples = vlm::codes_to_texts(test.codes.slice(0, 0, 8), alphabet);
    for (size_t i = 0; i < examples.size(); ++i)
      fmt::print("{}{}={}", i ? " " : "", mnist.test.labels[i].item<int64_t>(), examples[i]);
    fmt::print("\n");

    const int64_t shown = std::min<int64_t>(recon_images, mnist.test.size());
    if (shown > 0)  // --recon_images=0: no picture
      vlm::write_png(out_dir + "/recon.png", originals_above_reconstructions(mnist.test.images.slice(0, 0, shown),
                                                                             test.recon.slice(0, 0, shown), 16));
    const int64_t points = std::min<int64_t>(latent_points, split.validation.size());
    if (points > 0) {  // --latent_points=0: no map (t-SNE takes a while)
      auto latents = val.latents.slice(0, 0, points).flatten(1).to(at::kFloat);  // (P, L*D)
      auto map = latent_map == "tsne" ? vlm::tsne_2d(latents, vlm::TsneOptions().seed(common.seed)) : pca_2d(latents);
      vlm::ScatterOptions so;
      so.title = fmt::format("{} of {} VQ-VAE encoder outputs ({} validation images)",
                             latent_map == "tsne" ? "t-SNE" : "PCA", variant, points);
      vlm::write_png(out_dir + "/latents.png", vlm::scatter_plot(map, split.validation.labels.slice(0, 0, points), so));
    }

    nlohmann::json metrics = vlm::tokenizer_metrics(test, stats, probe, result, train_options.monitor);
    metrics["test"]["probe_reference"] = "train split (50,000 token strings)";
    metrics["validation"] = {{"recon_mse", val.recon_mse}, {"loss", val.loss}};
    metrics["training"]["threads"] = runtime.threads;
    metrics["variant"] = variant;
    metrics["parameters"] = n_params;
    metrics["config"] = flags.to_json();
    vlm::write_text_atomically(out_dir + "/metrics.json", metrics.dump(2) + "\n");
    fmt::print("wrote {0}/vqvae.pt {0}/metrics.json {0}/epochs.jsonl {0}/recon.png {0}/latents.png\n", out_dir);
    return 0;
  });
}
