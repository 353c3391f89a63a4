// Trains the GPT on text-image sequences: from token text files in the seed's format (--train_text, --val_text), or
// from a tokenizer checkpoint plus MNIST (--tokenizer, --data_dir). nanoGPT's train.py, with typed flags.
//
//   train_gpt --preset=cpu --train_text=../shared/seed-tokens/train.txt --val_text=../shared/seed-tokens/valid.txt
//   train_gpt --preset=cpu --tokenizer=runs/vqvae/vqvae.pt --data_dir=data/mnist --out_dir=runs/gpt-own
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "mnist_common.h"
#include "vlm/core/run_lock.h"
#include "vlm/core/check.h"
#include "vlm/data/mnist.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequences.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/train/gpt_presets.h"
#include "vlm/train/gpt_trainer.h"

namespace {

std::vector<int64_t> labels_of(const vlm::LabeledImages& d) {
  auto l = d.labels.contiguous();
  return std::vector<int64_t>(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
}

}  // namespace

int main(int argc, char** argv) {
  return vlm::examples::run_main("train_gpt", [&] {
    vlm::examples::CommonOptions common;
    vlm::GPTOptions model;
    vlm::GPTTrainOptions train;
    std::string train_text, val_text, tokenizer_ckpt, image_alphabet = vlm::kSeedImageAlphabet, write_text_dir;

    vlm::Flags flags("train_gpt", "Train the GPT on text-image sequences (nanoGPT's train.py).");
    flags.add("train_text", &train_text, "training sequences in the seed's text format (one per line)");
    flags.add("val_text", &val_text, "validation sequences in the seed's text format");
    flags.add("tokenizer", &tokenizer_ckpt, "tokenizer (VQ-VAE) checkpoint: tokenize MNIST from --data_dir instead");
    flags.add("write_text", &write_text_dir, "with --tokenizer: also write train.txt and valid.txt to this directory");
    flags.add("image_alphabet", &image_alphabet, "letters of the image tokens (with --train_text)");
    vlm::examples::add_common_flags(flags, common);
    vlm::add_option_flags(flags, model);
    vlm::add_option_flags(flags, train);
    vlm::apply_seed_preset(model, train);  // defaults = the seed
    flags.add_preset("seed", [&] { vlm::apply_seed_preset(model, train); }, "nanoGPT's train_mnist_vlm config");
    flags.add_preset("cpu", [&] { vlm::apply_cpu_preset(model, train); }, "smallest and fastest measured (docs/lm_presets.md)");
    if (!flags.parse(argc, argv)) return 0;
    vlm::examples::start(flags, common);
    const auto device = vlm::resolve_device(common.device);
    train.seed = common.seed;
    vlm::RunLock lock(train.out_dir);  // one writer per output directory

    std::vector<vlm::Sequence> train_set, val_set;
    if (!tokenizer_ckpt.empty()) {
      VLM_CHECK(train_text.empty() && val_text.empty(), "give either --tokenizer (+ --data_dir) or --train_text/--val_text");
      auto codec = vlm::ImageTokenCodec::load(tokenizer_ckpt);
      image_alphabet = codec.alphabet();
      auto split = vlm::split_train_validation(vlm::load_mnist(common.data_dir).train);
      fmt::print("tokenizing {} + {} MNIST images with '{}'\n", split.train.size(), split.validation.size(), tokenizer_ckpt);
      train_set = vlm::make_sequences(codec.encode_text(split.train.images), labels_of(split.train), train.seed);
      val_set = vlm::make_sequences(codec.encode_text(split.validation.images), labels_of(split.validation),
                                    train.seed + 1);
      if (!write_text_dir.empty()) {
        vlm::write_sequences(write_text_dir + "/train.txt", train_set, model.block_size());
        vlm::write_sequences(write_text_dir + "/valid.txt", val_set, model.block_size());
      }
    } else {
      VLM_CHECK(!train_text.empty() && !val_text.empty(),
                "give --train_text=FILE --val_text=FILE (seed format) or --tokenizer=CKPT --data_dir=DIR");
      train_set = vlm::read_sequences(train_text);
      val_set = vlm::read_sequences(val_text);
    }
    auto tokenizer = vlm::CharTokenizer::for_sequences(image_alphabet);
    vlm::GPTTrainer trainer(model, train, vlm::TokenDataset::build(train_set, tokenizer, model.block_size()),
                            vlm::TokenDataset::build(val_set, tokenizer, model.block_size()), device);
    auto s = trainer.train();
    fmt::print("final: val loss {:.4f} (all targets {:.4f}), val accuracy {:.4f}, best val loss {:.4f}, wall {:.1f} s\n",
               s.last_eval.val_loss, s.last_eval.val_loss_all, s.last_eval.val_accuracy, s.best_val_loss,
               s.wall_seconds);
    return 0;
  });
}
