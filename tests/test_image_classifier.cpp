#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "test_helpers.h"
#include "vlm/core/runtime.h"
#include "vlm/models/image_classifier.h"
#include "vlm/train/classifier_trainer.h"

namespace {
// Two easily separable synthetic classes: a bright left half versus a bright right half, plus noise.
vlm::LabeledImages halves(int64_t n) {
  auto labels = at::arange(n) % 2;
  auto images = at::rand({n, 1, 8, 8}) * 0.3;
  auto left = images.narrow(3, 0, 4), right = images.narrow(3, 4, 4);
  auto is1 = labels.eq(1).view({n, 1, 1, 1}).to(at::kFloat);
  left.add_((1 - is1) * 0.7);
  right.add_(is1 * 0.7);
  return {images, labels};
}
}  // namespace

TEST_CASE("The reference classifier learns a separable toy problem", "[classifier]") {
  vlm::seed_everything(3);
  vlm::ImageClassifier model(vlm::ImageClassifierOptions().image_size(8).num_classes(2).channels(4).hidden(16));
  auto data = halves(256);
  double before = vlm::classifier_accuracy(model, data);
  vlm::ClassifierTrainOptions o;
  o.max_epochs = 4;
  o.batch_size = 32;
  o.quiet = true;
  std::vector<double> epoch_accuracy;
  vlm::ClassifierTrainer trainer(model, o, data, halves(64));
  trainer.hooks().on_eval = [&](const vlm::ClassifierEpochLog& e) { epoch_accuracy.push_back(e.validation_accuracy); };
  auto r = trainer.train();
  REQUIRE(epoch_accuracy.size() == 4);  // the hook saw every epoch, the last one being the result's
  CHECK(epoch_accuracy.back() == r.val_accuracy);
  CHECK(r.val_accuracy > 0.95);
  CHECK(r.val_accuracy > before);
}

TEST_CASE("The classifier trainer writes its model and epochs only with an out_dir, as the other trainers", "[classifier]") {
  vlm::testing::TempDir dir;
  vlm::seed_everything(4);
  vlm::ImageClassifier model(vlm::ImageClassifierOptions().image_size(8).num_classes(2).channels(4).hidden(16));
  vlm::ClassifierTrainOptions o;
  o.max_epochs = 2, o.batch_size = 32, o.quiet = true, o.out_dir = dir.file("clf");
  std::string written;
  vlm::ClassifierTrainer trainer(model, o, halves(128), halves(32));
  trainer.hooks().on_checkpoint = [&](int64_t, const std::string& path) { written = path; };
  auto r = trainer.train();
  CHECK(written == dir.file("clf") + "/classifier.pt");
  auto loaded = vlm::load_image_classifier(written, at::kCPU);
  auto x = at::rand({6, 1, 8, 8});
  CHECK(at::allclose(vlm::classifier_probabilities(model, x), vlm::classifier_probabilities(loaded, x)));
  const auto lines = vlm::testing::read_text(dir.file("clf") + "/epochs.jsonl");
  CHECK(std::count(lines.begin(), lines.end(), '\n') == 2);
  CHECK(lines.find("\"validation_accuracy\":" + nlohmann::json(r.val_accuracy).dump()) != std::string::npos);
  CHECK(r.steps == 2);
  CHECK(std::isnan(r.val_loss));  // the classifier measures no validation loss
  // Without one, nothing: no checkpoint is written, so none is announced.
  o.out_dir = "";
  written.clear();
  vlm::ClassifierTrainer in_memory(model, o, halves(64), halves(16));
  in_memory.hooks().on_checkpoint = [&](int64_t, const std::string& path) { written = path; };
  in_memory.train();
  CHECK(written.empty());
}

TEST_CASE("The reference classifier survives save and load with identical outputs", "[classifier]") {
  vlm::testing::TempDir dir;
  vlm::ImageClassifier model(vlm::ImageClassifierOptions().image_size(8).num_classes(3).channels(2).hidden(8));
  auto x = at::rand({5, 1, 8, 8});
  vlm::save_image_classifier(dir.file("c.pt"), model);
  auto loaded = vlm::load_image_classifier(dir.file("c.pt"), at::kCPU);
  CHECK(loaded->options.num_classes() == 3);
  CHECK(at::allclose(vlm::classifier_probabilities(model, x), vlm::classifier_probabilities(loaded, x)));
  CHECK_THROWS_WITH(vlm::classifier_probabilities(loaded, at::rand({1, 1, 9, 9})), Catch::Contains("8x8"));
}
