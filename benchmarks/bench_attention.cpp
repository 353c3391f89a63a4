// Causal self-attention for short sequences: the naive LibTorch composition (matmul + mask + softmax + matmul),
// LibTorch's at::_scaled_dot_product_attention (is_causal; on the CPU in 1.13 it is that same composition) and the
// fused kernel of every instruction-set build this CPU runs; forward alone and forward + backward, at the GPT's shape
// (B = 256, T = 32, 8 heads of 48) and larger ones. Every variant is checked against the naive composition evaluated
// in double (relative error < 1e-5 on y and on the q, k, v gradients) before it is timed. The physical bound is the
// GEMM rate measured in the same process (at::mm, n = 1024, same threads): `of_gemm` = attained / GEMM GFLOP/s, with
// the attention counted as the naive composition's dense FLOPs: 4 B nh T^2 hs forward, 3x that forward + backward.
//
// BM_TrainStep_<attention>: one AdamW training step (zero_grad, forward, cross-entropy, backward, step) of the
// seed-size GPT (8 layers, 8 heads, 384 wide, T = 32, dropout 0) with GPTOptions::attention naive or fast; reports
// ms per step, tokens per second and MFU = nanoGPT's flops_per_token * tokens/s / the GEMM rate. Checked first: the
// fast model's initial loss equals the naive model's at the same initialisation.
//
// BM_Sample/<variant>: greedy sampling tokens per second with a key/value cache or without (naive or fast attention).
//
//   build-kern/benchmarks/bench_attention [--benchmark_filter=...]
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adamw.h>

#include "kernel_bench_main.h"
#include "vlm/core/check.h"
#include "vlm/core/runtime.h"
#include "vlm/kernels/causal_attention.h"
#include "vlm/kernels/kernel_isa.h"
#include "vlm/models/gpt.h"

namespace {

namespace vk = vlm::kernels;
using AttentionFn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

/// GFLOP/s of at::mm at n = 1024 with the current thread count, best of 5, measured now.
double gemm_gflops_now() {
  at::NoGradGuard no_grad;
  const int64_t n = 1024;
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  VLM_CHECK(at::allclose(at::mm(a.narrow(0, 0, 4), b), at::mm(a, b).narrow(0, 0, 4), 1e-4, 1e-4),
            "at::mm is inconsistent");
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(at::mm(a, b).data_ptr());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

/// gemm_gflops_now, once per thread count.
double gemm_gflops() {
  static std::map<int, double> cache;
  const int threads = at::get_num_threads();
  if (auto it = cache.find(threads); it != cache.end()) return it->second;
  return cache[threads] = gemm_gflops_now();
}

void BM_Gemm_Bound(benchmark::State& state) {
  at::NoGradGuard no_grad;
  vlm::set_threads(static_cast<int>(state.range(0)), vlm::ThreadPool::kBoth);
  const int64_t n = 1024;
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b).data_ptr());
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

struct Inputs {
  at::Tensor q, k, v, g;  // (B, nh, T, hs) each; g = dL/dy
  at::Tensor y, dq, dk, dv;  // the double-precision reference
};

const Inputs& inputs(int64_t b, int64_t nh, int64_t t, int64_t hs) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, Inputs> cache;
  auto key = std::make_tuple(b, nh, t, hs);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  at::AutoGradMode grad_on(true);  // the forward-only benchmarks call this under NoGradGuard
  at::manual_seed(42);
  Inputs in{at::randn({b, nh, t, hs}), at::randn({b, nh, t, hs}), at::randn({b, nh, t, hs}),
            at::randn({b, nh, t, hs})};
  at::Tensor q = in.q.to(at::kDouble).requires_grad_(), k = in.k.to(at::kDouble).requires_grad_(),
             v = in.v.to(at::kDouble).requires_grad_();
  at::Tensor y = vk::causal_attention_naive(q, k, v);
  y.backward(in.g.to(at::kDouble));
  in.y = y.detach();
  in.dq = q.grad();
  in.dk = k.grad();
  in.dv = v.grad();
  return cache[key] = in;
}

