#pragma once
// A codec defined outside the library: a fixed-function image codec with nothing to train. An image is averaged over
// a grid x grid of blocks (28x28 -> 4x4 blocks of 7x7 pixels) and each block's mean is quantised to one of a few
// grey levels, written as a letter (A = black ... D = white for 4 levels): 16 letters of a 4-letter alphabet.
// Decoding paints each block with its level's grey.
//
// It implements vlm::TokenCodec and registers its checkpoint kind ("downsample") with vlm::CodecRegistration, so the
// library's tools load it with vlm::load_codec like the VQ-VAE: nothing in the library knows about it.
#include <memory>
#include <string>
#include <vector>

#include "vlm/tokenizer/token_codec.h"

namespace custom {

class DownsampleCodec : public vlm::TokenCodec {
 public:
  static constexpr const char* kKind = "downsample";

  /// `thresholds` (increasing, in (0, 1)) split block means into thresholds.size() + 1 levels.
  DownsampleCodec(int64_t image_size = 28, int64_t grid = 4, std::vector<double> thresholds = {0.1, 0.3, 0.5});
  /// The CodecLoader registered for kKind.
  static std::unique_ptr<vlm::TokenCodec> load(const std::string& path, c10::Device device);

  std::string kind() const override { return kKind; }
  std::string alphabet() const override;
  int64_t length() const override { return grid_ * grid_; }
  std::vector<std::string> encode(const at::Tensor& images) const override;
  at::Tensor decode(const std::vector<std::string>& texts) const override;
  void save(const std::string& path, const nlohmann::json& extra_meta = nlohmann::json::object()) const override;
  bool write_grid_png(const std::string& path, const std::vector<std::vector<std::string>>& rows,
                      int64_t columns) const override;

 private:
  int64_t image_size_, grid_;
  std::vector<double> thresholds_;
};

}  // namespace custom
