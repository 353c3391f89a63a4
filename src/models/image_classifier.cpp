#include "vlm/models/image_classifier.h"

#include <ATen/ATen.h>
#include <torch/nn/functional.h>

#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"

namespace vlm {

namespace F = torch::nn::functional;

ImageClassifierImpl::ImageClassifierImpl(ImageClassifierOptions options_) : options(std::move(options_)) { reset(); }

void ImageClassifierImpl::reset() {
  VLM_CHECK(options.image_size() % 4 == 0, "ImageClassifier: image_size must be a multiple of 4, got ",
            options.image_size());
  const int64_t c = options.channels(), s = options.image_size() / 4;
  conv1 = register_module("conv1",
                          torch::nn::Conv2d(torch::nn::Conv2dOptions(options.image_channels(), c, 5).padding(2)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, 2 * c, 5).padding(2)));
  fc1 = register_module("fc1", torch::nn::Linear(2 * c * s * s, options.hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.num_classes()));
  drop = register_module("drop", torch::nn::Dropout(options.dropout()));
}

at::Tensor ImageClassifierImpl::forward(const at::Tensor& images) {
  auto x = F::max_pool2d(at::relu(conv1(images)), F::MaxPool2dFuncOptions(2));  // (B, c, S/2, S/2)
  x = F::max_pool2d(at::relu(conv2(x)), F::MaxPool2dFuncOptions(2));            // (B, 2c, S/4, S/4)
  x = drop(at::relu(fc1(x.flatten(1))));                                        // (B, hidden)
  return fc2(x);                                                                // (B, classes)
}

at::Tensor classifier_probabilities(ImageClassifier& model, const at::Tensor& images, int64_t batch_size) {
  VLM_CHECK(images.dim() == 4 && images.size(1) == model->options.image_channels(),
            "classifier_probabilities: expected images (N,", model->options.image_channels(), ",H,W), got ",
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

double classifier_accuracy(ImageClassifier& model, const LabeledImages& data) {
  auto pred = classifier_probabilities(model, data.images).argmax(-1);
  return pred.eq(data.labels).to(at::kDouble).mean().item<double>();
}

void save_image_classifier(const std::string& path, ImageClassifier& model, const nlohmann::json& extra_meta) {
  nlohmann::json meta = {{"options", options_to_json(model->options)}};
  if (!extra_meta.is_null()) meta["info"] = extra_meta;
  CheckpointWriter("classifier", kImageClassifierVersion, meta).add_module("model", *model).save(path);
}

ImageClassifier load_image_classifier(const std::string& path, const c10::Device& device) {
  CheckpointReader r(path, "classifier", kImageClassifierVersion);
  VLM_CHECK(r.meta().contains("options"), "'", path, "' is a classifier checkpoint without its options");
  ImageClassifier model(options_from_json<ImageClassifierOptions>(r.meta()["options"], path + ": options"));
  r.load_module("model", *model);
  model->to(device);
  model->eval();
  return model;
}

}  // namespace vlm
