#include "vlm/kernels/causal_attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cpu_kernels.h"
#include "vlm/core/check.h"

namespace vlm::kernels {

at::Tensor causal_attention_naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  VLM_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes(),
            "causal_attention_naive: expected q, k, v of one shape (B, nh, T, hs), got ", q.sizes(), ", ", k.sizes(),
            ", ", v.sizes());
  const int64_t t = q.size(2);
  auto att = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(3))));  // (B, nh, T, T)
  auto above = at::ones({t, t}, q.options().dtype(at::kBool)).triu(1);                    // (T, T)
  att = att.masked_fill(above, -std::numeric_limits<double>::infinity());
  att = at::softmax(att, -1);  // (B, nh, T, T)
  return at::matmul(att, v);   // (B, nh, T, hs)
}

bool causal_attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  auto ok = [&](const at::Tensor& t) {
    return t.defined() && t.dim() == 4 && t.scalar_type() == at::kFloat && t.device().is_cpu() &&
           t.sizes() == q.sizes();
  };
  return ok(q) && ok(k) && ok(v) && q.size(2) >= 1 && q.size(2) <= kCausalAttentionMaxT && q.size(3) >= 1 &&
         q.size(3) <= kCausalAttentionMaxHeadSize;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

/// The kernels need unit stride along hs and nothing else.
at::Tensor unit_stride(const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }

cpu::AttentionOperand operand(const at::Tensor& t) {
  return {t.data_ptr<float>(), t.stride(0), t.stride(1), t.stride(2)};
}

/// (B, nh, T, hs) whose memory is (B, T, nh, hs): the caller's y.transpose(1, 2).contiguous() is then free, and the
/// gradients flow back into a fused qkv projection without a copy.
at::Tensor empty_heads(const at::Tensor& like) {
  return at::empty({like.size(0), like.size(2), like.size(1), like.size(3)}, like.options()).transpose(1, 2);
}

cpu::AttentionArgs make_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  cpu::AttentionArgs a;
  a.batch = q.size(0);
  a.heads = q.size(1);
  a.t = q.size(2);
  a.hs = q.size(3);
  a.scale = static_cast<float>(1.0 / std::sqrt(double(a.hs)));
  a.q = operand(q);
  a.k = operand(k);
  a.v = operand(v);
  return a;
}

/// Runs fn over the B * nh tiles, each worker with its own scratch.
template <class Fn>
void for_tiles(const cpu::AttentionArgs& a, Fn fn) {
  const int64_t scratch_floats = cpu::attention_scratch_floats(a.t, a.hs);
  const int64_t grain = std::max<int64_t>(1, 4096 / (a.t * a.t));
  at::parallel_for(0, a.batch * a.heads, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(scratch_floats);
    fn(begin, end, scratch.data());
  });
}

/// y (B, nh, T, hs); probs (B, nh, T, row stride) when given, else the probabilities are not kept.
at::Tensor forward_into(const cpu::KernelTable& table, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        at::Tensor* probs) {
  cpu::AttentionArgs a = make_args(q, k, v);
  at::Tensor y = empty_heads(q);
  a.y = operand(y);
  if (probs) {
    *probs = at::empty({a.batch, a.heads, a.t, cpu::attention_row_stride(a.t)}, q.options());
    a.probs = probs->data_ptr<float>();
  }
  for_tiles(a, [&](int64_t begin, int64_t end, float* scratch) { table.attention_forward(a, begin, end, scratch); });
  return y;
}

struct CausalAttentionFunction : public torch::autograd::Function<CausalAttentionFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const cpu::KernelTable* table) {
    at::Tensor probs;
    at::Tensor y = forward_into(*table, q, k, v, &probs);
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["table"] = reinterpret_cast<int64_t>(table);
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto* table = reinterpret_cast<const cpu::KernelTable*>(ctx->saved_data["table"].toInt());
    const at::Tensor& q = saved[0];
    const at::Tensor& k = saved[1];
    const at::Tensor& v = saved[2];
    at::Tensor probs = saved[3];
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor dy = unit_stride(grad_outputs[0]);  // (B, nh, T, hs)
    cpu::AttentionArgs a = make_args(q, k, v);
    a.probs = probs.data_ptr<float>();
    a.dy = operand(dy);
    at::Tensor dq = empty_heads(q), dk = empty_heads(q), dv = empty_heads(q);  // (B, nh, T, hs) each
    a.dq = operand(dq);
    a.dk = operand(dk);
    a.dv = operand(dv);
    for_tiles(a, [&](int64_t begin, int64_t end, float* scratch) { table->attention_backward(a, begin, end, scratch); });
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                            const std::string& isa) {
  VLM_CHECK(causal_attention_supported(q_in, k_in, v_in),
            "causal_attention: expected float32 CPU q, k, v of one shape (B, nh, T, hs) with 1 <= T <= ",
            kCausalAttentionMaxT, " and 1 <= hs <= ", kCausalAttentionMaxHeadSize, ", got ", q_in.sizes(), " ",
            q_in.dtype(), " on ", q_in.device(), ", k ", k_in.sizes(), ", v ", v_in.sizes(),
            "; use causal_attention_naive otherwise");
  const cpu::KernelTable& table = cpu::table_for(isa);
  const at::Tensor q = unit_stride(q_in), k = unit_stride(k_in), v = unit_stride(v_in);
  const bool needs_grad =
      at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (!needs_grad) return forward_into(table, q, k, v, nullptr);
  return CausalAttentionFunction::apply(q, k, v, &table);
}

}  // namespace vlm::kernels
