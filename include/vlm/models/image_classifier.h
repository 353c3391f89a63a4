#pragma once
// The reference classifier: a small CNN on real pixels (C x S x S, any number of classes) that grades generated
// images: MNIST's digits, Fashion-MNIST's items, Colored MNIST's 40 colour-digit pairs. It is trained by a
// ClassifierTrainer (vlm/train/classifier_trainer.h; >= 0.99 on MNIST test) and its checkpoint (kind "classifier")
// is reused.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/core/options.h"
#include "vlm/data/mnist.h"

namespace vlm {

struct ImageClassifierOptions {
  ImageClassifierOptions() = default;
  TORCH_ARG(int64_t, image_size) = 28;  ///< square images
  TORCH_ARG(int64_t, image_channels) = 1;
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, channels) = 32;    ///< first conv width; the second is twice this
  TORCH_ARG(int64_t, hidden) = 128;
  TORCH_ARG(double, dropout) = 0.25;

 public:
  template <class V>
  void fields(V& v) {
    v("image_size", image_size(), "height = width of the images", FieldKind::kDerived);
    v("image_channels", image_channels(), "channels of the images", FieldKind::kDerived);
    v("num_classes", num_classes(), "classes", FieldKind::kDerived);
    v("channels", channels(), "first conv width (the second has twice)");
    v("hidden", hidden(), "hidden units of the fully connected layer");
    v("dropout", dropout(), "dropout before the output layer");
  }
};

class ImageClassifierImpl : public torch::nn::Cloneable<ImageClassifierImpl> {
 public:
  explicit ImageClassifierImpl(ImageClassifierOptions options = {});
  void reset() override;
  /// images (B,C,S,S) in [0,1] -> logits (B, num_classes)
  at::Tensor forward(const at::Tensor& images);

  ImageClassifierOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(ImageClassifier);

/// Predicted class probabilities (N, num_classes) for images (N,C,S,S) in [0,1], batched, eval mode, no grad.
at::Tensor classifier_probabilities(ImageClassifier& model, const at::Tensor& images, int64_t batch_size = 1000);

/// Fraction of images whose argmax equals the label.
double classifier_accuracy(ImageClassifier& model, const LabeledImages& data);

inline constexpr int64_t kImageClassifierVersion = 1;
void save_image_classifier(const std::string& path, ImageClassifier& model, const nlohmann::json& extra_meta = {});
ImageClassifier load_image_classifier(const std::string& path, const c10::Device& device);

}  // namespace vlm
