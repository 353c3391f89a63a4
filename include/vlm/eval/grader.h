#pragma once
// A grader: a reference model, independent of the GPT, that says which class an item shows. It grades generation
// (does a drawn "red 7" show a red 7?) and bounds what the codec allows (the grader on real items and on their round
// trips). The reference CNN is the library's; a modality of its own brings any function of its items.
//
//   std::shared_ptr<const vlm::Grader> g = vlm::load_classifier_grader("runs/mnist/classifier/classifier.pt");
//   at::Tensor p = g->probabilities(images);                          // (N, C)
//   auto slope = vlm::function_grader([](const at::Tensor& s) { return classes_of(s); }, 3);
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "vlm/models/image_classifier.h"

namespace vlm {

class Grader {
 public:
  virtual ~Grader() = default;
  /// items (N, ...) as the codec decodes them -> (N, num_classes()) probabilities, on the CPU.
  virtual at::Tensor probabilities(const at::Tensor& items) const = 0;
  virtual int64_t num_classes() const = 0;
  /// The most probable class of each item (N) int64.
  at::Tensor predict(const at::Tensor& items) const;
};

/// The reference CNN (vlm/models/image_classifier.h) as a Grader, in chunks of 64 items (its activations for 768
/// images at once made it 4x slower an image here).
std::shared_ptr<const Grader> classifier_grader(ImageClassifier classifier);
/// Loads a reference classifier checkpoint (a run's classifier/classifier.pt) as a Grader on `device`.
std::shared_ptr<const Grader> load_classifier_grader(const std::string& path, c10::Device device = c10::kCPU);
/// A function items (N, ...) -> classes (N) int64 in [0, num_classes) as a Grader (one-hot probabilities).
std::shared_ptr<const Grader> function_grader(std::function<at::Tensor(const at::Tensor&)> classes,
                                              int64_t num_classes);

}  // namespace vlm
