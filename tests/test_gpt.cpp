#include <catch2/catch.hpp>

#include <cmath>

#include <ATen/ATen.h>
#include <torch/optim/sgd.h>

#include "vlm/core/check.h"
#include "vlm/models/attention.h"
#include "vlm/models/fast_dropout.h"
#include "vlm/models/gpt.h"
#include "vlm/sample/shared_prefix.h"

namespace {
vlm::GPTOptions tiny(double dropout = 0.0, bool bias = false) {
  return vlm::GPTOptions().vocab_size(50).block_size(32).n_layer(2).n_head(2).n_embd(32).dropout(dropout).bias(bias);
}
}  // namespace

TEST_CASE("causal_self_attention matches a loop-by-loop softmax reference, also continuing after cached keys",
          "[gpt]") {
  at::manual_seed(3);
  const int64_t B = 2, nh = 2, Tk = 5, hs = 4;
  for (int64_t Tq : {5, 2, 1}) {
    auto q = at::randn({B, nh, Tq, hs}), k = at::randn({B, nh, Tk, hs}), v = at::randn({B, nh, Tk, hs});
    auto y = vlm::causal_self_attention(q, k, v, 0.0, false);
    REQUIRE(y.sizes() == at::IntArrayRef({B, nh, Tq, hs}));
    auto qa = q.accessor<float, 4>(), ka = k.accessor<float, 4>(), va = v.accessor<float, 4>();
    auto ya = y.accessor<float, 4>();
    double max_diff = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < nh; ++h)
        for (int64_t i = 0; i < Tq; ++i) {
          const int64_t pos = Tk - Tq + i;  // absolute position of query i
          std::vector<double> w(pos + 1);
          double mx = -1e30, z = 0;
          for (int64_t j = 0; j <= pos; ++j) {
            double dot = 0;
            for (int64_t d = 0; d < hs; ++d) dot += qa[b][h][i][d] * ka[b][h][j][d];
            w[j] = dot / std::sqrt(double(hs));
            mx = std::max(mx, w[j]);
          }
          for (auto& x : w) z += (x = std::exp(x - mx));
          for (int64_t d = 0; d < hs; ++d) {
            double out = 0;
            for (int64_t j = 0; j <= pos; ++j) out += w[j] / z * va[b][h][j][d];
            max_diff = std::max(max_diff, std::abs(out - ya[b][h][i][d]));
          }
        }
    CHECK(max_diff < 1e-5);
  }
  CHECK_THROWS_AS(vlm::find_attention("flash"), vlm::Error);
}

TEST_CASE("Changing a future token never changes an earlier logit", "[gpt]") {
  at::manual_seed(1);
  vlm::GPT model(tiny());
  model->eval();
  auto idx = at::randint(50, {3, 20}, at::kLong);
  auto base = model->forward(idx);  // (3, 20, 50)
  for (int64_t t : {0, 7, 19}) {
    auto changed = idx.clone();
    changed.select(1, t).add_(1).remainder_(50);
    auto out = model->forward(changed);
    if (t > 0) CHECK(at::equal(out.narrow(1, 0, t), base.narrow(1, 0, t)));
    CHECK_FALSE(at::allclose(out.narrow(1, t, 20 - t), base.narrow(1, t, 20 - t)));
  }
}

TEST_CASE("Continuing from a key/value cache gives the logits of the full forward", "[gpt]") {
  at::manual_seed(2);
  vlm::GPT model(tiny(0.0, true));
  model->eval();
  auto idx = at::randint(50, {2, 12}, at::kLong);
  auto full = model->forward(idx);  // (2, 12, 50)
  vlm::GPTImpl::KVCache cache;
  auto first = model->forward(idx.narrow(1, 0, 9), &cache);  // the prompt
  CHECK(cache.length == 9);
  REQUIRE(cache.layers.size() == 2);
  CHECK(cache.layers[0].k.sizes() == at::IntArrayRef({2, 2, 9, 16}));
  CHECK(at::allclose(first, full.narrow(1, 0, 9), 1e-5, 1e-5));
  for (int64_t t = 9; t < 12; ++t) {
    auto step = model->forward(idx.narrow(1, t, 1), &cache);  // one token at a time
    CHECK(at::allclose(step.select(1, 0), full.select(1, t), 1e-5, 1e-5));
  }
  CHECK(cache.length == 12);
  CHECK_THROWS_AS(model->forward(at::zeros({2, 21}, at::kLong), &cache), vlm::Error);  // past block_size
}

