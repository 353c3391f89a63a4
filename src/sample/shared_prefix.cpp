#include "vlm/sample/shared_prefix.h"

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

at::Tensor forward_last_shared_prefix(GPT& model, const at::Tensor& idx, GPTImpl::KVCache& cache) {
  VLM_CHECK(cache.length == 0, "forward_last_shared_prefix needs an empty cache, this one holds ", cache.length,
            " tokens");
  const int64_t B = idx.size(0), T = idx.size(1);
  // Length of the prefix every row shares with row 0.
  const int64_t P = B > 1 ? idx.eq(idx.narrow(0, 0, 1)).all(0).to(at::kLong).cumprod(0).sum().item<int64_t>() : 0;
  if (P == 0) return model->forward(idx, &cache, /*last_only=*/true).select(1, 0);  // (B, V)
  at::Tensor logits = model->forward(idx.narrow(0, 0, 1).narrow(1, 0, P), &cache, true).select(1, 0);  // (1, V)
  for (auto& layer : cache.layers) {
    layer.k = layer.k.expand({B, -1, -1, -1});  // (B, nh, P, hs), a view
    layer.v = layer.v.expand({B, -1, -1, -1});
  }
  if (P == T) return logits.expand({B, -1});  // identical rows
  return model->forward(idx.narrow(1, P, T - P), &cache, true).select(1, 0);  // (B, V)
}

}  // namespace vlm