double relative_error(const at::Tensor& a, const at::Tensor& ref) {
  return (a.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

void check(const char* variant, const char* what, const at::Tensor& got, const at::Tensor& ref) {
  const double err = relative_error(got, ref);
  VLM_CHECK(err < 1e-5, variant, ": ", what, " has relative error ", err, " against the double reference");
}

void report(benchmark::State& state, double seconds, double flops, int64_t tokens) {
  const double per_call = seconds / double(state.iterations());
  state.SetItemsProcessed(int64_t(state.iterations()) * tokens);  // tokens (B * T) per second
  state.counters["GFLOP/s"] = flops / per_call / 1e9;
  state.counters["of_gemm"] = flops / per_call / 1e9 / gemm_gflops();
}

void run_forward(benchmark::State& state, const char* variant, const AttentionFn& attention) {
  at::NoGradGuard no_grad;
  const int64_t b = state.range(0), nh = state.range(1), t = state.range(2), hs = state.range(3);
  vlm::set_threads(static_cast<int>(state.range(4)), vlm::ThreadPool::kBoth);
  const Inputs& in = inputs(b, nh, t, hs);
  gemm_gflops();
  check(variant, "y", attention(in.q, in.k, in.v), in.y);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(attention(in.q, in.k, in.v).data_ptr());
  report(state, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
         4.0 * b * nh * t * t * hs, b * t);
}

void run_forward_backward(benchmark::State& state, const char* variant, const AttentionFn& attention) {
  const int64_t b = state.range(0), nh = state.range(1), t = state.range(2), hs = state.range(3);
  vlm::set_threads(static_cast<int>(state.range(4)), vlm::ThreadPool::kBoth);
  const Inputs& in = inputs(b, nh, t, hs);
  gemm_gflops();
  at::Tensor q = in.q.clone().requires_grad_(), k = in.k.clone().requires_grad_(), v = in.v.clone().requires_grad_();
  auto step = [&] {
    at::Tensor y = attention(q, k, v);
    auto grads = torch::autograd::grad({y}, {q, k, v}, {in.g});  // no accumulation into .grad: just the kernels
    return std::make_pair(y, grads);
  };
  {
    auto [y, grads] = step();
    check(variant, "y", y, in.y);
    check(variant, "dq", grads[0], in.dq);
    check(variant, "dk", grads[1], in.dk);
    check(variant, "dv", grads[2], in.dv);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(step().second[0].data_ptr());
  report(state, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
         12.0 * b * nh * t * t * hs, b * t);
}

at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, {}, 0.0, false, /*is_causal=*/true));
}

bool skip_unsupported(benchmark::State& state, const std::string& isa) {
  const auto isas = vk::supported_isas();
  if (std::find(isas.begin(), isas.end(), isa) != isas.end()) return false;
  state.SkipWithError(("this CPU cannot run the " + isa + " build").c_str());
  return true;
}

void BM_Attention_Naive(benchmark::State& state) { run_forward(state, "naive", vk::causal_attention_naive); }
void BM_Attention_SDPA(benchmark::State& state) { run_forward(state, "sdpa", sdpa); }
void BM_Attention_Fused(benchmark::State& state, const std::string& isa) {
  if (skip_unsupported(state, isa)) return;
  state.SetLabel(isa);
  run_forward(state, "fused", [&](auto& q, auto& k, auto& v) { return vk::causal_attention(q, k, v, isa); });
}

void BM_AttentionFwdBwd_Naive(benchmark::State& state) {
  run_forward_backward(state, "naive", vk::causal_attention_naive);
}
void BM_AttentionFwdBwd_SDPA(benchmark::State& state) { run_forward_backward(state, "sdpa", sdpa); }
void BM_AttentionFwdBwd_Fused(benchmark::State& state, const std::string& isa) {
  if (skip_unsupported(state, isa)) return;
  state.SetLabel(isa);
  run_forward_backward(state, "fused",
                       [&](auto& q, auto& k, auto& v) { return vk::causal_attention(q, k, v, isa); });
}

double gpt_loss(vlm::GPT& model, const at::Tensor& idx, const at::Tensor& targets) {
  at::Tensor logits = model->forward(idx);  // (B, T, V)
  return at::cross_entropy_loss(logits.view({-1, logits.size(2)}), targets.view({-1})).item<double>();
}

void BM_TrainStep(benchmark::State& state, const std::string& attention) {
  const int64_t B = state.range(0), T = 32;
  vlm::set_threads(static_cast<int>(state.range(1)), vlm::ThreadPool::kBoth);
  auto options = vlm::GPTOptions().block_size(T).attention(attention);
  at::manual_seed(7);
  vlm::GPT model(options);
  at::manual_seed(7);
  vlm::GPT reference(vlm::GPTOptions(options).attention("naive"));
  at::Tensor idx = at::randint(0, options.vocab_size(), {B, T}), targets = at::randint(0, options.vocab_size(), {B, T});
  {
    const double got = gpt_loss(model, idx, targets), want = gpt_loss(reference, idx, targets);
    VLM_CHECK(std::abs(got - want) <= 1e-5 * std::abs(want), "attention=", attention, ": initial loss ", got,
              " differs from the naive model's ", want);
  }
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3));
  auto step = [&] {
    optimizer.zero_grad();
    at::Tensor logits = model->forward(idx);  // (B, T, V)
    at::Tensor loss = at::cross_entropy_loss(logits.view({B * T, -1}), targets.view({B * T}));
    loss.backward();
    optimizer.step();
    return loss;
  };
  step();  // warm-up: allocator, optimizer state
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(step().data_ptr());
  const double per_step =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(state.iterations());
  // Measured right after the steps, not once per process: on a shared machine the rate drifts with the load.
  const double gemm = gemm_gflops_now();
  const double tokens_per_s = double(B * T) / per_step;
  state.SetItemsProcessed(int64_t(state.iterations()) * B * T);
  state.counters["ms/step"] = per_step * 1e3;
  state.counters["MFU"] = model->flops_per_token(T) * tokens_per_s / 1e9 / gemm;
  state.counters["gemm_GFLOP/s"] = gemm;
}

