// Trains the GPT on the lines of a sequence format (the seed's, or --format=FILE): from token text files
// (--train_text, --val_text), or from a codec checkpoint plus MNIST-shaped data (--tokenizer, --data_dir).
// nanoGPT's train.py, with typed flags.
//
//   train_gpt --preset=cpu --train_text=../shared/seed-tokens/train.txt --val_text=../shared/seed-tokens/valid.txt
//   train_gpt --preset=cpu --tokenizer=runs/vqvae/vqvae.pt --data_dir=data/mnist --out_dir=runs/gpt-own
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "vlm/core/run_lock.h"
#include "vlm/core/check.h"
#include "vlm/data/mnist.h"
#include "vlm/data/records.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_codec.h"
#include "vlm/train/gpt_presets.h"
#include "vlm/train/gpt_trainer.h"

int main(int argc, char** argv) {
  return vlm::examples::run_main("train_gpt", [&] {
    vlm::examples::CommonOptions common;
    vlm::GPTOptions model;
    vlm::GPTTrainOptions train;
    train.out_dir = "runs/gpt";  // the tool writes its checkpoints (the library trains in memory by default)
    std::string train_text, val_text, tokenizer_ckpt, format_file, write_text_dir;

    vlm::Flags flags("train_gpt", "Train the GPT on text-image sequences (nanoGPT's train.py).");
    flags.add("train_text", &train_text, "training lines of the sequence format (one per line)");
    flags.add("val_text", &val_text, "validation lines of the sequence format");
    flags.add("format", &format_file, "sequence format file (JSON, docs/formats.md); default: the seed's");
    flags.add("tokenizer", &tokenizer_ckpt, "codec checkpoint (any registered kind): tokenize --data_dir instead");
    flags.add("write_text", &write_text_dir, "with --tokenizer: also write train.txt and valid.txt to this directory");
    vlm::examples::add_common_flags(flags, common);
    vlm::add_option_flags(flags, model);
    vlm::add_option_flags(flags, train);
    vlm::apply_seed_preset(model, train);  // defaults = the seed
    flags.add_preset("seed", [&] { vlm::apply_seed_preset(model, train); }, "nanoGPT's train_mnist_vlm config");
    flags.add_preset("cpu", [&] { vlm::apply_cpu_preset(model, train); }, "smallest and fastest measured (docs/lm_presets.md)");
    if (!flags.parse(argc, argv)) return 0;
    auto [runtime, device, group] = vlm::examples::start_rank(flags, common);  // data-parallel under a launcher
    train.seed = common.seed;
    std::unique_ptr<vlm::RunLock> lock;
    if (group.is_main()) lock = std::make_unique<vlm::RunLock>(train.out_dir);  // one writer per output directory

    vlm::SequenceFormat format = format_file.empty() ? vlm::SequenceFormat::seed() : vlm::SequenceFormat::load(format_file);
    std::vector<vlm::Record> train_set, val_set;
    if (!tokenizer_ckpt.empty()) {
      VLM_CHECK(train_text.empty() && val_text.empty(), "give either --tokenizer (+ --data_dir) or --train_text/--val_text");
      auto codec = vlm::load_codec(tokenizer_ckpt);
      const int64_t image = format.first_codec_field(), label = format.first_label_field();
      VLM_CHECK(format.num_fields() == 2 && image >= 0 && label >= 0, "--tokenizer needs a format of one codec field ",
                "and one label field");
      if (format_file.empty()) {  // the seed's templates with the codec's letters
        const auto& l = format.field(label);
        format = vlm::SequenceFormat::image_and_label(l.name, l.words, codec->alphabet(), codec->length());
      }
      auto split = vlm::split_train_validation(vlm::load_mnist(common.data_dir, 0, 0, format.field(label).num_classes()).train);
      fmt::print("tokenizing {} + {} images with '{}'\n", split.train.size(), split.validation.size(), tokenizer_ckpt);
      format = format.with_block_size(model.block_size());
      train_set = vlm::records_of(format, *codec, split.train, train.seed);
      val_set = vlm::records_of(format, *codec, split.validation, train.seed + 1);
      if (!write_text_dir.empty()) {
        format.write(write_text_dir + "/train.txt", train_set);
        format.write(write_text_dir + "/valid.txt", val_set);
        format.save(write_text_dir + "/format.json");
      }
    } else {
      VLM_CHECK(!train_text.empty() && !val_text.empty(),
                "give --train_text=FILE --val_text=FILE (seed format) or --tokenizer=CKPT --data_dir=DIR");
      format = format.with_block_size(model.block_size());
      train_set = format.read(train_text);
      val_set = format.read(val_text);
    }
    vlm::GPTTrainer trainer(model, train, vlm::TokenDataset::build(format, std::move(train_set)),
                            vlm::TokenDataset::build(format, std::move(val_set)), device);
    trainer.set_process_group(&group);
    auto s = trainer.train();
    if (!group.is_main()) return 0;
    fmt::print("final: val loss {:.4f} (all targets {:.4f}), val accuracy {:.4f}, best val loss {:.4f}, wall {:.1f} s\n",
               s.last_eval.val_loss, s.last_eval.val_loss_all, s.last_eval.val_accuracy, s.best_val_loss,
               s.seconds);
    return 0;
  });
}
