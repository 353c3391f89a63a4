// Trains the reference CNN that grades generated digits (issue: graded generation accuracy). Thin driver.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "vlm/core/run_lock.h"
#include "vlm/core/atomic_file.h"
#include "vlm/data/mnist.h"
#include "vlm/models/image_classifier.h"
#include "vlm/train/classifier_trainer.h"

int main(int argc, char** argv) {
  return vlm::examples::run_main("train_classifier", [&] {
    vlm::examples::CommonOptions common;
    common.thread_pool = "torch";  // its convolutions are ATen kernels, not GEMMs (vlm::ThreadPool)
    vlm::ClassifierTrainOptions train;
    vlm::ImageClassifierOptions model_options;
    std::string out = "runs/classifier/classifier.pt";
    int64_t limit_train = 0, limit_test = 0;
    vlm::Flags flags("train_classifier", "Train the reference digit classifier on real MNIST pixels.");
    vlm::examples::add_common_flags(flags, common);
    flags.add("out", &out, "checkpoint path");
    vlm::add_option_flags(flags, train);
    vlm::add_option_flags(flags, model_options);
    flags.add("limit_train", &limit_train, "use only the first N training images (0 = all)");
    flags.add("limit_test", &limit_test, "use only the first N test images (0 = all)");
    if (!flags.parse(argc, argv)) return 0;
    vlm::examples::start(flags, common);
    auto device = vlm::resolve_device(common.device);

    const auto out_parent = std::filesystem::path(out).parent_path().string();
    vlm::RunLock lock(out_parent.empty() ? "." : out_parent);  // one writer per output directory
    auto mnist = vlm::load_mnist(common.data_dir, limit_train, limit_test);
    auto split = vlm::split_train_validation(mnist.train);
    model_options.image_size(mnist.train.height()).image_channels(mnist.train.channels());
    vlm::ImageClassifier model(model_options);
    auto result = vlm::ClassifierTrainer(model, train, split.train, split.validation, device).train();
    double test_accuracy = vlm::classifier_accuracy(model, mnist.test);
    nlohmann::json info = {{"test_accuracy", test_accuracy},
                           {"validation_accuracy", result.val_accuracy},
                           {"train_seconds", result.seconds},
                           {"config", flags.to_json()}};
    vlm::save_image_classifier(out, model, info);
    vlm::write_text_atomically(out + ".json", info.dump(2) + "\n");
    fmt::print("test accuracy {:.4f} ({} images), validation {:.4f}, trained in {:.1f}s -> {}\n", test_accuracy,
               mnist.test.size(), result.val_accuracy, result.seconds, out);
    return 0;
  });
}
