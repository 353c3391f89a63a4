#include "vlm/eval/grader.h"

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

at::Tensor Grader::predict(const at::Tensor& items) const { return probabilities(items).argmax(1); }

namespace {

class ClassifierGrader : public Grader {
 public:
  explicit ClassifierGrader(ImageClassifier model) : model_(std::move(model)) { model_->eval(); }
  at::Tensor probabilities(const at::Tensor& items) const override {
    return classifier_probabilities(model_, items, 64).to(at::kCPU);
  }
  int64_t num_classes() const override { return model_->options.num_classes(); }

 private:
  mutable ImageClassifier model_;
};

class FunctionGrader : public Grader {
 public:
  FunctionGrader(std::function<at::Tensor(const at::Tensor&)> classes, int64_t n) : classes_(std::move(classes)), n_(n) {}
  at::Tensor probabilities(const at::Tensor& items) const override {
    auto c = classes_(items).to(at::kCPU, at::kLong);
    VLM_CHECK(c.dim() == 1 && c.size(0) == items.size(0), "function_grader: expected one class per item, got ",
              c.sizes(), " for ", items.size(0), " items");
    VLM_CHECK(c.numel() == 0 || (c.min().item<int64_t>() >= 0 && c.max().item<int64_t>() < n_),
              "function_grader: a class outside [0, ", n_, ")");
    return at::one_hot(c, n_).to(at::kFloat);
  }
  int64_t num_classes() const override { return n_; }

 private:
  std::function<at::Tensor(const at::Tensor&)> classes_;
  int64_t n_;
};

}  // namespace

std::shared_ptr<const Grader> classifier_grader(ImageClassifier classifier) {
  return std::make_shared<ClassifierGrader>(std::move(classifier));
}

std::shared_ptr<const Grader> load_classifier_grader(const std::string& path, c10::Device device) {
  return classifier_grader(load_image_classifier(path, device));
}

std::shared_ptr<const Grader> function_grader(std::function<at::Tensor(const at::Tensor&)> classes,
                                              int64_t num_classes) {
  VLM_CHECK(classes && num_classes > 0, "function_grader: a function and a positive number of classes are needed");
  return std::make_shared<FunctionGrader>(std::move(classes), num_classes);
}

}  // namespace vlm
