#include "vlm/models/digit_classifier.h"

#include <chrono>
#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/functional.h>
#include <torch/optim/adam.h>

#include "vlm/core/check.h"
#include "vlm/core/progress.h"
#include "vlm/io/checkpoint.h"

namespace vlm {

namespace F = torch::nn::functional;

DigitClassifierImpl::DigitClassifierImpl(DigitClassifierOptions options_) : options(std::move(options_)) { reset(); }

void DigitClassifierImpl::reset() {
  VLM_CHECK(options.image_size() % 4 == 0, "DigitClassifier: image_size must be a multiple of 4, got ",
            options.image_size());
  const int64_t c = options.channels(), s = options.image_size() / 4;
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c, 5).padding(2)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, 2 * c, 5).padding(2)));
  fc1 = register_module("fc1", torch::nn::Linear(2 * c * s * s, options.hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.num_classes()));
  drop = register_module("drop", torch::nn::Dropout(options.dropout()));
}

at::Tensor DigitClassifierImpl::forward(const at::Tensor& images) {
  auto x = F::max_pool2d(at::relu(conv1(images)), F::MaxPool2dFuncOptions(2));  // (B, c, S/2, S/2)
  x = F::max_pool2d(at::relu(conv2(x)), F::MaxPool2dFuncOptions(2));            // (B, 2c, S/4, S/4)
  x = drop(at::relu(fc1(x.flatten(1))));                                        // (B, hidden)
  return fc2(x);                                                                // (B, classes)
}

ClassifierTrainResult train_digit_classifier(DigitClassifier& model, const LabeledImages& train,
                                             const LabeledImages& validation, const ClassifierTrainOptions& o) {
  VLM_CHECK(train.size() > 0 && o.epochs > 0 && o.batch_size > 0, "train_digit_classifier: empty data or bad options");
  auto device = model->parameters().front().device();
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(o.learning_rate).weight_decay(o.weight_decay));
  const int64_t n = train.size(), steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const int64_t total = steps_per_epoch * o.epochs;
  auto start = std::chrono::steady_clock::now();
  ClassifierTrainResult result;
  Progress bar("classifier", total, "step", 5.0);  // drawn only when verbose
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    model->train();
    auto order = at::randperm(n, at::kLong);
    double loss_sum = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      double lr = o.learning_rate * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * step / total)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      auto idx = order.slice(0, b * o.batch_size, std::min(n, (b + 1) * o.batch_size));
      auto x = train.images.index_select(0, idx).to(device), y = train.labels.index_select(0, idx).to(device);
      auto loss = at::cross_entropy_loss(model->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      if (o.verbose) bar.update(step + 1, fmt::format("epoch {} loss {:.4f}", epoch + 1, loss_sum / (b + 1)));
    }
    result.validation_accuracy = validation.size() ? classifier_accuracy(model, validation) : 0.0;
    result.epochs_run = epoch + 1;
    if (o.verbose)
      fmt::print("epoch {}: train loss {:.4f}, validation accuracy {:.4f}\n", epoch + 1, loss_sum / steps_per_epoch,
                 result.validation_accuracy);
  }
  if (o.verbose) bar.finish();
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

at::Tensor classifier_probabilities(DigitClassifier& model, const at::Tensor& images, int64_t batch_size) {
  VLM_CHECK(images.dim() == 4 && images.size(1) == 1, "classifier_probabilities: expected images (N,1,H,W), got ",
            images.sizes());
  VLM_CHECK(images.size(2) == model->options.image_size() && images.size(3) == model->options.image_size(),
            "classifier_probabilities: the classifier expects ", model->options.image_size(), "x",
            model->options.image_size(), " images, got ", images.size(2), "x", images.size(3));
  at::NoGradGuard no_grad;
  bool was_training = model->is_training();
  model->eval();
  auto device = model->parameters().front().device();
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < images.size(0); i += batch_size)
    out.push_back(at::softmax(model->forward(images.slice(0, i, i + batch_size).to(device)), -1).cpu());
  model->train(was_training);
  return out.empty() ? at::empty({0, model->options.num_classes()}) : at::cat(out);
}

double classifier_accuracy(DigitClassifier& model, const LabeledImages& data) {
  auto pred = classifier_probabilities(model, data.images).argmax(-1);
  return pred.eq(data.labels).to(at::kDouble).mean().item<double>();
}

void save_digit_classifier(const std::string& path, DigitClassifier& model, const nlohmann::json& extra_meta) {
  const auto& o = model->options;
  nlohmann::json meta = {{"options",
                          {{"image_size", o.image_size()},
                           {"num_classes", o.num_classes()},
                           {"channels", o.channels()},
                           {"hidden", o.hidden()},
                           {"dropout", o.dropout()}}}};
  if (!extra_meta.is_null()) meta["info"] = extra_meta;
  CheckpointWriter("classifier", kDigitClassifierVersion, meta).add_module("model", *model).save(path);
}

DigitClassifier load_digit_classifier(const std::string& path, const c10::Device& device) {
  CheckpointReader r(path, "classifier", kDigitClassifierVersion);
  const auto& j = r.meta().at("options");
  DigitClassifierOptions o;
  o.image_size(j.at("image_size")).num_classes(j.at("num_classes")).channels(j.at("channels")).hidden(j.at("hidden"));
  o.dropout(j.at("dropout"));
  DigitClassifier model(o);
  r.load_module("model", *model);
  model->to(device);
  model->eval();
  return model;
}

}  // namespace vlm
