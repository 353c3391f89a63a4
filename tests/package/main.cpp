// The smallest program on vlm, and the README's example: a tokenizer and a GPT trained in memory on 6,000 MNIST
// digits, then classification and generation through the format. Built against the installed package by the tests.
//   vlm_consumer [MNIST_DIR]
#include <cstdio>

#include "vlm/vlm.h"

int main(int argc, char** argv) try {
  vlm::init_runtime();
  const auto mnist = vlm::load_mnist(argc > 1 ? argv[1] : "data/mnist");
  const auto data = vlm::split_train_validation(mnist.train.head(6000));
  auto vq = vlm::VQVAETrainOptions::preset("conv");
  vq.max_epochs = 6;
  vlm::VQVAETrainer tokenizer(vlm::VQVAE(vlm::VQVAEOptions::preset("conv")), vq, data.train, data.validation);
  tokenizer.train();
  vlm::GPTTrainOptions lm;  // no out_dir: nothing is written
  lm.max_iters = 1000, lm.batch_size = 64, lm.warmup_iters = 50, lm.learning_rate = 3e-3, lm.eval_interval = 0;
  auto engine = vlm::Engine::train(tokenizer.codec(), vlm::SequenceFormat::seed(), data.train, data.validation,
                                   vlm::GPTOptions().n_layer(2).n_head(4).n_embd(64), lm);
  const double accuracy = engine.accuracy(mnist.test.head(1000));
  const auto sevens = engine.generate("7", 8);  // letters of 8 drawn sevens, constrained to the format
  const at::Tensor images = engine.decode(sevens.letters);
  std::printf("test accuracy %.3f; a drawn 7: %s -> %lld images\n", accuracy, sevens.letters[0].c_str(),
              static_cast<long long>(images.size(0)));
  return accuracy > 0.5 && images.size(0) == 8 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "vlm_consumer: %s\n", e.what());
  return 1;
}
