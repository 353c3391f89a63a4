#include "vlm/data/idx.h"

#include <ATen/ATen.h>

#include "vlm/core/check.h"

namespace vlm {

at::Tensor idx_to_image_tensor(const IdxArray& images, const std::string& source) {
  VLM_CHECK(images.dims.size() == 3 || images.dims.size() == 4, source, ": expected images of rank 3 [N,H,W] or 4",
            " [N,C,H,W], got rank ", images.dims.size());
  std::vector<int64_t> shape = images.dims;
  if (shape.size() == 3) shape.insert(shape.begin() + 1, 1);
  auto bytes = at::from_blob(const_cast<uint8_t*>(images.data.data()), shape, at::kByte);
  return bytes.to(at::kFloat).div_(255.0f);  // copies out of the vector
}

at::Tensor idx_to_label_tensor(const IdxArray& labels, const std::string& source) {
  VLM_CHECK(labels.dims.size() == 1, source, ": expected labels of rank 1 [N], got rank ", labels.dims.size());
  auto bytes = at::from_blob(const_cast<uint8_t*>(labels.data.data()), {labels.dims[0]}, at::kByte);
  return bytes.to(at::kLong);
}

IdxArray image_tensor_to_idx(const at::Tensor& images) {
  VLM_CHECK(images.dim() == 4 && images.size(1) == 1, "image_tensor_to_idx: expected [N,1,H,W], got ",
            images.sizes());
  auto b = images.detach().to(at::kCPU).mul(255.0f).round_().clamp_(0, 255).to(at::kByte).contiguous();
  IdxArray out;
  out.dims = {images.size(0), images.size(2), images.size(3)};
  out.data.assign(b.data_ptr<uint8_t>(), b.data_ptr<uint8_t>() + b.numel());
  return out;
}

}  // namespace vlm
