#include "vlm/io/checkpoint.h"

#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

namespace vlm {

CheckpointWriter::CheckpointWriter(std::string kind, int64_t version, nlohmann::json meta)
    : kind_(std::move(kind)), version_(version), meta_(std::move(meta)) {
  VLM_CHECK(version_ >= 1, "checkpoint version must be >= 1");
}

CheckpointWriter& CheckpointWriter::add_module(const std::string& name, const torch::nn::Module& module) {
  torch::serialize::OutputArchive sub;
  module.save(sub);
  archive_.write(name, sub);
  return *this;
}

CheckpointWriter& CheckpointWriter::add_optimizer(const std::string& name, const torch::optim::Optimizer& opt) {
  torch::serialize::OutputArchive sub;
  opt.save(sub);
  archive_.write(name, sub);
  return *this;
}

CheckpointWriter& CheckpointWriter::add_tensor(const std::string& name, const at::Tensor& tensor) {
  archive_.write(name, tensor.detach().to(at::kCPU));
  return *this;
}

void CheckpointWriter::save(const std::string& path) {
  archive_.write("vlm_magic", c10::IValue(std::string(kCheckpointMagic)));
  archive_.write("vlm_kind", c10::IValue(kind_));
  archive_.write("vlm_version", c10::IValue(version_));
  archive_.write("vlm_meta", c10::IValue(meta_.dump()));
  write_atomically(path, [&](const std::string& tmp) {
    try {
      archive_.save_to(tmp);
    } catch (const c10::Error& e) {
      VLM_FAIL("cannot write checkpoint '", path, "': ", e.what_without_backtrace());
    }
  });
}

namespace {
std::string read_string(torch::serialize::InputArchive& a, const std::string& key, const std::string& path) {
  c10::IValue v;
  VLM_CHECK(a.try_read(key, v) && v.isString(), "'", path, "' is not a vlm checkpoint (no '", key, "' entry)");
  return v.toStringRef();
}
}  // namespace

CheckpointReader::CheckpointReader(const std::string& path, const std::string& expected_kind, int64_t max_version)
    : path_(path) {
  VLM_CHECK(std::filesystem::is_regular_file(path), "checkpoint '", path, "' does not exist");
  try {
    archive_.load_from(path, at::kCPU);
  } catch (const c10::Error& e) {
    VLM_FAIL("'", path, "' is not a readable vlm checkpoint (", e.what_without_backtrace(), ")");
  }
  VLM_CHECK(read_string(archive_, "vlm_magic", path) == kCheckpointMagic, "'", path, "' is not a vlm checkpoint");
  std::string kind = read_string(archive_, "vlm_kind", path);
  VLM_CHECK(expected_kind.empty() || kind == expected_kind, "'", path, "' holds a '", kind, "' checkpoint, expected '",
            expected_kind, "'");
  c10::IValue v;
  VLM_CHECK(archive_.try_read("vlm_version", v) && v.isInt(), "'", path, "' has no format version");
  version_ = v.toInt();
  VLM_CHECK(version_ >= 1 && version_ <= max_version, "'", path, "' is a '", kind, "' checkpoint of format version ",
            version_, ", this build reads versions 1..", max_version, ": rebuild vlm or retrain");
  try {
    meta_ = nlohmann::json::parse(read_string(archive_, "vlm_meta", path));
  } catch (const nlohmann::json::exception& e) {
    VLM_FAIL("'", path, "': corrupt metadata (", e.what(), ")");
  }
}

bool CheckpointReader::has(const std::string& name) {
  torch::serialize::InputArchive sub;
  if (archive_.try_read(name, sub)) return true;
  at::Tensor t;
  return archive_.try_read(name, t);
}

namespace {
// Module::save nests one archive per child module; walk it the same way to report a missing or mis-shaped tensor by
// its full name before Module::load would fail with a less helpful message.
void check_tensors(torch::serialize::InputArchive& archive, torch::nn::Module& module, const std::string& prefix,
                   const std::string& path) {
  auto check = [&](const std::string& key, const at::Tensor& expected, bool is_buffer) {
    at::Tensor t;
    VLM_CHECK(archive.try_read(key, t, is_buffer), "'", path, "': module '", prefix, "' lacks ",
              is_buffer ? "buffer" : "parameter", " '", prefix, ".", key, "'");
    VLM_CHECK(t.sizes() == expected.sizes(), "'", path, "': '", prefix, ".", key, "' has shape ", t.sizes(),
              ", the model built from the stored options expects ", expected.sizes());
  };
  for (const auto& p : module.named_parameters(/*recurse=*/false)) check(p.key(), p.value(), false);
  for (const auto& b : module.named_buffers(/*recurse=*/false)) check(b.key(), b.value(), true);
  for (const auto& c : module.named_children()) {
    torch::serialize::InputArchive sub;
    VLM_CHECK(archive.try_read(c.key(), sub), "'", path, "': module '", prefix, "' lacks submodule '", prefix, ".",
              c.key(), "'");
    check_tensors(sub, *c.value(), prefix + "." + c.key(), path);
  }
}
}  // namespace

void CheckpointReader::load_module(const std::string& name, torch::nn::Module& module) {
  torch::serialize::InputArchive sub;
  VLM_CHECK(archive_.try_read(name, sub), "'", path_, "' has no module '", name, "'");
  check_tensors(sub, module, name, path_);
  try {
    module.load(sub);
  } catch (const c10::Error& e) {
    VLM_FAIL("'", path_, "': cannot load module '", name, "': ", e.what_without_backtrace());
  }
}

void CheckpointReader::load_optimizer(const std::string& name, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive sub;
  VLM_CHECK(archive_.try_read(name, sub), "'", path_, "' has no optimizer state '", name, "'");
  try {
    optimizer.load(sub);
  } catch (const c10::Error& e) {
    VLM_FAIL("'", path_, "': cannot load optimizer '", name, "': ", e.what_without_backtrace());
  }
}

at::Tensor CheckpointReader::tensor(const std::string& name) {
  at::Tensor t;
  VLM_CHECK(archive_.try_read(name, t), "'", path_, "' has no tensor '", name, "'");
  return t;
}

nlohmann::json peek_checkpoint(const std::string& path) {
  CheckpointReader r(path, "", INT64_MAX);
  torch::serialize::InputArchive a;
  a.load_from(path, at::kCPU);
  return {{"kind", read_string(a, "vlm_kind", path)}, {"version", r.version()}, {"meta", r.meta()}};
}

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace vlm
