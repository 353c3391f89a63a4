// nanoGPT interop against nanoGPT itself: tests/fixtures/nanogpt holds checkpoints that nanoGPT's model.py trained and
// saved (the dict its train.py writes) and the logits that model.py computed on fixed windows of the seed's text
// (scripts/make_nanogpt_fixture.py regenerates them). We import, load as any vlm checkpoint, and compare, as llm.c
// checks its GPT-2 against PyTorch.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/utils.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/io/nanogpt.h"
#include "vlm/sample/sampler.h"
#include "vlm/models/gpt_checkpoint.h"

namespace {

const std::string kDir = std::string(VLM_FIXTURE_DIR) + "/nanogpt";
const std::string kSeedChars = " #,.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZabegimnru";

/// expected.pt: {'idx', 'logits', 'prompt', 'greedy'}, a plain dict of tensors, which torch::pickle_load reads.
std::map<std::string, at::Tensor> expected(const std::string& variant) {
  std::ifstream f(kDir + "/" + variant + "/expected.pt", std::ios::binary);
  REQUIRE(f);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), {});
  auto dict = torch::pickle_load(bytes).toGenericDict();
  std::map<std::string, at::Tensor> out;
  for (const auto& kv : dict) out[kv.key().toStringRef()] = kv.value().toTensor();
  return out;
}

/// A file of nanoGPT's ckpt.pt layout written by LibTorch (torch::pickle_save), for the defects tests need.
void write_ckpt(const std::string& path, const std::map<std::string, at::Tensor>& state, int64_t vocab_size = 50,
                int64_t n_embd = 16) {
  c10::Dict<std::string, at::Tensor> model;
  for (const auto& [k, v] : state) model.insert(k, v);
  c10::impl::GenericDict args(c10::StringType::get(), c10::AnyType::get());
  args.insert("n_layer", int64_t(1));
  args.insert("n_head", int64_t(2));
  args.insert("n_embd", n_embd);
  args.insert("block_size", int64_t(8));
  args.insert("bias", false);
  args.insert("vocab_size", vocab_size);
  args.insert("dropout", 0.0);
  c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
  root.insert("model", model);
  root.insert("model_args", args);
  root.insert("iter_num", int64_t(7));
  auto bytes = torch::pickle_save(root);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// nanoGPT's key names for a 1-layer bias-free model of width C over V tokens and block 8.
std::map<std::string, at::Tensor> tiny_state(int64_t V = 50, int64_t C = 16) {
  std::map<std::string, at::Tensor> s;
  auto wte = at::randn({V, C});
  s["transformer.wte.weight"] = wte;
  s["lm_head.weight"] = wte;
  s["transformer.wpe.weight"] = at::randn({8, C});
  s["transformer.h.0.ln_1.weight"] = at::randn({C});
  s["transformer.h.0.attn.c_attn.weight"] = at::randn({3 * C, C});
  s["transformer.h.0.attn.c_proj.weight"] = at::randn({C, C});
  s["transformer.h.0.attn.bias"] = at::ones({8, 8}).tril().view({1, 1, 8, 8});
  s["transformer.h.0.ln_2.weight"] = at::randn({C});
  s["transformer.h.0.mlp.c_fc.weight"] = at::randn({4 * C, C});
  s["transformer.h.0.mlp.c_proj.weight"] = at::randn({C, 4 * C});
  s["transformer.ln_f.weight"] = at::randn({C});
  return s;
}

}  // namespace

