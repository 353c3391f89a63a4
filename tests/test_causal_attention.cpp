// The fused causal attention against the naive composition evaluated in double precision: outputs and the gradients
// of q, k and v, for every instruction-set build this CPU runs, at the edges (T = 1, T = 64, odd hs, hs = 1, 128).
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/kernels/causal_attention.h"
#include "vlm/kernels/kernel_isa.h"
#include "vlm/models/attention.h"
#include "vlm/models/gpt.h"

namespace vk = vlm::kernels;

namespace {

/// max |a - b| / max |b|: the relative error of a float32 result against a double reference.
double relative_error(const at::Tensor& a, const at::Tensor& ref) {
  const at::Tensor r = ref.to(at::kDouble);
  return (a.to(at::kDouble) - r).abs().max().item<double>() / std::max(r.abs().max().item<double>(), 1e-30);
}

struct Result {
  at::Tensor y, dq, dk, dv;
};

/// y and the gradients of sum(y * g) for q, k, v given as leaves of any dtype.
template <class Attention>
Result run(Attention attention, const at::Tensor& q0, const at::Tensor& k0, const at::Tensor& v0,
           const at::Tensor& g) {
  at::Tensor q = q0.detach().requires_grad_(), k = k0.detach().requires_grad_(), v = v0.detach().requires_grad_();
  at::Tensor y = attention(q, k, v);
  (y * g.to(y.scalar_type())).sum().backward();
  return {y.detach(), q.grad(), k.grad(), v.grad()};
}

}  // namespace

TEST_CASE("causal_attention matches the naive composition forward and backward", "[attention]") {
  at::manual_seed(5);
  struct Shape {
    int64_t b, nh, t, hs;
  };
  const Shape shapes[] = {{2, 3, 32, 48}, {1, 1, 1, 8}, {2, 2, 64, 64}, {3, 2, 17, 7}, {1, 2, 5, 1},
                          {2, 1, 33, 128}, {1, 1, 16, 16}, {2, 2, 4, 19}, {1, 3, 63, 33}};
  for (const Shape& s : shapes) {
    at::Tensor q = at::randn({s.b, s.nh, s.t, s.hs}), k = at::randn({s.b, s.nh, s.t, s.hs});
    at::Tensor v = at::randn({s.b, s.nh, s.t, s.hs}), g = at::randn({s.b, s.nh, s.t, s.hs});
    const Result ref = run(vk::causal_attention_naive, q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble), g);
    for (const std::string& isa : vk::supported_isas()) {
      CAPTURE(isa, s.b, s.nh, s.t, s.hs);
      auto fast = [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
        return vk::causal_attention(a, b, c, isa);
      };
      const Result got = run(fast, q, k, v, g);
      CHECK(relative_error(got.y, ref.y) < 1e-5);
      CHECK(relative_error(got.dq, ref.dq) < 1e-5);
      CHECK(relative_error(got.dk, ref.dk) < 1e-5);
      CHECK(relative_error(got.dv, ref.dv) < 1e-5);
    }
  }
}

TEST_CASE("causal_attention is causal: a later key or value never changes an earlier output", "[attention]") {
  at::manual_seed(9);
  at::Tensor q = at::randn({1, 2, 12, 8}), k = at::randn({1, 2, 12, 8}), v = at::randn({1, 2, 12, 8});
  const at::Tensor y = vk::causal_attention(q, k, v);
  at::Tensor k2 = k.clone(), v2 = v.clone();
  k2.narrow(2, 7, 5).mul_(3).add_(1);
  v2.narrow(2, 7, 5).mul_(-2);
  const at::Tensor y2 = vk::causal_attention(q, k2, v2);
  CHECK(at::equal(y.narrow(2, 0, 7), y2.narrow(2, 0, 7)));
  CHECK_FALSE(at::allclose(y.narrow(2, 7, 5), y2.narrow(2, 7, 5)));
  // Row 0 attends to itself only.
  CHECK(at::allclose(y.select(2, 0), v.select(2, 0), 1e-6, 1e-6));
}

TEST_CASE("causal_attention takes nanoGPT's strided head views and returns gradients into the fused projection",
          "[attention]") {
  at::manual_seed(13);
  const int64_t B = 3, T = 32, nh = 4, hs = 12, C = nh * hs;
  at::Tensor qkv0 = at::randn({B, T, 3 * C}), g = at::randn({B, T, C});
  auto loss_and_grad = [&](bool fast) {
    at::Tensor qkv = qkv0.clone().requires_grad_();
    auto parts = qkv.split(C, 2);                            // 3 x (B, T, C)
    auto heads = [&](const at::Tensor& t) { return t.view({B, T, nh, hs}).transpose(1, 2); };  // (B, nh, T, hs)
    at::Tensor y = fast ? vk::causal_attention(heads(parts[0]), heads(parts[1]), heads(parts[2]))
                        : vk::causal_attention_naive(heads(parts[0]), heads(parts[1]), heads(parts[2]));
    if (fast) CHECK(y.transpose(1, 2).is_contiguous());  // the caller's view(B, T, C) is free
    at::Tensor out = y.transpose(1, 2).contiguous().view({B, T, C});  // (B, T, C)
    (out * g).sum().backward();
    return std::make_pair(out.detach(), qkv.grad());
  };
  auto [y_fast, grad_fast] = loss_and_grad(true);
  auto [y_naive, grad_naive] = loss_and_grad(false);
  CHECK(relative_error(y_fast, y_naive) < 1e-5);
  CHECK(relative_error(grad_fast, grad_naive) < 1e-5);
}

