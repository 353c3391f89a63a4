#include "vlm/io/png.h"

#include <algorithm>
#include <array>
#include <vector>

#include <ATen/ATen.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

// The one translation unit that compiles stb_image_write's implementation.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>
#include <stb_easy_font.h>
#pragma GCC diagnostic pop

namespace vlm {

void write_png(const std::string& path, const at::Tensor& image_in) {
  auto image = image_in.dim() == 2 ? image_in.unsqueeze(0) : image_in;  // (C, H, W)
  VLM_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
            "write_png ", path, ": expected an image (H, W), (1, H, W) or (3, H, W), got ", image_in.sizes());
  VLM_CHECK(image.size(1) > 0 && image.size(2) > 0, "write_png ", path, ": empty image ", image_in.sizes());
  auto bytes = image.scalar_type() == at::kByte
                   ? image.cpu()
                   : (image.detach().cpu().to(at::kFloat).clamp(0, 1) * 255).round().to(at::kByte);
  bytes = bytes.permute({1, 2, 0}).contiguous();  // (H, W, C), the interleaved layout PNG wants
  const int h = static_cast<int>(bytes.size(0)), w = static_cast<int>(bytes.size(1));
  const int c = static_cast<int>(bytes.size(2));
  // Encode in memory, then write with the checked writer (OS cause named, partial temporary removed).
  write_bytes_atomically(path, encode_png(bytes.data_ptr<uint8_t>(), w, h, c));
}

std::string encode_png(const uint8_t* pixels, int width, int height, int channels) {
  VLM_CHECK(width > 0 && height > 0 && channels >= 1 && channels <= 4, "encode_png: bad image ", width, "x", height,
            "x", channels);
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  VLM_CHECK(stbi_write_png_to_func(append, &png, width, height, channels, pixels, width * channels) != 0,
            "encode_png: PNG encoding of a ", width, "x", height, " image failed");
  return png;
}

at::Tensor image_grid(const at::Tensor& images, int64_t cols, int64_t padding, float pad_value) {
  VLM_CHECK(images.dim() == 4, "image_grid: expected images (N, C, H, W), got ", images.sizes());
  VLM_CHECK(cols > 0 && padding >= 0, "image_grid: cols must be positive and padding >= 0, got ", cols, " and ",
            padding);
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const int64_t rows = std::max<int64_t>(1, (n + cols - 1) / cols);
  auto grid = at::full({c, rows * (h + padding) + padding, cols * (w + padding) + padding}, pad_value);
  auto src = images.detach().cpu().to(at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = padding + (i / cols) * (h + padding), x = padding + (i % cols) * (w + padding);
    grid.slice(1, y, y + h).slice(2, x, x + w).copy_(src[i]);  // (C, H, W)
  }
  return grid;
}

void draw_text(at::Tensor& rgb, const std::string& text, int64_t x, int64_t y, int64_t scale, float r, float g,
               float b) {
  VLM_CHECK(rgb.dim() == 3 && rgb.size(0) == 3 && rgb.scalar_type() == at::kFloat,
            "draw_text: expected a float RGB image (3, H, W), got ", rgb.sizes());
  // stb_easy_font emits axis-aligned quads (4 vertices of 16 bytes: x, y, z floats and an RGBA colour).
  std::vector<char> buffer(text.size() * 1200 + 64);
  std::vector<char> mutable_text(text.begin(), text.end());
  mutable_text.push_back('\0');
  unsigned char colour[4] = {0, 0, 0, 255};
  const int quads =
      stb_easy_font_print(0, 0, mutable_text.data(), colour, buffer.data(), static_cast<int>(buffer.size()));
  const int64_t H = rgb.size(1), W = rgb.size(2);
  auto acc = rgb.accessor<float, 3>();
  const float ink[3] = {r, g, b};
  for (int q = 0; q < quads; ++q) {
    const float* v0 = reinterpret_cast<const float*>(buffer.data() + q * 64);
    const float* v2 = reinterpret_cast<const float*>(buffer.data() + q * 64 + 32);
    const int64_t x0 = x + static_cast<int64_t>(v0[0] * scale), y0 = y + static_cast<int64_t>(v0[1] * scale);
    const int64_t x1 = x + static_cast<int64_t>(v2[0] * scale), y1 = y + static_cast<int64_t>(v2[1] * scale);
    for (int64_t yy = std::max<int64_t>(0, y0); yy < std::min(H, y1); ++yy)
      for (int64_t xx = std::max<int64_t>(0, x0); xx < std::min(W, x1); ++xx)
        for (int ch = 0; ch < 3; ++ch) acc[ch][yy][xx] = ink[ch];
  }
}

