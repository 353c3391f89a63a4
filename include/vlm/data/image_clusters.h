#pragma once
// Clusters of images found without a label: spectral clustering of the pixel-neighbour graph. The unsupervised
// tokenizer's pseudo-captions (VQVAETrainOptions::pseudo_weight) are these clusters, named by their index.
//
//   auto ids = vlm::cluster_images(train.images, vlm::ImageClusterOptions());  // (N) int64 in [0, 50)
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace vlm {

struct ImageClusterOptions {
  int64_t clusters = 50;      ///< K: more than the classes, so that a class's variants keep clusters of their own
  int64_t neighbours = 10;    ///< edges of the graph: each image's k nearest (deskewed) pixel neighbours
  int64_t dims = 64;          ///< principal components of the neighbour search (pixel_neighbours)
  bool deskew = true;         ///< search among deskewed images (deskew_images)
  int64_t embedding = 24;     ///< leading eigenvectors of the graph that k-means clusters
  int64_t iterations = 300;   ///< subspace iterations that find them
  int64_t kmeans_iters = 50;  ///< Lloyd iterations after k-means++ seeding
  void validate() const;
};

/// images (N, C, H, W) -> (N) int64 cluster of each, in [0, clusters). The graph joins each image to its k nearest
/// others (both directions); the embedding is the leading eigenvectors of its normalised adjacency D^-1/2 W D^-1/2
/// (subspace iteration), rows scaled to unit length (Ng, Jordan and Weiss 2001), then k-means. Draws from the default
/// generator (the start of the iteration, k-means++), so a seeded process gets the same clusters every time.
at::Tensor cluster_images(const at::Tensor& images, const ImageClusterOptions& options = {});

/// cluster_images after its neighbour search (which data-parallel ranks share): neighbours (N, k) int64 -> (N).
at::Tensor cluster_graph(const at::Tensor& neighbours, const ImageClusterOptions& options = {});

/// The spectral part alone, for a graph given as each node's out-neighbours (N, k) int64: (N, m) embedding rows.
at::Tensor spectral_embedding(const at::Tensor& neighbours, int64_t m, int64_t iterations);

}  // namespace vlm