TEST_CASE("causal_attention without gradients gives the same output", "[attention]") {
  at::manual_seed(17);
  at::Tensor q = at::randn({2, 2, 32, 48}).requires_grad_(), k = at::randn({2, 2, 32, 48}), v = at::randn({2, 2, 32, 48});
  const at::Tensor with_grad = vk::causal_attention(q, k, v).detach();
  at::NoGradGuard no_grad;
  CHECK(at::equal(vk::causal_attention(q, k, v), with_grad));
}

TEST_CASE("causal_attention rejects what it does not handle with a message that says what it expected",
          "[attention]") {
  at::Tensor ok = at::randn({1, 1, 8, 4});
  at::Tensor long_seq = at::randn({1, 1, 65, 4});
  CHECK_FALSE(vk::causal_attention_supported(long_seq, long_seq, long_seq));
  CHECK_THROWS_WITH(vk::causal_attention(long_seq, long_seq, long_seq), Catch::Contains("T <= 64"));
  at::Tensor dbl = ok.to(at::kDouble);
  CHECK_THROWS_WITH(vk::causal_attention(dbl, dbl, dbl), Catch::Contains("float32"));
  CHECK_THROWS_AS(vk::causal_attention(ok, ok, at::randn({1, 1, 8, 5})), vlm::Error);
  CHECK(vk::causal_attention_naive(long_seq, long_seq, long_seq).sizes() == long_seq.sizes());
}

namespace {
vlm::GPTOptions gpt_options(const std::string& attention) {
  // The real model's head size (384 / 8 = 48) at the real sequence length, with fewer and thinner layers.
  return vlm::GPTOptions().vocab_size(50).block_size(32).n_layer(2).n_head(4).n_embd(192).attention(attention);
}
}  // namespace

TEST_CASE("The GPT's loss and gradients are the same with attention=naive and attention=fast", "[attention][gpt]") {
  at::manual_seed(21);
  vlm::GPT naive(gpt_options("naive"));
  vlm::GPT fast(gpt_options("fast"));
  {
    at::NoGradGuard no_grad;
    auto src = naive->parameters(), dst = fast->parameters();
    REQUIRE(src.size() == dst.size());
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  const int64_t B = 6, T = 32;
  at::Tensor idx = at::randint(0, 50, {B, T}), targets = at::randint(0, 50, {B, T});
  auto loss_of = [&](vlm::GPT& model) {
    at::Tensor logits = model->forward(idx);  // (B, T, V)
    at::Tensor loss = at::cross_entropy_loss(logits.view({B * T, -1}), targets.view({B * T}));
    loss.backward();
    return loss.item<double>();
  };
  const double loss_naive = loss_of(naive), loss_fast = loss_of(fast);
  CHECK(std::abs(loss_fast - loss_naive) <= 1e-5 * std::abs(loss_naive));
  auto gn = naive->parameters(), gf = fast->parameters();
  for (size_t i = 0; i < gn.size(); ++i) {
    CAPTURE(i);
    CHECK(relative_error(gf[i].grad(), gn[i].grad()) < 1e-4);
  }
}

TEST_CASE("attention=fast falls back to the naive path for a key/value cache and for dropout", "[attention][gpt]") {
  at::manual_seed(23);
  vlm::GPT fast(gpt_options("fast"));
  fast->eval();
  at::NoGradGuard no_grad;
  at::Tensor idx = at::randint(0, 50, {2, 12});
  const at::Tensor full = fast->forward(idx);  // (2, 12, V)
  vlm::GPTImpl::KVCache cache;
  at::Tensor first = fast->forward(idx.narrow(1, 0, 7), &cache);
  at::Tensor rest = fast->forward(idx.narrow(1, 7, 5), &cache);  // 5 queries after 7 cached keys
  CHECK(relative_error(at::cat({first, rest}, 1), full) < 1e-5);
  // Attention dropout while training: the fast name must still train (through the naive path), not throw.
  vlm::GPT dropped(gpt_options("fast").dropout(0.1));
  dropped->train();
  at::AutoGradMode grad_on(true);
  CHECK(dropped->forward(idx).sizes() == at::IntArrayRef({2, 12, 50}));
}