TEST_CASE("last_only gives the full forward's last logits, with or without a shared, expanded prefix cache",
          "[gpt]") {
  for (const char* attention : {"naive", "fast"}) {
    DYNAMIC_SECTION(attention) {
      at::manual_seed(5);
      vlm::GPT model(tiny().attention(attention));
      model->eval();
      auto idx = at::randint(50, {3, 11}, at::kLong);
      auto full = model->forward(idx);  // (3, 11, 50)
      auto last_only = model->forward(idx, nullptr, /*last_only=*/true);  // (3, 1, 50)
      CHECK(last_only.sizes() == at::IntArrayRef({3, 1, 50}));
      CHECK(at::allclose(last_only.select(1, 0), full.select(1, 10), 1e-5, 1e-5));
      // One prompt's first 4 tokens in the cache, expanded to the batch (as exact classification shares "image:").
      idx.narrow(1, 0, 4).copy_(idx.narrow(0, 0, 1).narrow(1, 0, 4).expand({3, 4}));
      full = model->forward(idx);
      vlm::GPTImpl::KVCache cache;
      model->forward(idx.narrow(0, 0, 1).narrow(1, 0, 4), &cache, true);
      for (auto& layer : cache.layers) {
        layer.k = layer.k.expand({3, -1, -1, -1});
        layer.v = layer.v.expand({3, -1, -1, -1});
      }
      auto last = model->forward(idx.narrow(1, 4, 7), &cache, true).select(1, 0);  // (3, 50)
      CHECK(cache.length == 11);
      CHECK(at::allclose(last, full.select(1, 10), 1e-5, 1e-5));
      // The library's shared-prefix path finds the 4 common tokens itself.
      vlm::GPTImpl::KVCache shared;
      CHECK(at::allclose(vlm::forward_last_shared_prefix(model, idx, shared), full.select(1, 10), 1e-5, 1e-5));
      CHECK(shared.length == 11);
    }
  }
}

TEST_CASE("The output head is wte itself: tied storage, one parameter, shared updates", "[gpt]") {
  at::manual_seed(4);
  vlm::GPT model(tiny());
  int64_t wte_count = 0;
  for (auto& p : model->named_parameters()) {
    wte_count += p.value().data_ptr() == model->wte->weight.data_ptr();
    CHECK(p.key().find("lm_head") == std::string::npos);
  }
  CHECK(wte_count == 1);
  model->eval();
  auto idx = at::randint(50, {2, 6}, at::kLong);
  auto check_tied = [&] {
    // The hidden states by hand: embeddings, the blocks, ln_f; then the head must be wte.
    auto x = model->wte(idx) + model->wpe(at::arange(6, at::kLong));
    for (auto& block : model->blocks) x = block->forward(x);
    auto expected = at::matmul(model->ln_f(x), model->wte->weight.t());  // (2, 6, 50)
    CHECK(at::allclose(model->forward(idx), expected, 1e-5, 1e-6));
  };
  check_tied();
  // After an update the head still reads the updated embedding: there is no second copy to drift apart.
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.5));
  auto before = model->wte->weight.clone();
  model->forward(idx).logsumexp(-1).sum().backward();
  sgd.step();
  CHECK_FALSE(at::equal(before, model->wte->weight));
  check_tied();
}

TEST_CASE("GPT has nanoGPT's parameter names, count and initialisation", "[gpt]") {
  at::manual_seed(5);
  const int64_t V = 50, T = 32, L = 2, C = 64;
  vlm::GPT model(vlm::GPTOptions().vocab_size(V).block_size(T).n_layer(L).n_head(4).n_embd(C).bias(true));
  auto params = model->named_parameters();
  for (const char* name : {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight",
                           "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight", "h.1.ln_2.weight", "h.1.mlp.c_fc.weight",
                           "h.1.mlp.c_proj.weight", "ln_f.weight", "ln_f.bias"})
    CHECK(params.contains(name));
  // Per block: 2 LayerNorms (2C each with bias), c_attn C*3C+3C, c_proj C*C+C, c_fc C*4C+4C, c_proj 4C*C+C.
  const int64_t per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  CHECK(model->num_params(false) == V * C + T * C + L * per_block + 2 * C);
  CHECK(model->num_params(true) == V * C + L * per_block + 2 * C);
  CHECK(at::equal(params["h.0.ln_1.weight"], at::ones({C})));
  CHECK(at::equal(params["h.0.attn.c_attn.bias"], at::zeros({3 * C})));
  CHECK(params["h.0.mlp.c_fc.weight"].std().item<double>() == Approx(0.02).epsilon(0.03));
  CHECK(params["h.1.mlp.c_proj.weight"].std().item<double>() == Approx(0.02 / std::sqrt(2.0 * L)).epsilon(0.03));
  CHECK(params["h.1.attn.c_proj.weight"].std().item<double>() == Approx(0.02 / std::sqrt(2.0 * L)).epsilon(0.05));
  vlm::GPT nobias(tiny());
  CHECK_FALSE(nobias->named_parameters().contains("h.0.attn.c_attn.bias"));
  CHECK_FALSE(nobias->named_parameters().contains("ln_f.bias"));
}

