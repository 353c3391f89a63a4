#include "vlm/models/vqvae.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "vlm/core/check.h"

namespace vlm {

namespace nn = torch::nn;

VQVAEOptions VQVAEOptions::preset(const std::string& variant) {
  VQVAEOptions o;
  o.variant(variant);
  if (variant == "mlp") return o;
  VLM_CHECK(variant == "conv", "unknown VQ-VAE variant '", variant, "'; expected mlp or conv");
  o.hidden_dim(512).channels(16);
  o.quantizer().embedding_dim(16).groups(o.n_codes()).use_ema(true).ema_decay(0.99).dead_code_threshold(0.5);
  return o;
}

VQVAEImpl::VQVAEImpl(VQVAEOptions options_) : options(std::move(options_)) { reset(); }

void VQVAEImpl::reset() {
  const int64_t S = options.image_size(), C = options.image_channels(), H = options.hidden_dim(), L = options.n_codes();
  const int64_t latent = options.latent_dim();
  VLM_CHECK(S > 0 && C > 0 && H > 0 && L > 0,
            "VQ-VAE: image_size, image_channels, hidden_dim and n_codes must be positive, got ", S, ", ", C, ", ", H,
            ", ", L);
  VLM_CHECK(options.quantizer().groups() == 1 || options.quantizer().groups() == L, "VQ-VAE: the quantizer has ",
            options.quantizer().groups(), " codebooks; use 1 (shared) or one per code position (n_codes = ", L, ")");
  if (options.variant() == "mlp") {
    encoder = nn::Sequential(nn::Flatten(), nn::Linear(C * S * S, H), nn::ReLU(), nn::Linear(H, latent), nn::ReLU());
    decoder = nn::Sequential(nn::Linear(latent, H), nn::ReLU(), nn::Linear(H, C * S * S), nn::Sigmoid(),
                             nn::Unflatten(nn::UnflattenOptions(1, {C, S, S})));
  } else if (options.variant() == "conv") {
    const int64_t c = options.channels();
    VLM_CHECK(S % 4 == 0, "VQ-VAE conv: image_size must be a multiple of 4 (two stride-2 convs), got ", S);
    VLM_CHECK(c > 0, "VQ-VAE conv: channels must be positive, got ", c);
    const int64_t s4 = S / 4, flat = 2 * c * s4 * s4;
    auto down = [](int64_t in, int64_t out) { return nn::Conv2d(nn::Conv2dOptions(in, out, 4).stride(2).padding(1)); };
    auto up = [](int64_t in, int64_t out) {
      return nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, 4).stride(2).padding(1));
    };
    if (options.spatial_tokens()) {
      const int64_t cols = L % 2 == 0 ? 2 : 1, rows = L / cols, D = options.quantizer().embedding_dim();
      encoder = nn::Sequential(
          down(C, c), nn::ReLU(),                                                     // (B, c, S/2, S/2)
          down(c, 2 * c), nn::ReLU(),                                                 // (B, 2c, S/4, S/4)
          nn::Conv2d(nn::Conv2dOptions(2 * c, 4 * c, 3).padding(1)), nn::ReLU(),      // (B, 4c, S/4, S/4)
          nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({rows, cols})),          // (B, 4c, L/2, 2)
          nn::Conv2d(nn::Conv2dOptions(4 * c, D, 1)));                                // (B, D, L/2, 2)
    } else {
      encoder = nn::Sequential(down(C, c), nn::ReLU(),      // (B, c, S/2, S/2)
                               down(c, 2 * c), nn::ReLU(),  // (B, 2c, S/4, S/4)
                               nn::Flatten(), nn::Linear(flat, H), nn::ReLU(), nn::Linear(H, latent));
    }
    decoder = nn::Sequential(nn::Linear(latent, H), nn::ReLU(), nn::Linear(H, flat), nn::ReLU(),
                             nn::Unflatten(nn::UnflattenOptions(1, {2 * c, s4, s4})),  // (B, 2c, S/4, S/4)
                             up(2 * c, c), nn::ReLU(),                                 // (B, c, S/2, S/2)
                             up(c, C), nn::Sigmoid());                                 // (B, C, S, S)
  } else {
    VLM_FAIL("VQ-VAE: unknown variant '", options.variant(), "'; expected mlp or conv");
  }
  register_module("encoder", encoder);
  quantizer = register_module("quantizer", VectorQuantizer(options.quantizer()));
  register_module("decoder", decoder);
}

void VQVAEImpl::check_images(const at::Tensor& images) const {
  const int64_t S = options.image_size(), C = options.image_channels();
  VLM_CHECK(images.dim() == 4 && images.size(1) == C && images.size(2) == S && images.size(3) == S,
            "VQ-VAE: expected images (B, ", C, ", ", S, ", ", S, "), got ", images.sizes());
}

at::Tensor VQVAEImpl::encode(const at::Tensor& images) {
  check_images(images);
  auto z = encoder->forward(images);  // (B, L*D), or (B, D, L/2, 2) with spatial tokens
  if (options.spatial_tokens()) return z.flatten(2).transpose(1, 2).contiguous();  // (B, L, D), row-major cells
  return z.view({images.size(0), options.n_codes(), -1});                          // (B, L, D)
}

at::Tensor VQVAEImpl::quantize(const at::Tensor& images) {
  at::NoGradGuard no_grad;
  return quantizer->quantize(encode(images));  // (B, L)
}

at::Tensor VQVAEImpl::decode(const at::Tensor& quantized) {
  VLM_CHECK(quantized.dim() == 3 && quantized.size(1) == options.n_codes() &&
                quantized.size(2) == options.quantizer().embedding_dim(),
            "VQ-VAE: expected quantized latents (B, ", options.n_codes(), ", ", options.quantizer().embedding_dim(),
            "), got ", quantized.sizes());
  return decoder->forward(quantized.flatten(1));  // (B, C, S, S)
}

at::Tensor VQVAEImpl::decode_codes(const at::Tensor& codes) {
  VLM_CHECK(codes.dim() == 2 && codes.size(1) == options.n_codes() && codes.scalar_type() == at::kLong,
            "VQ-VAE: expected codes (B, ", options.n_codes(), ") int64, got ", codes.sizes(), " ",
            codes.scalar_type());
  return decode(quantizer->lookup(codes));
}

VQVAEOutput VQVAEImpl::forward(const at::Tensor& images) { return forward_latents(encode(images)); }

VQVAEOutput VQVAEImpl::forward_latents(const at::Tensor& z) {
  VLM_CHECK(z.dim() == 3 && z.size(1) == options.n_codes() && z.size(2) == options.quantizer().embedding_dim(),
            "VQ-VAE: expected latents (B, ", options.n_codes(), ", ", options.quantizer().embedding_dim(), "), got ",
            z.sizes());
  auto vq = quantizer->forward(z);  // quantized (B, L, D), codes (B, L)
  auto q = vq.quantized;
  if (is_training() && options.code_dropout() > 0) {
    auto drop = at::rand({z.size(0), z.size(1), 1}, z.options()) < options.code_dropout();  // (B, L, 1)
    auto random_codes = at::randint(num_embeddings(), {z.size(0), z.size(1)}, vq.codes.options());  // (B, L)
    q = at::where(drop, quantizer->lookup(random_codes).detach(), q);                                  // (B, L, D)
  }
  return {decode(q), vq.loss, z, vq.codes, vq.quantized};
}

}  // namespace vlm
