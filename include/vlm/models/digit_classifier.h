#pragma once
// The reference classifier: a small CNN on real pixels that grades generated digits. It is trained once by
// examples/train_classifier (>= 0.99 on MNIST test) and its checkpoint (kind "classifier") is reused.
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "vlm/data/mnist.h"

namespace vlm {

struct DigitClassifierOptions {
  DigitClassifierOptions() = default;
  TORCH_ARG(int64_t, image_size) = 28;  ///< square images
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, channels) = 32;    ///< first conv width; the second is twice this
  TORCH_ARG(int64_t, hidden) = 128;
  TORCH_ARG(double, dropout) = 0.25;
};

class DigitClassifierImpl : public torch::nn::Cloneable<DigitClassifierImpl> {
 public:
  explicit DigitClassifierImpl(DigitClassifierOptions options = {});
  void reset() override;
  /// images (B,1,S,S) in [0,1] -> logits (B, num_classes)
  at::Tensor forward(const at::Tensor& images);

  DigitClassifierOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(DigitClassifier);

struct ClassifierTrainOptions {
  int64_t epochs = 3;
  int64_t batch_size = 128;
  double learning_rate = 2e-3;  ///< Adam, decayed by cosine to 5% over the run
  double weight_decay = 0.0;
  bool verbose = true;
};

struct ClassifierTrainResult {
  double train_seconds = 0;
  double validation_accuracy = 0;
  int64_t epochs_run = 0;
};

/// Trains in place (the module's device), seeded by the caller; prints one line per epoch when verbose.
ClassifierTrainResult train_digit_classifier(DigitClassifier& model, const LabeledImages& train,
                                             const LabeledImages& validation, const ClassifierTrainOptions& options);

/// Predicted class probabilities (N, num_classes) for images (N,1,S,S) in [0,1], batched, eval mode, no grad.
at::Tensor classifier_probabilities(DigitClassifier& model, const at::Tensor& images, int64_t batch_size = 1000);

/// Fraction of images whose argmax equals the label.
double classifier_accuracy(DigitClassifier& model, const LabeledImages& data);

inline constexpr int64_t kDigitClassifierVersion = 1;
void save_digit_classifier(const std::string& path, DigitClassifier& model, const nlohmann::json& extra_meta = {});
DigitClassifier load_digit_classifier(const std::string& path, const c10::Device& device);

}  // namespace vlm
