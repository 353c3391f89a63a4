#include "vlm/kernels/nearest_code.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "kernels/cpu_kernels.h"
#include "vlm/core/check.h"

namespace vlm::kernels {

at::Tensor nearest_code_reference(const at::Tensor& x, const at::Tensor& codebook) {
  VLM_CHECK(x.dim() == 2 && codebook.dim() == 2 && x.size(1) == codebook.size(1),
            "nearest_code_reference: expected x (N, D) and codebook (K, D), got ", x.sizes(), " and ",
            codebook.sizes());
  auto distances = x.pow(2).sum(1, /*keepdim=*/true) + codebook.pow(2).sum(1) -
                   2 * at::matmul(x, codebook.t());  // (N, K)
  return distances.argmin(1);                        // (N)
}

bool nearest_code_supported(const at::Tensor& x, const at::Tensor& codebook) {
  return x.defined() && codebook.defined() && x.dim() == 2 && codebook.dim() == 2 &&
         x.scalar_type() == at::kFloat && codebook.scalar_type() == at::kFloat && x.device().is_cpu() &&
         codebook.device().is_cpu() && x.size(1) == codebook.size(1) && x.size(1) >= 1 && codebook.size(0) >= 1 &&
         codebook.size(0) <= std::numeric_limits<int32_t>::max();
}

at::Tensor nearest_code(const at::Tensor& x_in, const at::Tensor& codebook_in, const std::string& isa) {
  VLM_CHECK(nearest_code_supported(x_in, codebook_in),
            "nearest_code: expected float32 CPU tensors x (N, D) and codebook (K, D) with D >= 1 and K >= 1, got x ",
            x_in.sizes(), " ", x_in.dtype(), " on ", x_in.device(), " and codebook ", codebook_in.sizes(), " ",
            codebook_in.dtype(), " on ", codebook_in.device(), "; use nearest_code_reference otherwise");
  const auto& table = cpu::table_for(isa);
  at::NoGradGuard no_grad;  // indices carry no gradient; keep the codebook's -2c and |c|^2 off the tape
  const at::Tensor x = x_in.contiguous();                 // (N, D)
  const at::Tensor neg2c = codebook_in.contiguous() * -2;  // (K, D), exact
  const at::Tensor c2 = codebook_in.pow(2).sum(1).contiguous();  // (K)
  const int64_t n = x.size(0), d = x.size(1);
  at::Tensor out = at::empty({n}, x.options().dtype(at::kLong));  // (N)
  cpu::NearestCodeArgs args;
  args.x = x.data_ptr<float>();
  args.d = d;
  args.neg2c = neg2c.data_ptr<float>();
  args.c2 = c2.data_ptr<float>();
  args.k = codebook_in.size(0);
  args.out = out.data_ptr<int64_t>();
  // ~32k multiply-adds per chunk at least, so that small inputs do not pay for waking the pool.
  const int64_t grain = std::max<int64_t>(256, 32768 / std::max<int64_t>(1, args.k * d));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(cpu::nearest_code_scratch_floats(d));
    table.nearest_code(args, begin, end, scratch.data());
  });
  return out;
}

double nearest_code_tolerance(double x_norm2, double max_code_norm2, int64_t d) {
  return 8.0 * double(d + 2) * FLT_EPSILON * (x_norm2 + max_code_norm2);
}

NearestCodeCheck check_nearest_code(const at::Tensor& x_in, const at::Tensor& codebook_in,
                                    const at::Tensor& indices_in) {
  VLM_CHECK(x_in.dim() == 2 && codebook_in.dim() == 2 && x_in.size(1) == codebook_in.size(1),
            "check_nearest_code: expected x (N, D) and codebook (K, D), got ", x_in.sizes(), " and ",
            codebook_in.sizes());
  VLM_CHECK(indices_in.dim() == 1 && indices_in.size(0) == x_in.size(0),
            "check_nearest_code: expected indices (", x_in.size(0), "), got ", indices_in.sizes());
  const at::Tensor x = x_in.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor c = codebook_in.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor idx = indices_in.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = x.size(0), d = x.size(1), k = c.size(0);
  const double* xp = x.data_ptr<double>();
  const double* cp = c.data_ptr<double>();
  const int64_t* ip = idx.data_ptr<int64_t>();
  double max_c2 = 0;
  for (int64_t j = 0; j < k; ++j) {
    double s = 0;
    for (int64_t e = 0; e < d; ++e) s += cp[j * d + e] * cp[j * d + e];
    max_c2 = std::max(max_c2, s);
  }
  NearestCodeCheck result;
  result.rows = n;
  std::vector<double> dist(k);
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = xp + i * d;
    double x2 = 0;
    for (int64_t e = 0; e < d; ++e) x2 += xi[e] * xi[e];
    int64_t best = 0;
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t e = 0; e < d; ++e) s += (xi[e] - cp[j * d + e]) * (xi[e] - cp[j * d + e]);
      dist[j] = s;
      if (s < dist[best]) best = j;
    }
    double second = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < k; ++j)
      if (j != best) second = std::min(second, dist[j]);
    const double tol = nearest_code_tolerance(x2, max_c2, d);
    const bool near_tie = second - dist[best] <= tol;
    const int64_t got = ip[i];
    VLM_CHECK(got >= 0 && got < k, "check_nearest_code: row ", i, " has index ", got, " outside [0, ", k, ")");
    result.near_ties += near_tie;
    if (got == best) continue;
    ++result.differ;
    VLM_CHECK(near_tie && dist[got] - dist[best] <= tol, "check_nearest_code: row ", i, " picked code ", got,
              " at exact squared distance ", dist[got], " but code ", best, " is at ", dist[best],
              " (second best ", second, ", float rounding tolerance ", tol, "): not a near tie, so a wrong answer");
  }
  return result;
}

}  // namespace vlm::kernels
