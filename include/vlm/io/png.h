#pragma once
// PNG output for the figures of the tokenizer and the evaluator: image grids and a labelled scatter plot.
//
//   vlm::write_png("recon.png", vlm::image_grid(at::cat({originals, recons}), /*cols=*/16));
//   vlm::write_png("latents.png", vlm::scatter_plot(points2d, labels, {.title = "PCA of encoder outputs"}));
//
// Images are float tensors in [0, 1] (clamped) or uint8, shaped (H, W), (1, H, W) grayscale or (3, H, W) RGB.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace vlm {

/// Writes a grayscale or RGB image as PNG (atomic: tmp file + rename). Throws naming the path on failure.
void write_png(const std::string& path, const at::Tensor& image);

/// The PNG file of 8-bit pixels (height * width * channels bytes, row-major, channels interleaved), in memory.
/// Torch-free, so that threads which must not run LibTorch ops (the server's HTTP threads) can encode images.
std::string encode_png(const uint8_t* pixels, int width, int height, int channels);

/// images (N, C, H, W) -> one image (C, rows*(H+pad)+pad, cols*(W+pad)+pad), rows = ceil(N / cols),
/// filled row by row; empty cells and the gaps take `pad_value`.
at::Tensor image_grid(const at::Tensor& images, int64_t cols, int64_t padding = 2, float pad_value = 0.5f);

struct ScatterOptions {
  int64_t width = 800;
  int64_t height = 800;
  int64_t point_radius = 2;
  std::string title;
};

/// points (N, 2), labels (N) int64 in [0, 10) -> an RGB image (3, height, width): white background, one colour
/// per label (matplotlib's tab10), a legend naming each label present, and the title on top.
at::Tensor scatter_plot(const at::Tensor& points, const at::Tensor& labels, const ScatterOptions& options = {});

/// Draws `text` into an RGB image (3, H, W) float at pixel (x, y), `scale` pixels per font unit (stb_easy_font).
void draw_text(at::Tensor& rgb, const std::string& text, int64_t x, int64_t y, int64_t scale, float r, float g,
               float b);

}  // namespace vlm
