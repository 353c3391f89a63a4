#include "vlm/data/augment.h"

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "vlm/core/check.h"

namespace vlm {

void AugmentOptions::validate() const {
  VLM_CHECK(rotate >= 0 && rotate <= 180, "--rotate (augmentation) must be in [0, 180] degrees, got ", rotate);
  VLM_CHECK(scale >= 0 && scale < 1, "--scale (augmentation) must be in [0, 1), got ", scale);
  VLM_CHECK(shift >= 0, "--shift (augmentation) must be >= 0 pixels, got ", shift);
  VLM_CHECK(shear >= 0 && shear < 60, "--shear (augmentation) must be in [0, 60) degrees, got ", shear);
  VLM_CHECK(elastic >= 0, "--elastic (augmentation) must be >= 0 pixels, got ", elastic);
  VLM_CHECK(elastic_sigma > 0, "--elastic_sigma (augmentation) must be positive, got ", elastic_sigma);
}

at::Tensor warp_images(const at::Tensor& images, const at::Tensor& theta, const at::Tensor& displacement) {
  VLM_CHECK(images.dim() == 4, "warp_images: expected images (B, C, H, W), got ", images.sizes());
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  VLM_CHECK(theta.dim() == 3 && theta.size(0) == B && theta.size(1) == 2 && theta.size(2) == 3,
            "warp_images: expected theta (", B, ", 2, 3), got ", theta.sizes());
  auto opts = images.options();
  // Pixel centres about the image centre: x_j = j - (W - 1) / 2, y_i = i - (H - 1) / 2.
  auto xs = at::arange(W, opts) - (W - 1) / 2.0;  // (W)
  auto ys = at::arange(H, opts) - (H - 1) / 2.0;  // (H)
  auto px = xs.view({1, 1, W}).expand({B, H, W});
  auto py = ys.view({1, H, 1}).expand({B, H, W});
  auto t = theta.to(opts);
  auto a = [&](int64_t r, int64_t c) { return t.select(1, r).select(1, c).view({B, 1, 1}); };
  auto sx = a(0, 0) * px + a(0, 1) * py + a(0, 2);  // (B, H, W) source x in pixels
  auto sy = a(1, 0) * px + a(1, 1) * py + a(1, 2);
  if (displacement.defined()) {
    VLM_CHECK(displacement.dim() == 4 && displacement.size(0) == B && displacement.size(1) == 2 &&
                  displacement.size(2) == H && displacement.size(3) == W,
              "warp_images: expected displacement (", B, ", 2, ", H, ", ", W, "), got ", displacement.sizes());
    auto d = displacement.to(opts);
    sx = sx + d.select(1, 0);
    sy = sy + d.select(1, 1);
  }
  // grid_sample's normalised coordinates with align_corners=false: pixel centre j sits at (2 j + 1) / W - 1.
  auto gx = (sx + (W - 1) / 2.0) * (2.0 / W) + (1.0 / W - 1.0);
  auto gy = (sy + (H - 1) / 2.0) * (2.0 / H) + (1.0 / H - 1.0);
  auto grid = at::stack({gx, gy}, 3);  // (B, H, W, 2)
  return at::grid_sampler(images, grid, /*interpolation=bilinear*/ 0, /*padding=zeros*/ 0, /*align_corners=*/false);
}

namespace {
// A smooth random field (B, 2, H, W): uniform noise blurred by a separable Gaussian, scaled so that its largest
// magnitude in each image is `max_pixels` (Simard et al.'s elastic distortion with a bounded amplitude).
at::Tensor elastic_field(int64_t B, int64_t H, int64_t W, double max_pixels, double sigma, const at::TensorOptions& opts) {
  const int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * sigma)));
  auto r = at::arange(-radius, radius + 1, opts);
  auto g = at::exp(-(r * r) / (2 * sigma * sigma));
  g = g / g.sum();                                   // (2r+1)
  auto field = at::rand({B * 2, 1, H, W}, opts) * 2 - 1;  // (2B, 1, H, W)
  field = at::conv2d(field, g.view({1, 1, -1, 1}), at::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{radius, 0});  // blur along y
  field = at::conv2d(field, g.view({1, 1, 1, -1}), at::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{0, radius});  // and along x
  field = field.view({B, 2, H, W});
  auto peak = field.abs().flatten(1).amax(1).clamp_min(1e-12).view({B, 1, 1, 1});
  return field / peak * max_pixels;
}
}  // namespace

