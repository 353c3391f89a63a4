#pragma once
// Random geometric augmentations of image batches, for the tokenizer's unsupervised objectives (vqvae_trainer.h):
// two views of one digit that differ only in pose and stroke should share their class, whatever the letters say.
//
//   vlm::AugmentOptions aug;              // MNIST-appropriate: +-15 deg, scale +-10 %, shift +-2 px, shear +-10 deg,
//   auto view = vlm::augment_images(x, aug);   // elastic warp of 2 px (sigma 3); x (B, C, H, W) -> (B, C, H, W)
//
// No flips: a mirrored 2, 3, 4, 5, 7 or 9 is not that digit. Every image gets its own draw from the default
// generator, so a seeded run is reproducible. Pixels that come from outside the image are 0 (the background).
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "vlm/core/options.h"

namespace vlm {

struct AugmentOptions {
  double rotate = 15;         ///< maximum rotation in degrees, uniform in [-rotate, rotate]
  double scale = 0.1;         ///< maximum relative zoom: factor uniform in [1 - scale, 1 + scale]
  double shift = 2;           ///< maximum translation in pixels along each axis, before the zoom (so up to shift / zoom)
  double shear = 10;          ///< maximum horizontal shear in degrees (slant)
  double elastic = 2;         ///< maximum displacement in pixels of a smooth random field (Simard et al.); 0 = off
  double elastic_sigma = 3;   ///< smoothness of that field: the Gaussian's standard deviation in pixels

  /// Whether any of the above changes an image.
  bool any() const { return rotate > 0 || scale > 0 || shift > 0 || shear > 0 || elastic > 0; }
  void validate() const;
  template <class V>
  void fields(V& v) {
    v("rotate", rotate, "maximum rotation in degrees");
    v("scale", scale, "maximum relative zoom (0.1 = +-10 %)");
    v("shift", shift, "maximum translation in pixels");
    v("shear", shear, "maximum shear (slant) in degrees");
    v("elastic", elastic, "maximum elastic displacement in pixels (0 = off)");
    v("elastic_sigma", elastic_sigma, "smoothness of the elastic field in pixels");
  }
};

/// images (B, C, H, W) float -> a random view of each, same shape, device and dtype.
at::Tensor augment_images(const at::Tensor& images, const AugmentOptions& options);

/// The warp behind augment_images: out(p) = images(A p + t + d(p)) with bilinear sampling, where theta (B, 2, 3)
/// holds [A | t] in pixel units about the image centre (x right, y down) and displacement (B, 2, H, W), optional,
/// adds d(p) in pixels (channel 0 along x, 1 along y). Exposed for tests.
at::Tensor warp_images(const at::Tensor& images, const at::Tensor& theta, const at::Tensor& displacement = {});

/// Each image sheared upright and centred by its intensity moments (the classic deskewing of MNIST: x shifts by
/// alpha (y - my) with alpha = cov(x, y) / var(y)), so that slant and position stop dominating pixel distances:
/// images (B, C, H, W) -> same shape. An empty image comes back unchanged.
at::Tensor deskew_images(const at::Tensor& images);

/// The k nearest other images of every image by Euclidean distance of their pixels, measured on the leading
/// `dims` principal components (a cheap, close stand-in for the full pixel distance; dims >= C*H*W is exact):
/// images (N, C, H, W) -> (N, k) int64 indices, nearest first, never the image itself.
/// On MNIST a pixel neighbour shows the same digit about 97 % of the time, without a label being read: pairs of
/// neighbours are the second views of the tokenizer's unsupervised objective (as in SCAN, Van Gansbeke et al. 2020).
/// Rows [begin, end) only (end < 0: to the last), so that data-parallel ranks can share the search; `chunk` queries
/// at a time.
at::Tensor pixel_neighbours(const at::Tensor& images, int64_t k, int64_t dims = 64, int64_t chunk = 256,
                            int64_t begin = 0, int64_t end = -1);

}  // namespace vlm