at::Tensor scatter_plot(const at::Tensor& points_in, const at::Tensor& labels_in, const ScatterOptions& o) {
  VLM_CHECK(points_in.dim() == 2 && points_in.size(1) == 2, "scatter_plot: expected points (N, 2), got ",
            points_in.sizes());
  VLM_CHECK(labels_in.numel() == points_in.size(0), "scatter_plot: ", points_in.size(0), " points but ",
            labels_in.numel(), " labels");
  VLM_CHECK(o.width >= 200 && o.height >= 200, "scatter_plot: need at least 200x200 pixels, got ", o.width, "x",
            o.height);
  static const std::array<std::array<float, 3>, 10> tab10 = {{{0.122f, 0.467f, 0.706f},
                                                              {1.000f, 0.498f, 0.055f},
                                                              {0.173f, 0.627f, 0.173f},
                                                              {0.839f, 0.153f, 0.157f},
                                                              {0.580f, 0.404f, 0.741f},
                                                              {0.549f, 0.337f, 0.294f},
                                                              {0.890f, 0.467f, 0.761f},
                                                              {0.498f, 0.498f, 0.498f},
                                                              {0.737f, 0.741f, 0.133f},
                                                              {0.090f, 0.745f, 0.812f}}};
  auto points = points_in.detach().cpu().to(at::kFloat);
  auto labels = labels_in.detach().cpu().to(at::kLong).flatten();
  auto image = at::ones({3, o.height, o.width});
  const int64_t legend_w = 90, margin = 20, top = o.title.empty() ? margin : 40;
  const int64_t plot_w = o.width - legend_w - 2 * margin, plot_h = o.height - top - margin;
  if (points.size(0) > 0) {
    auto lo = std::get<0>(points.min(0)), hi = std::get<0>(points.max(0));  // (2)
    auto span = (hi - lo).clamp_min(1e-12f);
    auto unit = (points - lo) / span;  // (N, 2) in [0, 1]
    auto acc = image.accessor<float, 3>();
    auto u = unit.accessor<float, 2>();
    auto l = labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < points.size(0); ++i) {
      const auto& colour = tab10[((l[i] % 10) + 10) % 10];
      const int64_t cx = margin + static_cast<int64_t>(u[i][0] * (plot_w - 1));
      const int64_t cy = top + static_cast<int64_t>((1 - u[i][1]) * (plot_h - 1));  // y grows upwards
      for (int64_t dy = -o.point_radius; dy <= o.point_radius; ++dy)
        for (int64_t dx = -o.point_radius; dx <= o.point_radius; ++dx) {
          if (dx * dx + dy * dy > o.point_radius * o.point_radius) continue;
          const int64_t yy = cy + dy, xx = cx + dx;
          if (yy < 0 || yy >= o.height || xx < 0 || xx >= o.width) continue;
          for (int ch = 0; ch < 3; ++ch) acc[ch][yy][xx] = colour[ch];
        }
    }
  }
  // Legend: a swatch and the label for every label present, in order.
  auto present = at::bincount(labels.clamp_min(0), {}, 10).gt(0);
  int64_t row = 0;
  for (int64_t k = 0; k < present.size(0); ++k) {
    if (!present[k].item<bool>()) continue;
    const int64_t y = top + row * 24, x = o.width - legend_w;
    const auto& colour = tab10[k % 10];
    for (int ch = 0; ch < 3; ++ch) image[ch].slice(0, y, y + 14).slice(1, x, x + 14).fill_(colour[ch]);
    draw_text(image, std::to_string(k), x + 22, y, 2, 0, 0, 0);
    ++row;
  }
  if (!o.title.empty()) draw_text(image, o.title, margin, 10, 2, 0, 0, 0);
  return image;
}

}  // namespace vlm
