#pragma once
// The reference classifier: a small CNN on real pixels that grades generated digits. It is trained by a
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

struct DigitClassifierOptions {
  DigitClassifierOptions() = default;
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

class DigitClassifierImpl : public torch::nn::Cloneable<DigitClassifierImpl> {
 public:
  explicit DigitClassifierImpl(DigitClassifierOptions options = {});
  void reset() override;
  /// images (B,C,S,S) in [0,1] -> logits (B, num_classes)
  at::Tensor forward(const at::Tensor& images);

  DigitClassifierOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(DigitClassifier);

/// Predicted class probabilities (N, num_classes) for images (N,C,S,S) in [0,1], batched, eval mode, no grad.
at::Tensor classifier_probabilities(DigitClassifier& model, const at::Tensor& images, int64_t batch_size = 1000);

/// Fraction of images whose argmax equals the label.
double classifier_accuracy(DigitClassifier& model, const LabeledImages& data);

inline constexpr int64_t kDigitClassifierVersion = 1;
void save_digit_classifier(const std::string& path, DigitClassifier& model, const nlohmann::json& extra_meta = {});
DigitClassifier load_digit_classifier(const std::string& path, const c10::Device& device);

}  // namespace vlm
