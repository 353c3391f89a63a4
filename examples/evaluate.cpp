// Evaluates a trained GPT: exact and sampled classification (with speed versus the seed's naive loop), accuracy over
// a series of checkpoints, constrained and unconstrained generation graded by the reference classifier, and the
// figures, all into --out_dir with a summary.json. Thin driver over vlm::run_evaluation.
#include <sstream>
#include <unordered_set>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "mnist_common.h"
#include "vlm/core/check.h"
#include "vlm/data/mnist.h"
#include "vlm/eval/evaluator.h"
#include "vlm/models/digit_classifier.h"
#include "vlm/text/sequences.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/models/gpt_checkpoint.h"

namespace {
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  return vlm::examples::run_main("evaluate", [&] {
    vlm::examples::CommonOptions common;
    vlm::EvaluatorOptions eo;
    std::string gpt, series, tokenizer, classifier, test_text, train_text;
    int64_t limit_test = 0;
    vlm::Flags flags("evaluate", "Evaluate a trained GPT: classification, generation, figures and summary.json.");
    vlm::examples::add_common_flags(flags, common);
    flags.add("gpt", &gpt, "GPT checkpoint to evaluate (required)");
    flags.add("series", &series, "comma-separated GPT checkpoints for the accuracy-over-training chart");
    flags.add("tokenizer", &tokenizer, "VQ-VAE tokenizer checkpoint: encodes MNIST test images, decodes generations");
    flags.add("classifier", &classifier, "reference classifier checkpoint (examples/train_classifier) for grading");
    flags.add("test_text", &test_text, "classify the lines of this token text file (seed format) instead of MNIST test");
    flags.add("train_text", &train_text, "token text file of the GPT's training set (for memorisation)");
    flags.add("limit_test", &limit_test, "use only the first N test examples (0 = all)");
    vlm::add_option_flags(flags, eo);
    if (!flags.parse(argc, argv)) return 0;
    VLM_CHECK(!gpt.empty(), "--gpt=CHECKPOINT is required (a GPT checkpoint written by train_gpt)");
    eo.seed = common.seed;
    vlm::examples::start(flags, common);
    auto device = vlm::resolve_device(common.device);

    VLM_CHECK(limit_test >= 0, "--limit_test must be >= 0 (0 = all), got ", limit_test);
    auto loaded = vlm::load_gpt_checkpoint(gpt, device);
    vlm::EvaluationInputs in;
    in.model = loaded.model;
    in.tokenizer = loaded.tokenizer;
    in.model_path = gpt;
    in.series = split_list(series);

    std::unique_ptr<vlm::ImageTokenCodec> codec;
    if (!tokenizer.empty()) codec = std::make_unique<vlm::ImageTokenCodec>(vlm::ImageTokenCodec::load(tokenizer, device));
    in.codec = codec.get();
    if (!classifier.empty()) in.classifier = vlm::load_digit_classifier(classifier, device);

    std::unordered_set<std::string> train_strings;
    if (!test_text.empty()) {
      auto seqs = vlm::read_sequences(test_text);
      std::vector<int64_t> labels;
      for (const auto& s : seqs) in.test_strings.push_back(s.image), labels.push_back(s.label);
      in.test_labels = at::tensor(labels, at::kLong);
    } else {
      VLM_CHECK(codec, "give --test_text=FILE, or --tokenizer=CKPT with --data_dir to tokenize the MNIST test set");
      auto mnist = vlm::load_mnist(common.data_dir, 0, limit_test);
      in.test_images = mnist.test.images;
      in.test_labels = mnist.test.labels;
      in.test_strings = codec->encode_text(mnist.test.images);
      if (train_text.empty()) {
        auto split = vlm::split_train_validation(mnist.train);
        for (auto& s : codec->encode_text(split.train.images)) train_strings.insert(std::move(s));
        in.train_strings = &train_strings;
      }
    }
    if (limit_test > 0 && static_cast<int64_t>(in.test_strings.size()) > limit_test) {
      in.test_strings.resize(limit_test);
      in.test_labels = in.test_labels.narrow(0, 0, limit_test);
    }
    if (!train_text.empty()) {
      for (const auto& s : vlm::read_sequences(train_text)) train_strings.insert(s.image);
      in.train_strings = &train_strings;
    }
    auto summary = vlm::run_evaluation(in, eo);
    fmt::print("wrote {}/summary.json\n", eo.out_dir);
    return 0;
  });
}
