#pragma once
// A small MNIST-shaped data set for the tests that run the whole job: each digit d is a bright bar at a
// digit-specific row plus noise, so the pipeline has something learnable without the real MNIST. The training labels
// are written gzip-compressed, so the reader's both paths are exercised.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include <ATen/ATen.h>

#include "vlm/data/idx.h"

namespace vlm::testing {

inline void write_synthetic_mnist(const std::string& dir, int64_t n_train, int64_t n_test) {
  std::filesystem::create_directories(dir);
  auto make = [](int64_t n, uint64_t seed) {
    at::manual_seed(seed);
    auto labels = at::arange(n) % 10;
    auto images = at::rand({n, 1, 28, 28}) * 0.2;
    for (int64_t i = 0; i < n; ++i) {
      int64_t d = labels[i].item<int64_t>();
      images[i][0].narrow(0, 2 + 2 * d, 4).narrow(1, 4, 20).fill_(1.0);
    }
    vlm::IdxArray lab;
    lab.dims = {n};
    for (int64_t i = 0; i < n; ++i) lab.data.push_back(static_cast<uint8_t>(labels[i].item<int64_t>()));
    return std::make_pair(vlm::image_tensor_to_idx(images), lab);
  };
  auto [tri, trl] = make(n_train, 1);
  auto [tei, tel] = make(n_test, 2);
  vlm::write_idx(dir + "/train-images-idx3-ubyte", tri);
  vlm::write_idx(dir + "/train-labels-idx1-ubyte.gz", trl, /*gzip=*/true);
  vlm::write_idx(dir + "/t10k-images-idx3-ubyte", tei);
  vlm::write_idx(dir + "/t10k-labels-idx1-ubyte", tel);
}

}  // namespace vlm::testing
