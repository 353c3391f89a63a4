#pragma once
// Images <-> token text through a trained VQ-VAE, the library's TokenCodec (vlm/tokenizer/token_codec.h): each image becomes `codes_per_image()` letters of `alphabet()`,
// code k written as alphabet[k] (the seed's A..Z for 26 codes), and any such string decodes back to an image.
//
//   auto codec = vlm::ImageTokenCodec::load("runs/vqvae-conv/vqvae.pt");
//   std::vector<std::string> text = codec.encode_text(images);  // images (N, 1, 28, 28) -> N strings like "RNMIBNTY"
//   at::Tensor back = codec.decode_text(text);                    // (N, 1, 28, 28) in [0, 1]
//
// Unlike the seed (which drew a black image for a letter outside A..Z), a bad letter or a wrong length is a
// vlm::Error naming the string, the position and the allowed alphabet.
// The tokenizer checkpoint (kind "vqvae", docs in the header of vqvae_trainer.h) holds the VQ-VAE options, the
// alphabet and the weights, so one file gives a working codec.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/models/vqvae.h"
#include "vlm/tokenizer/token_codec.h"

namespace vlm {

inline constexpr const char* kDefaultImageAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
inline constexpr const char* kTokenizerCheckpointKind = "vqvae";
inline constexpr int64_t kTokenizerCheckpointVersion = 1;

/// Throws unless `alphabet` has exactly `num_embeddings` distinct printable, non-space ASCII characters.
void check_alphabet(const std::string& alphabet, int64_t num_embeddings);

/// codes (L) or (N, L) int64 <-> text; pure functions of the alphabet, usable without a model.
std::string codes_to_text(const at::Tensor& codes, const std::string& alphabet);
std::vector<std::string> codes_to_texts(const at::Tensor& codes, const std::string& alphabet);
/// text -> (L) int64; throws naming the string, position and alphabet on a bad letter or when size != length.
at::Tensor text_to_codes(const std::string& text, const std::string& alphabet, int64_t length);
/// texts -> (N, L) int64
at::Tensor texts_to_codes(const std::vector<std::string>& texts, const std::string& alphabet, int64_t length);

class ImageTokenCodec : public TokenCodec {
 public:
  ImageTokenCodec(VQVAE model, std::string alphabet = kDefaultImageAlphabet, c10::Device device = c10::kCPU);

  /// Rebuilds the VQ-VAE from the options stored in the checkpoint, then loads its weights onto `device`.
  static ImageTokenCodec load(const std::string& path, c10::Device device = c10::kCPU);
  /// Writes a tokenizer checkpoint (atomic). `extra_meta` (metrics, epoch, ...) is stored alongside the options.
  void save(const std::string& path, const nlohmann::json& extra_meta = nlohmann::json::object()) const override;

  // TokenCodec
  std::string kind() const override { return kTokenizerCheckpointKind; }
  std::string alphabet() const override { return alphabet_; }
  int64_t length() const override { return codes_per_image(); }
  std::vector<std::string> encode(const at::Tensor& images) const override { return encode_text(images); }
  at::Tensor decode(const std::vector<std::string>& texts) const override { return decode_text(texts); }
  bool write_grid_png(const std::string& path, const std::vector<std::vector<std::string>>& rows,
                      int64_t columns) const override;

  int64_t codes_per_image() const { return model_->n_codes(); }
  int64_t num_codes() const { return model_->num_embeddings(); }
  c10::Device device() const { return device_; }
  VQVAE& model() { return model_; }
  const VQVAE& model() const { return model_; }
  /// The meta document of the checkpoint this codec was loaded from (empty object if constructed directly).
  const nlohmann::json& meta() const { return meta_; }

  /// images (N, C, H, W) on any device -> codes (N, L) int64 on the CPU; runs in eval mode, in batches.
  at::Tensor encode_codes(const at::Tensor& images, int64_t batch_size = 1024) const;
  /// codes (N, L) int64 -> images (N, C, H, W) on the CPU (C = the model's image_channels).
  at::Tensor decode_codes(const at::Tensor& codes, int64_t batch_size = 1024) const;
  std::vector<std::string> encode_text(const at::Tensor& images, int64_t batch_size = 1024) const;
  at::Tensor decode_text(const std::vector<std::string>& texts, int64_t batch_size = 1024) const;
  std::string encode_text_one(const at::Tensor& image) const;  ///< image (1, H, W) or (H, W)
  at::Tensor decode_text_one(const std::string& text) const;   ///< -> (1, H, W)

 private:
  VQVAE model_;
  std::string alphabet_;
  c10::Device device_;
  nlohmann::json meta_ = nlohmann::json::object();
};

}  // namespace vlm