at::Tensor augment_images(const at::Tensor& images, const AugmentOptions& o) {
  o.validate();
  VLM_CHECK(images.dim() == 4, "augment_images: expected images (B, C, H, W), got ", images.sizes());
  if (!o.any()) return images;
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  auto opts = images.options();
  auto uniform = [&](double r) { return (at::rand({B}, opts) * 2 - 1) * r; };  // (B) in [-r, r]
  const double deg = M_PI / 180.0;
  auto angle = uniform(o.rotate * deg), shear = uniform(o.shear * deg);
  auto zoom = 1 + uniform(o.scale);
  auto tx = uniform(o.shift), ty = uniform(o.shift);
  // Output pixel p samples the source at A p + t, A = R(angle) S(shear) / zoom: a zoom > 1 enlarges the digit.
  auto c = at::cos(angle), s = at::sin(angle), k = at::tan(shear);
  auto row0 = at::stack({c, c * k - s, -tx}, 1) / zoom.unsqueeze(1);  // (B, 3); t is zoomed with the digit
  auto row1 = at::stack({s, s * k + c, -ty}, 1) / zoom.unsqueeze(1);
  auto theta = at::stack({row0, row1}, 1);  // (B, 2, 3)
  at::Tensor field;
  if (o.elastic > 0) field = elastic_field(B, H, W, o.elastic, o.elastic_sigma, opts);
  return warp_images(images, theta, field);
}

at::Tensor deskew_images(const at::Tensor& images) {
  VLM_CHECK(images.dim() == 4, "deskew_images: expected images (B, C, H, W), got ", images.sizes());
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  at::NoGradGuard no_grad;
  auto opts = images.options().dtype(at::kFloat);
  auto m = images.to(at::kFloat).sum(1).clamp_min(0);  // (B, H, W) intensity
  auto xs = (at::arange(W, opts) - (W - 1) / 2.0).view({1, 1, W});
  auto ys = (at::arange(H, opts) - (H - 1) / 2.0).view({1, H, 1});
  auto total = m.sum({1, 2});                               // (B)
  auto safe = total.clamp_min(1e-12);
  auto mx = (m * xs).sum({1, 2}) / safe, my = (m * ys).sum({1, 2}) / safe;  // (B) centre of mass
  auto dx = xs - mx.view({B, 1, 1}), dy = ys - my.view({B, 1, 1});
  auto cov = (m * dx * dy).sum({1, 2}) / safe, var_y = (m * dy * dy).sum({1, 2}) / safe;
  auto empty = total.le(1e-12);
  auto alpha = at::where(empty, at::zeros_like(cov), cov / var_y.clamp_min(1e-12));
  mx = at::where(empty, at::zeros_like(mx), mx);
  my = at::where(empty, at::zeros_like(my), my);
  // Output p = (x, y) about the centre samples the source at (x + alpha y + mx, y + my).
  auto one = at::ones_like(alpha), zero = at::zeros_like(alpha);
  auto theta = at::stack({at::stack({one, alpha, mx}, 1), at::stack({zero, one, my}, 1)}, 1);  // (B, 2, 3)
  return warp_images(images, theta.to(images.scalar_type()));
}