/// Greedy continuation of a (B, P) prompt to T tokens: the whole context re-run every step, or the new token only
/// after a key/value cache. Returns (B, T).
at::Tensor sample_greedy(vlm::GPT& model, const at::Tensor& prompt, int64_t t, bool cached) {
  at::Tensor idx = prompt;
  vlm::GPTImpl::KVCache cache;
  at::Tensor logits = cached ? model->forward(prompt, &cache) : model->forward(prompt);  // (B, P, V)
  while (idx.size(1) < t) {
    at::Tensor next = logits.select(1, logits.size(1) - 1).argmax(-1, /*keepdim=*/true);  // (B, 1)
    idx = at::cat({idx, next}, 1);
    if (idx.size(1) == t) break;
    logits = cached ? model->forward(next, &cache) : model->forward(idx);
  }
  return idx;
}

/// BM_Sample_<variant>: tokens generated per second by greedy sampling from the seed-size GPT (B = 16 prompts of 8
/// tokens continued to T = 32), with a key/value cache or re-running the whole context each step (naive or fast
/// attention). Checked first: the three variants generate the same tokens.
void BM_Sample(benchmark::State& state, bool cached, const std::string& attention) {
  at::NoGradGuard no_grad;
  const int64_t B = 16, P = 8, T = 32;
  vlm::set_threads(static_cast<int>(state.range(0)), vlm::ThreadPool::kBoth);
  at::manual_seed(7);
  vlm::GPT model(vlm::GPTOptions().block_size(T).attention(attention));
  model->eval();
  at::manual_seed(7);
  vlm::GPT reference(vlm::GPTOptions().block_size(T));
  reference->eval();
  at::Tensor prompt = at::randint(0, model->options.vocab_size(), {B, P});
  VLM_CHECK(at::equal(sample_greedy(model, prompt, T, cached), sample_greedy(reference, prompt, T, false)),
            "sampling with cache=", cached, " attention=", attention, " generates other tokens than the reference");
  for (auto _ : state) benchmark::DoNotOptimize(sample_greedy(model, prompt, T, cached).data_ptr());
  state.SetItemsProcessed(int64_t(state.iterations()) * B * (T - P));  // generated tokens per second
}

// {B, nh, T, hs, threads}: the GPT's shape, then longer sequences and wider heads.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "nh", "T", "hs", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
  for (int threads : {1, 2}) {
    b->Args({256, 8, 32, 48, threads});
    b->Args({64, 8, 64, 64, threads});
    b->Args({256, 12, 32, 64, threads});
  }
}

BENCHMARK(BM_Gemm_Bound)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention_Naive)->Apply(shapes);
BENCHMARK(BM_Attention_SDPA)->Apply(shapes);
BENCHMARK_CAPTURE(BM_Attention_Fused, avx512, std::string("avx512"))->Apply(shapes);
BENCHMARK_CAPTURE(BM_Attention_Fused, avx2, std::string("avx2"))->Apply(shapes);
BENCHMARK(BM_AttentionFwdBwd_Naive)->Apply(shapes);
BENCHMARK(BM_AttentionFwdBwd_SDPA)->Apply(shapes);
BENCHMARK_CAPTURE(BM_AttentionFwdBwd_Fused, avx512, std::string("avx512"))->Apply(shapes);
BENCHMARK_CAPTURE(BM_AttentionFwdBwd_Fused, avx2, std::string("avx2"))->Apply(shapes);
BENCHMARK_CAPTURE(BM_Sample, KVCache, true, std::string("naive"))
    ->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, NoCache_naive, false, std::string("naive"))
    ->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sample, NoCache_fast, false, std::string("fast"))
    ->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep, naive, std::string("naive"))
    ->ArgsProduct({{16}, {1, 2}})->ArgNames({"B", "threads"})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep, fast, std::string("fast"))
    ->ArgsProduct({{16}, {1, 2}})->ArgNames({"B", "threads"})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) { return vlm::bench::run_kernel_benchmarks(argc, argv); }