TEST_CASE("meta.pkl of nanoGPT's prepare.py gives the seed's vocabulary and tokenizer", "[nanogpt]") {
  // The seed's data/mnist_vlm/prepare.py: sorted(set(all lines stripped)); the fixture's meta.pkl was written the
  // same way from ../shared/seed-tokens/train.txt. It equals the seed format's vocabulary.
  vlm::CharTokenizer tok = vlm::read_nanogpt_meta(kDir + "/meta.pkl");
  CHECK(tok.chars() == kSeedChars);
  CHECK(tok == vlm::CharTokenizer::for_format(vlm::SequenceFormat::seed()));
  // The seed's format is recognised from the vocabulary (its image alphabet: the characters the templates lack).
  auto f = vlm::seed_format_of_vocabulary(kSeedChars, 32);
  REQUIRE(f);
  CHECK(*f == vlm::SequenceFormat::seed());
  auto hex = vlm::seed_format_of_vocabulary(vlm::SequenceFormat::seed("ABCDEFGHIJKLMNOP").vocabulary(), 32);
  REQUIRE(hex);
  CHECK(hex->field(0).alphabet == "ABCDEFGHIJKLMNOP");
  CHECK_FALSE(vlm::seed_format_of_vocabulary("abc", 32));  // any other vocabulary: no format
  CHECK_THROWS_WITH(vlm::read_nanogpt_meta(kDir + "/bias/expected.pt"), Catch::Contains("unsupported pickle opcode"));
}

TEST_CASE("An imported nanoGPT checkpoint computes nanoGPT's logits", "[nanogpt]") {
  for (std::string variant : {"bias", "compiled"}) {
    DYNAMIC_SECTION(variant) {
      vlm::testing::TempDir dir;
      const std::string out = dir.file("gpt.pt");
      auto ck = vlm::import_nanogpt(kDir + "/" + variant + "/ckpt.pt", vlm::read_nanogpt_meta(kDir + "/meta.pkl"), out);
      CHECK(ck.compiled == (variant == "compiled"));
      CHECK(ck.options.bias() == (variant == "bias"));
      CHECK(ck.iter_num == 40);
      CHECK(ck.best_val_loss > 0.5);
      CHECK(ck.best_val_loss < 3.0);
      CHECK(ck.config.at("dataset") == "mnist_vlm");

      vlm::LoadedGPT gpt = vlm::load_gpt_checkpoint(out);
      CHECK(gpt.tokenizer.chars() == kSeedChars);
      CHECK(gpt.meta.at("iter") == 40);
      CHECK(gpt.meta.at("imported_from").at("format") == "nanoGPT");
      CHECK(gpt.model->options.n_layer() == 2);
      CHECK(gpt.model->options.n_embd() == 16);
      CHECK(gpt.model->options.block_size() == 32);

      auto e = expected(variant);
      torch::NoGradGuard no_grad;
      at::Tensor logits = gpt.model->forward(e["idx"]);  // (2, 32, 50)
      REQUIRE(logits.sizes() == e["logits"].sizes());
      const double max_diff = (logits - e["logits"]).abs().max().item<double>();
      const double scale = e["logits"].abs().max().item<double>();
      std::printf("nanogpt %s: max |logits - nanoGPT's| = %.3g (|logits| up to %.3g)\n", variant.c_str(), max_diff,
                  scale);
      CHECK(scale > 1.0);  // a meaningful comparison, not near-zero logits
      CHECK(max_diff <= 1e-5);
      // The cached and last-position paths agree with nanoGPT too.
      vlm::GPTImpl::KVCache cache;
      at::Tensor last = gpt.model->forward(e["idx"], &cache, /*last_only=*/true).select(1, 0);  // (2, 50)
      CHECK((last - e["logits"].select(1, 31)).abs().max().item<double>() <= 1e-5);
    }
  }
}

TEST_CASE("The sampler continues greedily as nanoGPT's generate(top_k=1) does", "[nanogpt]") {
  for (std::string variant : {"bias", "compiled"}) {
    DYNAMIC_SECTION(variant) {
      vlm::testing::TempDir dir;
      vlm::import_nanogpt(kDir + "/" + variant + "/ckpt.pt", vlm::read_nanogpt_meta(kDir + "/meta.pkl"),
                          dir.file("gpt.pt"));
      vlm::LoadedGPT gpt = vlm::load_gpt_checkpoint(dir.file("gpt.pt"));
      auto e = expected(variant);
      const int64_t P = e["prompt"].size(1), N = e["greedy"].size(1) - P;
      auto ids = [](const at::Tensor& t) { return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()); };
      const std::string prompt = gpt.tokenizer.decode(ids(e["prompt"].contiguous()));
      const std::string want = gpt.tokenizer.decode(ids(e["greedy"].contiguous())).substr(P);
      vlm::Sampler sampler(gpt.model, gpt.tokenizer,
                           vlm::SamplerOptions().greedy(true).stop('\0').max_new_tokens(N));
      auto got = sampler.complete({prompt});
      INFO("prompt '" << prompt << "'");
      CHECK(got.at(0) == want);
    }
  }
}

