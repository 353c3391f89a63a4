// A project that uses an installed (or build-tree) vlm through find_package and the umbrella header only: it
// tokenizes a few images, trains a tiny GPT on their text for a few steps, samples an image string and classifies.
#include <cstdio>

#include <ATen/ATen.h>

#include "vlm/vlm.h"

int main() {
  try {
    vlm::RuntimeOptions ro;
    ro.threads = 1;
    vlm::init_runtime(ro);

    // Images -> letters with an (untrained) tokenizer; the letters of equal images are equal.
    auto images = at::rand({40, 1, 28, 28});
    vlm::ImageTokenCodec codec(vlm::VQVAE(vlm::VQVAEOptions::preset("mlp")), vlm::kDefaultImageAlphabet);
    auto strings = codec.encode_text(images);
    if (strings.size() != 40 || strings[0].size() != 8 || codec.encode_text_one(images[0]) != strings[0]) return 1;

    // Letters + labels -> the seed's format -> a few steps of a tiny GPT; the loss must drop.
    const vlm::SequenceFormat format = vlm::SequenceFormat::seed(codec.alphabet(), codec.length());
    std::vector<std::string> labels;
    for (int64_t i = 0; i < 40; ++i) labels.push_back(std::to_string(i % 10));
    auto records = vlm::make_records(format, {strings, labels}, 1);
    auto data = vlm::TokenDataset::build(format, records);
    const auto& tokenizer = data.tokenizer;
    vlm::GPTTrainOptions train;
    train.out_dir = "vlm_consumer_out";
    train.max_iters = 30;
    train.lr_decay_iters = 30;
    train.warmup_iters = 2;
    train.batch_size = 16;
    train.learning_rate = 1e-2;
    train.eval_interval = 0;
    train.eval_iters = 1;
    train.eval_classify = 0;
    train.quiet = true;
    vlm::GPTTrainer trainer(vlm::GPTOptions().n_layer(1).n_head(2).n_embd(32), train, data, data);
    const double before = trainer.evaluate().train_loss;
    const auto summary = trainer.train();
    if (!(summary.last_eval.train_loss < before)) return 1;

    // Sample an image string for the digit 3 constrained to the format, then classify the training strings.
    vlm::Sampler sampler(trainer.model(), tokenizer, vlm::SamplerOptions().temperature(0.8).seed(1));
    auto drawn = sampler.complete({"number:3, image:"}, &format)[0];  // "ABCDEFGH."
    auto decoded = codec.decode({drawn.substr(0, 8)})[0];
    auto classified = vlm::classify_exact(trainer.model(), tokenizer, format, records);
    std::printf("vlm consumer OK: loss %.3f -> %.3f, drew \"%s\" (%lldx%lld), classified %zu strings\n", before,
                summary.last_eval.train_loss, drawn.c_str(), static_cast<long long>(decoded.size(1)),
                static_cast<long long>(decoded.size(2)), classified.predicted.size());
    return drawn.size() == 9 && decoded.size(1) == 28 && classified.predicted.size() == 40 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vlm_consumer: error: %s\n", e.what());
    return 1;
  }
}