at::Tensor pixel_neighbours(const at::Tensor& images, int64_t k, int64_t dims, int64_t chunk, int64_t begin,
                            int64_t end) {
  VLM_CHECK(images.dim() == 4, "pixel_neighbours: expected images (N, C, H, W), got ", images.sizes());
  const int64_t n = images.size(0);
  if (end < 0) end = n;
  VLM_CHECK(k > 0 && k < n, "pixel_neighbours: k must be in [1, ", n - 1, "], got ", k);
  VLM_CHECK(dims > 0 && chunk > 0, "pixel_neighbours: dims and chunk must be positive");
  VLM_CHECK(0 <= begin && begin <= end && end <= n, "pixel_neighbours: rows [", begin, ", ", end, ") outside [0, ", n,
            ")");
  at::NoGradGuard no_grad;
  auto x = images.reshape({n, -1}).to(at::kFloat);  // (N, F)
  x = x - x.mean(0, /*keepdim=*/true);
  if (dims < x.size(1)) {
    auto cov = at::mm(x.t(), x);                          // (F, F)
    auto axes = std::get<1>(at::linalg_eigh(cov));         // eigenvalues ascending
    x = at::mm(x, axes.slice(1, x.size(1) - dims).flip({1}));  // (N, dims), leading components first
  }
  // |q - x_j|^2 = |q|^2 + |x_j|^2 - 2 q.x_j, and |q|^2 is the same for the whole row: it does not change the order.
  // Distances come a (queries, refs) tile at a time, small enough to stay in cache, and each query row keeps its k
  // best in a sorted list that most distances fail to enter at the first compare: one pass over N^2 floats, where
  // a full (chunk, N) matrix and topk went through memory twice and sorted (3-4x slower at N = 50,000).
  x = x.contiguous();
  auto sq = x.pow(2).sum(1).contiguous();  // (N)
  const int64_t rows = end - begin, tile = 2048;
  auto best_d = at::full({rows, k}, std::numeric_limits<float>::infinity());  // (rows, k) ascending
  auto best_i = at::full({rows, k}, int64_t{-1}, at::kLong);                  // (rows, k)
  float* bd = best_d.data_ptr<float>();
  int64_t* bi = best_i.data_ptr<int64_t>();
  for (int64_t q0 = begin; q0 < end; q0 += chunk) {
    const int64_t q1 = std::min(end, q0 + chunk);
    auto queries = x.slice(0, q0, q1);
    for (int64_t r0 = 0; r0 < n; r0 += tile) {
      const int64_t r1 = std::min(n, r0 + tile);
      auto d = at::addmm(sq.slice(0, r0, r1).unsqueeze(0), queries, x.slice(0, r0, r1).t(), /*beta=*/1,
                         /*alpha=*/-2).contiguous();  // (q, r)
      const float* dp = d.data_ptr<float>();
      at::parallel_for(q0, q1, 64, [&](int64_t a, int64_t b) {
        for (int64_t q = a; q < b; ++q) {
          const float* row = dp + (q - q0) * (r1 - r0);
          float* kd = bd + (q - begin) * k;
          int64_t* ki = bi + (q - begin) * k;
          auto offer = [&](int64_t j) {
            const float v = row[j];
            if (!(v < kd[k - 1]) || r0 + j == q) return;  // ties keep the lower index
            int64_t p = k - 1;
            for (; p > 0 && kd[p - 1] > v; --p) {
              kd[p] = kd[p - 1];
              ki[p] = ki[p - 1];
            }
            kd[p] = v;
            ki[p] = r0 + j;
          };
          const int64_t cols = r1 - r0;
          int64_t j = 0;
          for (; j + 16 <= cols; j += 16) {  // a vectorised test of 16 distances at once; few blocks hold a candidate
            const float worst = kd[k - 1];
            int any = 0;
            for (int t = 0; t < 16; ++t) any |= row[j + t] < worst;
            if (any)
              for (int t = 0; t < 16; ++t) offer(j + t);
          }
          for (; j < cols; ++j) offer(j);
        }
      });
    }
  }
  return best_i;
}

}  // namespace vlm
