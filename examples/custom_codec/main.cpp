// Trains and evaluates a GPT on MNIST written with a codec the library does not know (downsample_codec.h): the
// proof that vlm::TokenCodec and vlm::SequenceFormat are enough to add a modality. Everything else is the library's:
// the codec checkpoint goes through vlm::load_codec's registry, the lines through a format defined here as data, the
// GPT through vlm::GPTTrainer, the figures through vlm::run_evaluation (graded by a CNN on pixels).
//
//   custom_codec --data_dir=data/mnist --out_dir=runs/custom_codec            (docs/architecture.md, "Adding a modality")
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../common.h"
#include "downsample_codec.h"
#include "vlm/core/check.h"
#include "vlm/core/run_lock.h"
#include "vlm/data/mnist.h"
#include "vlm/data/records.h"
#include "vlm/data/token_dataset.h"
#include "vlm/eval/evaluator.h"
#include "vlm/train/classifier_trainer.h"
#include "vlm/train/gpt_presets.h"
#include "vlm/train/gpt_trainer.h"


int main(int argc, char** argv) {
  return vlm::examples::run_main("custom_codec", [&] {
    vlm::examples::CommonOptions common;
    std::string out_dir = "runs/custom_codec";
    int64_t grid = 4, limit_train = 0, limit_test = 0, clf_epochs = 1;
    vlm::GPTOptions model;
    vlm::GPTTrainOptions train;
    vlm::apply_cpu_preset(model, train);
    train.max_iters = train.lr_decay_iters = 1500;
    vlm::EvaluatorOptions eval;
    eval.samples_per_class = 20;
    eval.naive_prompts = 0;
    vlm::Flags flags("custom_codec", "Train and evaluate a GPT on MNIST through a codec defined in this example.");
    vlm::examples::add_common_flags(flags, common);
    flags.add("out_dir", &out_dir, "codec checkpoint, format, GPT and evaluation go here");
    flags.add("grid", &grid, "blocks per side (4: 16 letters per image)");
    flags.add("limit_train", &limit_train, "first N training-file images (0 = all)");
    flags.add("limit_test", &limit_test, "first N test images (0 = all)");
    flags.add("clf_epochs", &clf_epochs, "epochs of the reference CNN that grades generated images");
    vlm::add_option_flags(flags, model, "gpt.");
    vlm::add_option_flags(flags, train, "gpt.");
    vlm::add_option_flags(flags, eval, "eval.");
    if (!flags.parse(argc, argv)) return 0;
    vlm::examples::start(flags, common);
    const auto device = vlm::resolve_device(common.device);
    std::filesystem::create_directories(out_dir);
    vlm::RunLock lock(out_dir);

    // The codec: saved, then loaded back through the library's registry like any codec.
    const std::string codec_path = out_dir + "/codec.pt";
    custom::DownsampleCodec(28, grid).save(codec_path);
    std::unique_ptr<vlm::TokenCodec> codec = vlm::load_codec(codec_path, device);

    // The format: the codec's field (its alphabet and length), the digits, the seed's two templates. 16 letters make
    // lines of 33 characters, so the block grows to fit.
    const vlm::SequenceFormat format(
        {codec->field("image"), vlm::FieldSpec::label_field("number", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"})},
        {"image:{image}, number:{number}.", "number:{number}, image:{image}."},
        std::max<int64_t>(model.block_size(), 8 + 16 + codec->length()));
    model.block_size(format.block_size());
    format.save(out_dir + "/format.json");

    auto mnist = vlm::load_mnist(common.data_dir, limit_train, limit_test);
    auto split = vlm::split_train_validation(mnist.train);
    fmt::print("{} letters of \"{}\" per image, e.g. {} for the first test image (a {})\n", codec->length(),
               codec->alphabet(), codec->encode(mnist.test.images.narrow(0, 0, 1))[0],
               mnist.test.labels[0].item<int64_t>());

    train.out_dir = out_dir + "/gpt";
    train.seed = common.seed;
    vlm::GPTTrainer trainer(model, train, vlm::TokenDataset::build(format, vlm::records_of(format, *codec, split.train, 1)),
                            vlm::TokenDataset::build(format, vlm::records_of(format, *codec, split.validation, 2)), device);
    trainer.train();

    // The grader: the reference CNN on pixels.
    vlm::seed_everything(common.seed);
    vlm::ClassifierTrainOptions co;
    co.max_epochs = clf_epochs;
    vlm::ImageClassifier cnn;
    vlm::ClassifierTrainer(cnn, co, split.train, split.validation, device).train();

    vlm::EvaluationInputs in;
    in.model = trainer.model();
    in.tokenizer = vlm::CharTokenizer::for_format(format);
    in.format = format;
    in.model_path = trainer.checkpoint_path();
    in.test_records = vlm::records_of(format, *codec, mnist.test, 3);
    in.test_items = mnist.test.images;
    in.codec = codec.get();
    in.grader = vlm::classifier_grader(cnn);
    eval.out_dir = out_dir + "/eval";
    eval.seed = common.seed;
    auto summary = vlm::run_evaluation(in, eval);
    fmt::print("custom codec: exact test accuracy {:.4f} on {} images, graded generation {:.4f}, CNN on the codec's "
               "reconstructions {:.4f}\n",
               summary["classification_exact"]["accuracy"].get<double>(), in.test_records.size(),
               summary["generation"]["graded_accuracy"].get<double>(),
               summary["reference_classifier"]["accuracy_codec_reconstructions"].get<double>());
    return 0;
  });
}
