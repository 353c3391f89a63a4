#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/runtime.h"
#include "vlm/models/digit_classifier.h"
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
  vlm::DigitClassifier model(vlm::DigitClassifierOptions().image_size(8).num_classes(2).channels(4).hidden(16));
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
  CHECK(epoch_accuracy.back() == r.validation_accuracy);
  CHECK(r.validation_accuracy > 0.95);
  CHECK(r.validation_accuracy > before);
}

TEST_CASE("The reference classifier survives save and load with identical outputs", "[classifier]") {
  vlm::testing::TempDir dir;
  vlm::DigitClassifier model(vlm::DigitClassifierOptions().image_size(8).num_classes(3).channels(2).hidden(8));
  auto x = at::rand({5, 1, 8, 8});
  vlm::save_digit_classifier(dir.file("c.pt"), model);
  auto loaded = vlm::load_digit_classifier(dir.file("c.pt"), at::kCPU);
  CHECK(loaded->options.num_classes() == 3);
  CHECK(at::allclose(vlm::classifier_probabilities(model, x), vlm::classifier_probabilities(loaded, x)));
  CHECK_THROWS_WITH(vlm::classifier_probabilities(loaded, at::rand({1, 1, 9, 9})), Catch::Contains("8x8"));
}
