#pragma once
// The image tokenizer: a VQ-VAE that turns an image into `n_codes` indices into a `num_embeddings`-row codebook.
//
//   VQVAE model(VQVAEOptions().variant("mlp"));   // the seed: 784-128-32, 8 chunks of 4, 26 codes, 32-128-784
//   auto out = model(images);                     // images (B, 1, H, W) -> recon (B, 1, H, W), codes (B, 8), vq_loss
//   auto codes = model->quantize(images);         // (B, 8) int64
//   auto again = model->decode_codes(codes);      // (B, 1, H, W) in [0, 1]
//
// Variants share the interface and the quantizer:
//   mlp   exactly the seed: Linear(HW, hidden) ReLU Linear(hidden, L*D) ReLU | VQ | Linear(L*D, hidden) ReLU
//         Linear(hidden, HW) sigmoid, with L = n_codes chunks of D = embedding_dim.
//   conv  Conv(1, c, 4, s2) ReLU Conv(c, 2c, 4, s2) ReLU [(H/4)x(W/4)] Linear -> hidden ReLU Linear -> L*D | VQ |
//         Linear(L*D, hidden) ReLU Linear -> 2c*(H/4)*(W/4) ReLU ConvT(2c, c, 4, s2) ReLU ConvT(c, 1, 4, s2) sigmoid.
//         The code dimension D is free (only L x log2(K) bits cross the bottleneck), so it defaults larger, and
//         each code position has its own codebook of K codes (quantizer groups = L), EMA-updated with restarts.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "vlm/models/vector_quantizer.h"

namespace vlm {

struct VQVAEOptions {
  /// The seed's mlp, or the conv variant with its defaults (D=16, a codebook per position, EMA, dead-code restarts).
  static VQVAEOptions preset(const std::string& variant);
  int64_t latent_dim() const { return n_codes_ * quantizer_.embedding_dim(); }

  TORCH_ARG(std::string, variant) = "mlp";  ///< "mlp" (the seed) or "conv"
  TORCH_ARG(int64_t, image_size) = 28;      ///< H = W of the images
  TORCH_ARG(int64_t, image_channels) = 1;   ///< C: 1 for grey images, 3 for colour
  TORCH_ARG(int64_t, hidden_dim) = 128;     ///< width of the fully connected hidden layer (both variants)
  TORCH_ARG(int64_t, channels) = 32;        ///< conv: channels of the first conv layer (the second has twice)
  TORCH_ARG(int64_t, n_codes) = 8;          ///< L, codes (tokens) per image
  /// conv: each code summarises one cell of a (L/2) x 2 grid over the image (conv features, 3x3 conv, average pool,
  /// 1x1 conv to D) instead of a linear map of the whole feature map, so that code position p describes region p.
  TORCH_ARG(bool, spatial_tokens) = false;
  /// Training only: each code position is replaced by a random code with this probability, so that the decoder
  /// cannot rely on any single token and every token has to carry coarse, robust information. 0 = off.
  TORCH_ARG(double, code_dropout) = 0.0;
  TORCH_ARG(VectorQuantizerOptions, quantizer) = VectorQuantizerOptions(26, 4);

 public:
  template <class V>
  void fields(V& v) {
    v("variant", variant(), "mlp (the seed) or conv");
    v("image_size", image_size(), "height = width of the images", FieldKind::kDerived);
    v("image_channels", image_channels(), "channels of the images", FieldKind::kDerived);
    v("hidden_dim", hidden_dim(), "hidden width");
    v("channels", channels(), "conv: channels of the first layer");
    v("n_codes", n_codes(), "codes (image letters) per image");
    v("spatial_tokens", spatial_tokens(), "conv: code p describes region p of the image");
    v("code_dropout", code_dropout(), "training: replace codes by random ones with this probability");
    v("quantizer", quantizer(), "the vector quantizer");
  }
};

struct VQVAEOutput {
  at::Tensor recon;    ///< (B, 1, H, W) in [0, 1]
  at::Tensor vq_loss;  ///< ()
  at::Tensor latents;  ///< (B, L, D) encoder output before quantisation
  at::Tensor codes;    ///< (B, L) int64
  at::Tensor quantized;  ///< (B, L, D) straight-through quantized latents (before any code dropout)
};

class VQVAEImpl : public torch::nn::Cloneable<VQVAEImpl> {
 public:
  explicit VQVAEImpl(VQVAEOptions options = {});
  void reset() override;

  VQVAEOutput forward(const at::Tensor& images);
  /// The part of forward() after the encoder: latents (B, L, D) -> quantized, codes, loss and reconstruction.
  VQVAEOutput forward_latents(const at::Tensor& latents);
  /// images (B, 1, H, W) -> latents (B, L, D)
  at::Tensor encode(const at::Tensor& images);
  /// images (B, 1, H, W) -> codes (B, L) int64; no graph
  at::Tensor quantize(const at::Tensor& images);
  /// quantized latents (B, L, D) -> images (B, 1, H, W)
  at::Tensor decode(const at::Tensor& quantized);
  /// codes (B, L) int64 -> images (B, 1, H, W); throws on a code outside [0, K) or a wrong L
  at::Tensor decode_codes(const at::Tensor& codes);

  int64_t n_codes() const { return options.n_codes(); }
  int64_t num_embeddings() const { return options.quantizer().num_embeddings(); }

  VQVAEOptions options;
  torch::nn::Sequential encoder{nullptr};
  VectorQuantizer quantizer{nullptr};
  torch::nn::Sequential decoder{nullptr};

 private:
  void check_images(const at::Tensor& images) const;
};
TORCH_MODULE(VQVAE);

}  // namespace vlm