TEST_CASE("Importing rejects bad checkpoints with a clear error", "[nanogpt]") {
  vlm::testing::TempDir dir;
  const vlm::CharTokenizer seed_vocab = vlm::nanogpt_tokenizer(kSeedChars);
  const std::string out = dir.file("gpt.pt");
  const std::string good = kDir + "/bias/ckpt.pt";

  SECTION("a truncated file") {
    auto bytes = vlm::testing::read_bytes(good);
    bytes.resize(bytes.size() / 2);
    vlm::testing::write_bytes(dir.file("half.pt"), bytes);
    CHECK_THROWS_WITH(vlm::import_nanogpt(dir.file("half.pt"), seed_vocab, out),
                      Catch::Contains("half.pt") && Catch::Contains("truncated"));
  }
  SECTION("not a torch.save file") {
    vlm::testing::write_bytes(dir.file("text.pt"), {'h', 'e', 'l', 'l', 'o'});
    CHECK_THROWS_WITH(vlm::import_nanogpt(dir.file("text.pt"), seed_vocab, out),
                      Catch::Contains("text.pt") && Catch::Contains("not a torch.save archive"));
  }
  SECTION("a torch.save file that is not a nanoGPT checkpoint") {
    CHECK_THROWS_WITH(vlm::import_nanogpt(kDir + "/bias/expected.pt", seed_vocab, out),
                      Catch::Contains("expected.pt") && Catch::Contains("is not a nanoGPT checkpoint"));
  }
  SECTION("a vocabulary of the wrong size") {
    CHECK_THROWS_WITH(vlm::import_nanogpt(good, vlm::CharTokenizer("ABC"), out),
                      Catch::Contains("vocab_size 50") && Catch::Contains("has 3 characters"));
  }
  SECTION("a missing key") {
    auto s = tiny_state();
    s.erase("transformer.h.0.mlp.c_fc.weight");
    write_ckpt(dir.file("missing.pt"), s);
    CHECK_THROWS_WITH(vlm::read_nanogpt_checkpoint(dir.file("missing.pt")),
                      Catch::Contains("lacks 1 key") && Catch::Contains("transformer.h.0.mlp.c_fc.weight"));
  }
  SECTION("a shape that model_args contradict") {
    auto s = tiny_state();
    s["transformer.wpe.weight"] = at::randn({9, 16});
    write_ckpt(dir.file("shape.pt"), s);
    CHECK_THROWS_WITH(vlm::read_nanogpt_checkpoint(dir.file("shape.pt")),
                      Catch::Contains("transformer.wpe.weight has shape [9, 16]") && Catch::Contains("[8, 16]"));
  }
  SECTION("an unexpected key") {
    auto s = tiny_state();
    s["transformer.h.0.ln_1.bias"] = at::zeros({16});  // model_args say bias=False
    write_ckpt(dir.file("extra.pt"), s);
    CHECK_THROWS_WITH(vlm::read_nanogpt_checkpoint(dir.file("extra.pt")),
                      Catch::Contains("unexpected state-dict key 'transformer.h.0.ln_1.bias'"));
  }
  SECTION("an untied lm_head") {
    auto s = tiny_state();
    s["lm_head.weight"] = at::randn({50, 16});
    write_ckpt(dir.file("untied.pt"), s);
    CHECK_THROWS_WITH(vlm::read_nanogpt_checkpoint(dir.file("untied.pt")), Catch::Contains("untied"));
  }
  SECTION("a well-formed LibTorch-written checkpoint imports") {
    write_ckpt(dir.file("ok.pt"), tiny_state());
    auto ck = vlm::import_nanogpt(dir.file("ok.pt"), seed_vocab, out);
    CHECK(ck.iter_num == 7);
    CHECK(std::isnan(ck.best_val_loss));
    CHECK(vlm::load_gpt_checkpoint(out).model->options.n_layer() == 1);
  }
}
