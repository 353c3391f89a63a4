// Proves that an installed (or build-tree) vlm is usable: headers found, library linked, code runs.
#include <cstdio>

#include <ATen/ATen.h>

#include "vlm/vlm.h"

int main() {
  vlm::RuntimeOptions ro;
  ro.threads = 1;
  auto info = vlm::init_runtime(ro);
  vlm::Flags flags("vlm_consumer", "find_package(vlm) smoke test");
  int n = 3;
  flags.add("n", &n, "a number");
  flags.parse({"--n=5"});
  try {
    VLM_CHECK(n == 4, "expected ", 4);
    return 1;
  } catch (const vlm::Error&) {
  }
  vlm::LabeledImages d{at::zeros({6, 1, 2, 2}), at::arange(6)};
  auto s = vlm::split_train_validation(d);
  std::printf("vlm consumer OK: n=%d split=%lld/%lld %s\n", n, static_cast<long long>(s.train.size()),
              static_cast<long long>(s.validation.size()), info.summary().c_str());
  return (n == 5 && s.train.size() == 5) ? 0 : 1;
}
