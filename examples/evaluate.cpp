// Evaluates a trained GPT: exact and sampled classification (with speed versus the seed's naive loop), accuracy over
// a series of checkpoints, constrained and unconstrained generation graded by the reference classifier, and the
// figures, all into --out_dir with a summary.json. Thin driver over vlm::run_evaluation; data-parallel when started by
// a launcher.
#include <sstream>
#include <unordered_set>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "vlm/core/check.h"
#include "vlm/data/mnist.h"
#include "vlm/data/records.h"
#include "vlm/eval/evaluator.h"
#include "vlm/models/image_classifier.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_codec.h"
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
    flags.add("tokenizer", &tokenizer, "codec checkpoint (any registered kind): encodes test images, decodes generations");
    flags.add("classifier", &classifier, "reference classifier checkpoint (examples/train_classifier) for grading");
    flags.add("test_text", &test_text, "classify the lines of this file (the model's format) instead of --data_dir's test set");
    flags.add("train_text", &train_text, "token text file of the GPT's training set (for memorisation)");
    flags.add("limit_test", &limit_test, "use only the first N test examples (0 = all)");
    vlm::add_option_flags(flags, eo);
    if (!flags.parse(argc, argv)) return 0;
    VLM_CHECK(!gpt.empty(), "--gpt=CHECKPOINT is required (a GPT checkpoint written by train_gpt)");
    eo.seed = common.seed;
    // Under a launcher the passes over the test set are sharded across the ranks, and rank 0 alone generates and
    // writes (vlm/eval/evaluator.h), with all the cores again.
    const int all_threads = common.threads;
    auto [runtime, device, group] = vlm::examples::start_rank(flags, common);

    VLM_CHECK(limit_test >= 0, "--limit_test must be >= 0 (0 = all), got ", limit_test);
    auto loaded = vlm::load_gpt_checkpoint(gpt, device);
    vlm::EvaluationInputs in;
    in.model = loaded.model;
    in.tokenizer = loaded.tokenizer;
    in.format = loaded.format;
    in.model_path = gpt;
    in.series = split_list(series);
    const int64_t image = in.format.first_codec_field(), label = in.format.first_label_field();

    std::unique_ptr<vlm::TokenCodec> codec;
    if (!tokenizer.empty()) codec = vlm::load_codec(tokenizer, device);
    in.codec = codec.get();
    if (!classifier.empty()) in.grader = vlm::load_classifier_grader(classifier, device);

    std::unordered_set<std::string> train_strings;
    if (!test_text.empty()) {
      in.test_records = in.format.read(test_text);
    } else {
      VLM_CHECK(codec, "give --test_text=FILE, or --tokenizer=CKPT with --data_dir to tokenize the test set");
      VLM_CHECK(in.format.num_fields() == 2 && image >= 0 && label >= 0,
                "--tokenizer with --data_dir needs a model whose format has one codec and one label field");
      const auto& words = in.format.field(label).words;
      auto mnist = vlm::load_mnist(common.data_dir, 0, limit_test, static_cast<int64_t>(words.size()));
      in.test_items = mnist.test.images;
      in.test_records = vlm::records_of(in.format, *codec, mnist.test, eo.seed, image);
      if (train_text.empty()) {
        auto split = vlm::split_train_validation(mnist.train);
        for (auto& s : codec->encode(split.train.images)) train_strings.insert(std::move(s));
        in.train_strings = &train_strings;
      }
    }
    if (limit_test > 0 && static_cast<int64_t>(in.test_records.size()) > limit_test) {
      in.test_records.resize(limit_test);
      if (in.test_items.defined()) in.test_items = in.test_items.narrow(0, 0, limit_test);
    }
    if (!train_text.empty()) {
      for (const auto& r : in.format.read(train_text)) train_strings.insert(r.values[image]);
      in.train_strings = &train_strings;
    }
    in.group = &group;
    in.threads_alone = all_threads;
    auto summary = vlm::run_evaluation(in, eo);
    if (group.is_main()) fmt::print("wrote {}/summary.json\n", eo.out_dir);
    return 0;
  });
}