TEST_CASE("GPT options survive JSON and bad options are errors naming the field", "[gpt]") {
  auto o = tiny(0.1, true);
  auto json = vlm::options_to_json(o);
  CHECK(json == nlohmann::json{{"vocab_size", 50}, {"block_size", 32}, {"n_layer", 2},  {"n_head", 2},
                               {"n_embd", 32},     {"dropout", 0.1},    {"bias", true}, {"attention", "naive"}});
  auto back = vlm::options_from_json<vlm::GPTOptions>(nlohmann::json::parse(json.dump()), "gpt");
  CHECK(vlm::options_to_json(back) == json);
  // Absent keys keep their defaults (files written before a field existed); unknown keys and wrong types are errors.
  CHECK(vlm::options_from_json<vlm::GPTOptions>({{"n_layer", 2}}, "gpt").n_embd() == vlm::GPTOptions().n_embd());
  CHECK_THROWS_WITH(vlm::options_from_json<vlm::GPTOptions>({{"n_layers", 2}}, "ckpt.pt: gpt"),
                    Catch::Contains("ckpt.pt: gpt: unknown key 'n_layers'"));
  CHECK_THROWS_WITH(vlm::options_from_json<vlm::GPTOptions>({{"bias", 1}}, "gpt"),
                    Catch::Contains("gpt.bias: expected a boolean, got 1"));
  CHECK_THROWS_WITH(vlm::GPT(tiny().n_head(3)), Catch::Contains("n_head"));
  CHECK_THROWS_AS(vlm::GPT(tiny().attention("fused")), vlm::Error);
}

TEST_CASE("The module tree is nanoGPT's and holds nothing forward does not call", "[gpt]") {
  vlm::GPT model(tiny(0.1));
  std::vector<std::string> names;
  for (const auto& m : model->named_modules("", /*include_self=*/false)) names.push_back(m.key());
  // Dropout has no parameters and forward applies fast_dropout, so no Dropout module is registered.
  const std::vector<std::string> expected = {
      "wte", "wpe", "h", "h.0", "h.0.ln_1", "h.0.attn", "h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.ln_2", "h.0.mlp",
      "h.0.mlp.c_fc", "h.0.mlp.c_proj", "h.1", "h.1.ln_1", "h.1.attn", "h.1.attn.c_attn", "h.1.attn.c_proj",
      "h.1.ln_2", "h.1.mlp", "h.1.mlp.c_fc", "h.1.mlp.c_proj", "ln_f"};
  CHECK(names == expected);
}

TEST_CASE("fast_dropout keeps 1 - p of the values scaled by 1 / (1 - p), reproducibly, and passes gradients through the mask",
          "[gpt]") {
  auto x = at::ones({200, 501}).requires_grad_(true);  // odd count: the last pair is half used
  CHECK(at::equal(vlm::fast_dropout(x, 0.2, false), x));
  at::manual_seed(9);
  auto y = vlm::fast_dropout(x, 0.2, true);
  auto kept = (y != 0).to(at::kFloat).mean().item<double>();
  CHECK(kept == Approx(0.8).margin(0.005));  // 100,200 draws: sd 0.0013
  CHECK(at::allclose(y.masked_select(y != 0), at::full({1}, 1.25f)));
  y.sum().backward();
  CHECK(at::equal(x.grad(), y.detach()));  // d(x * mask)/dx = mask, and x = 1
  at::manual_seed(9);
  CHECK(at::equal(vlm::fast_dropout(x, 0.2, true), y));
  CHECK_FALSE(at::equal(vlm::fast_dropout(x, 0.2, true), y));  // the generator moved on
}
