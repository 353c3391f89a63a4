#pragma once
// The reference classifier's trainer (the shape of vlm/train/trainer.h): Adam with a cosine decay to 5%, one
// validation pass per epoch; with an out_dir, classifier.pt (after the last epoch) and epochs.jsonl.
//
//   ImageClassifier model(ImageClassifierOptions().image_size(28));
//   ClassifierTrainer trainer(model, ClassifierTrainOptions{}, split.train, split.validation, device);
//   ClassifierTrainResult r = trainer.train();
#include <cstdint>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/core/options.h"
#include "vlm/data/labeled_images.h"
#include "vlm/models/image_classifier.h"
#include "vlm/train/trainer.h"

namespace vlm {

struct ClassifierTrainOptions {
  int64_t max_epochs = 3;
  int64_t batch_size = 128;
  double learning_rate = 2e-3;  ///< Adam, decayed by cosine to 5% over the run
  double weight_decay = 0.0;
  bool quiet = false;           ///< no progress line and no line per epoch
  /// Where the trained model (classifier.pt) and one line per epoch (epochs.jsonl) are written; empty = in memory,
  /// nothing written (as the other trainers' out_dir).
  std::string out_dir;

  void validate() const;
  template <class V>
  void fields(V& v) {
    v("max_epochs", max_epochs, "training epochs");
    v("batch_size", batch_size, "images per step");
    v("learning_rate", learning_rate, "Adam learning rate (cosine decay to 5%)");
    v("weight_decay", weight_decay, "Adam weight decay");
    v("quiet", quiet, "no progress and epoch lines", FieldKind::kRunControl);
    v("out_dir", out_dir, "classifier.pt and epochs.jsonl (empty: nothing written)", FieldKind::kRunControl);
  }
};

struct ClassifierEpochLog {
  int64_t epoch = 0;  ///< 1-based
  double train_loss = 0, validation_accuracy = 0, seconds = 0;
  nlohmann::json to_json() const;
};

struct ClassifierTrainResult : TrainResult {};  // steps: epochs; val_accuracy after the last

class ClassifierTrainer {
 public:
  using Hooks = TrainerHooks<ClassifierEpochLog, ClassifierEpochLog>;

  /// Trains `model` (the caller's module) on `device`, seeded by the caller.
  ClassifierTrainer(ImageClassifier model, ClassifierTrainOptions options, LabeledImages train,
                    LabeledImages validation, c10::Device device = c10::kCPU);
  ClassifierTrainResult train();

  Hooks& hooks() { return hooks_; }
  ImageClassifier& model() { return model_; }
  c10::Device device() const { return device_; }

 private:
  ImageClassifier model_;
  ClassifierTrainOptions opt_;
  LabeledImages train_, val_;
  c10::Device device_;
  Hooks hooks_;
};

}  // namespace vlm
