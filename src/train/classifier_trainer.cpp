#include "vlm/train/classifier_trainer.h"

#include <chrono>
#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/progress.h"

namespace vlm {

void ClassifierTrainOptions::validate() const {
  VLM_CHECK(max_epochs > 0, "--max_epochs must be positive, got ", max_epochs);
  VLM_CHECK(batch_size > 0, "--batch_size must be positive, got ", batch_size);
  VLM_CHECK(learning_rate > 0 && weight_decay >= 0, "--learning_rate must be positive and --weight_decay >= 0");
}

nlohmann::json ClassifierEpochLog::to_json() const {
  return {{"epoch", epoch}, {"train_loss", train_loss}, {"validation_accuracy", validation_accuracy},
          {"seconds", seconds}};
}

ClassifierTrainer::ClassifierTrainer(ImageClassifier model, ClassifierTrainOptions options, LabeledImages train,
                                     LabeledImages validation, c10::Device device)
    : model_(std::move(model)), opt_(std::move(options)), train_(std::move(train)), val_(std::move(validation)),
      device_(device) {
  opt_.validate();
  VLM_CHECK(train_.size() > 0, "ClassifierTrainer: no training images");
  model_->to(device_);
}

ClassifierTrainResult ClassifierTrainer::train() {
  using Clock = std::chrono::steady_clock;
  torch::optim::Adam opt(model_->parameters(),
                         torch::optim::AdamOptions(opt_.learning_rate).weight_decay(opt_.weight_decay));
  const int64_t n = train_.size(), steps_per_epoch = (n + opt_.batch_size - 1) / opt_.batch_size;
  const int64_t total = steps_per_epoch * opt_.max_epochs;
  const auto start = Clock::now();
  ClassifierTrainResult result;
  Progress bar("classifier", total, "step", 5.0);  // drawn unless quiet
  int64_t step = 0;
  std::string jsonl;  // epochs.jsonl
  for (int64_t epoch = 1; epoch <= opt_.max_epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    model_->train();
    auto order = at::randperm(n, at::kLong);
    double loss_sum = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      const double lr = opt_.learning_rate * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * step / total)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      auto idx = order.slice(0, b * opt_.batch_size, std::min(n, (b + 1) * opt_.batch_size));
      auto x = train_.images.index_select(0, idx).to(device_), y = train_.labels.index_select(0, idx).to(device_);
      auto loss = at::cross_entropy_loss(model_->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      if (!opt_.quiet) bar.update(step + 1, fmt::format("epoch {} loss {:.4f}", epoch, loss_sum / (b + 1)));
    }
    ClassifierEpochLog log;
    log.epoch = epoch;
    log.train_loss = loss_sum / steps_per_epoch;
    log.validation_accuracy = val_.size() ? classifier_accuracy(model_, val_) : 0.0;
    log.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    result.val_accuracy = log.validation_accuracy;
    result.steps = epoch;
    if (!opt_.quiet)
      fmt::print("epoch {}: train loss {:.4f}, validation accuracy {:.4f}\n", epoch, log.train_loss,
                 log.validation_accuracy);
    jsonl += log.to_json().dump() + "\n";
    if (hooks_.on_log) hooks_.on_log(log);
    if (hooks_.on_eval) hooks_.on_eval(log);
  }
  if (!opt_.quiet) bar.finish();
  model_->eval();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!opt_.out_dir.empty()) {
    ensure_directory(opt_.out_dir);
    const std::string path = opt_.out_dir + "/classifier.pt";
    save_image_classifier(path, model_,
                          result.common_json());
    write_text_atomically(opt_.out_dir + "/epochs.jsonl", jsonl);
    if (hooks_.on_checkpoint) hooks_.on_checkpoint(result.steps, path);
  }
  return result;
}

}  // namespace vlm
