#include "vlm/models/attention.h"

#include <cmath>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/models/fast_dropout.h"
#include "vlm/kernels/causal_attention.h"

namespace vlm {

at::Tensor causal_self_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p,
                                 bool training) {
  VLM_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "causal_self_attention: q, k, v must be (B, nh, T, hs)");
  const int64_t Tq = q.size(2), Tk = k.size(2), hs = q.size(3);
  VLM_CHECK(Tk >= Tq, "causal_self_attention: ", Tq, " queries but only ", Tk, " keys");
  auto att = at::matmul(q, k.transpose(-2, -1)).mul_(1.0 / std::sqrt(static_cast<double>(hs)));  // (B, nh, Tq, Tk)
  if (Tq > 1) {
    // Query i (absolute position Tk - Tq + i) must not see keys after it.
    auto future = at::ones({Tq, Tk}, q.options().dtype(at::kBool)).triu_(Tk - Tq + 1);  // (Tq, Tk)
    att.masked_fill_(future, -std::numeric_limits<float>::infinity());
  }
  att = at::softmax(att, -1);                                         // (B, nh, Tq, Tk)
  att = fast_dropout(att, dropout_p, training);
  return at::matmul(att, v);                                          // (B, nh, Tq, hs)
}

namespace {
/// "fast": the fused kernel (vlm/kernels/causal_attention.h) where it applies: no key/value cache (Tq == Tk), no
/// attention dropout while training (the kernel has none), float32 CPU, T <= 64; the naive path otherwise.
at::Tensor fast_causal_self_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p,
                                      bool training) {
  if (q.size(2) == k.size(2) && !(training && dropout_p > 0) && kernels::causal_attention_supported(q, k, v))
    return kernels::causal_attention(q, k, v);
  return causal_self_attention(q, k, v, dropout_p, training);
}
}  // namespace

AttentionFn find_attention(const std::string& name) {
  if (name == "naive") return &causal_self_attention;
  if (name == "fast") return &fast_causal_self_attention;
  VLM_FAIL("unknown attention implementation '", name, "' (known: naive, fast)");
}

}  // namespace vlm
