#include "downsample_codec.h"

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"
#include "vlm/io/png.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace custom {

namespace {
// The one line that makes the codec known to vlm::load_codec.
const vlm::CodecRegistration kRegistration(DownsampleCodec::kKind, &DownsampleCodec::load);
}  // namespace

DownsampleCodec::DownsampleCodec(int64_t image_size, int64_t grid, std::vector<double> thresholds)
    : image_size_(image_size), grid_(grid), thresholds_(std::move(thresholds)) {
  VLM_CHECK(grid_ > 0 && image_size_ % grid_ == 0, "DownsampleCodec: the grid (", grid_,
            ") must divide the image size (", image_size_, ")");
  VLM_CHECK(!thresholds_.empty() && thresholds_.size() < 26, "DownsampleCodec: 1 to 25 thresholds, got ",
            thresholds_.size());
  for (size_t i = 0; i < thresholds_.size(); ++i)
    VLM_CHECK(thresholds_[i] > 0 && thresholds_[i] < 1 && (i == 0 || thresholds_[i] > thresholds_[i - 1]),
              "DownsampleCodec: thresholds must increase within (0, 1)");
}

std::string DownsampleCodec::alphabet() const {
  std::string a;
  for (size_t k = 0; k <= thresholds_.size(); ++k) a += static_cast<char>('A' + k);
  return a;
}

std::vector<std::string> DownsampleCodec::encode(const at::Tensor& images) const {
  VLM_CHECK(images.dim() == 4 && images.size(2) == image_size_ && images.size(3) == image_size_,
            "DownsampleCodec: images (N, 1, ", image_size_, ", ", image_size_, ") expected, got ", images.sizes());
  auto means = at::adaptive_avg_pool2d(images.to(at::kCPU, at::kFloat), {grid_, grid_}).flatten(1);  // (N, G*G)
  auto levels = at::bucketize(means, at::tensor(thresholds_, at::kFloat)).to(at::kLong).contiguous();
  return vlm::codes_to_texts(levels, alphabet());
}

at::Tensor DownsampleCodec::decode(const std::vector<std::string>& texts) const {
  const std::string a = alphabet();
  auto codes = vlm::texts_to_codes(texts, a, length());  // throws naming a bad letter or length
  // Each level's grey: the middle of its interval of block means.
  std::vector<float> grey;
  for (size_t k = 0; k <= thresholds_.size(); ++k) {
    const double lo = k == 0 ? 0.0 : thresholds_[k - 1], hi = k == thresholds_.size() ? 1.0 : thresholds_[k];
    grey.push_back(static_cast<float>(k == 0 ? 0.0 : (lo + hi) / 2));
  }
  auto blocks = at::tensor(grey).index_select(0, codes.flatten()).view({-1, 1, grid_, grid_});  // (N, 1, G, G)
  const int64_t scale = image_size_ / grid_;
  return blocks.repeat_interleave(scale, 2).repeat_interleave(scale, 3);  // (N, 1, S, S)
}

void DownsampleCodec::save(const std::string& path, const nlohmann::json& extra_meta) const {
  nlohmann::json meta = extra_meta;
  meta["image_size"] = image_size_;
  meta["grid"] = grid_;
  meta["thresholds"] = thresholds_;
  vlm::CheckpointWriter(kKind, 1, meta).save(path);
}

std::unique_ptr<vlm::TokenCodec> DownsampleCodec::load(const std::string& path, c10::Device) {
  vlm::CheckpointReader r(path, kKind, 1);
  const auto& m = r.meta();
  VLM_CHECK(m.contains("image_size") && m.contains("grid") && m.contains("thresholds"), "'", path,
            "' is a downsample codec without image_size, grid or thresholds");
  return std::make_unique<DownsampleCodec>(m["image_size"].get<int64_t>(), m["grid"].get<int64_t>(),
                                           m["thresholds"].get<std::vector<double>>());
}

bool DownsampleCodec::write_grid_png(const std::string& path, const std::vector<std::vector<std::string>>& rows,
                                     int64_t columns) const {
  std::vector<at::Tensor> tiles;
  for (const auto& row : rows)
    for (int64_t c = 0; c < columns; ++c)
      tiles.push_back(c < static_cast<int64_t>(row.size()) && !row[c].empty()
                          ? decode({row[c]})[0]
                          : at::zeros({1, image_size_, image_size_}));
  vlm::write_png(path, vlm::image_grid(at::stack(tiles), columns));
  return true;
}

}  // namespace custom
