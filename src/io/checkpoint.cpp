#include "vlm/io/checkpoint.h"

#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include "io/archive_check.h"
#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/quote.h"

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
  // LibTorch's save_to(path) aborts the process on a short write (full disk, EFBIG) without naming the file:
  // serialise to memory instead, then write the bytes with the checked, atomic writer.
  std::string bytes;
  try {
    archive_.save_to([&bytes](const void* data, size_t n) -> size_t {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
  } catch (const c10::Error& e) {
    VLM_FAIL("cannot serialise checkpoint '", path, "': ", e.what_without_backtrace());
  }
  write_bytes_atomically(path, bytes);
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
  load(read_text_file(path), expected_kind, max_version);  // an OS error names the file and its cause
}

CheckpointReader::CheckpointReader(FromBytes, const std::string& bytes, const std::string& name,
                                   const std::string& expected_kind, int64_t max_version)
    : path_(name) {
  VLM_CHECK(!bytes.empty(), "'", name, "' is empty, not a vlm checkpoint");
  load(bytes, expected_kind, max_version);
}

void CheckpointReader::load(const std::string& bytes, const std::string& expected_kind, int64_t max_version) {
  check_archive_bounds(bytes, path_);
  try {
    archive_.load_from(bytes.data(), bytes.size(), at::kCPU);
  } catch (const c10::Error& e) {
    VLM_FAIL("'", path_, "' is not a readable vlm checkpoint (", e.what_without_backtrace(), ")");
  } catch (const std::exception& e) {
    VLM_FAIL("'", path_, "' is not a readable vlm checkpoint (", e.what(), ")");
  }
  open(expected_kind, max_version);
}

void CheckpointReader::open(const std::string& expected_kind, int64_t max_version) {
  const std::string& path = path_;
  VLM_CHECK(read_string(archive_, "vlm_magic", path) == kCheckpointMagic, "'", path, "' is not a vlm checkpoint");
  kind_ = read_string(archive_, "vlm_kind", path);
  VLM_CHECK(expected_kind.empty() || kind_ == expected_kind, "'", path, "' holds a ", quote_excerpt(kind_),
            " checkpoint, expected '", expected_kind, "'");
  c10::IValue v;
  VLM_CHECK(archive_.try_read("vlm_version", v) && v.isInt(), "'", path, "' has no format version");
  version_ = v.toInt();
  VLM_CHECK(version_ >= 1 && version_ <= max_version, "'", path, "' is a ", quote_excerpt(kind_),
            " checkpoint of format version ", version_, ", this build reads versions 1..", max_version,
            ": rebuild vlm or retrain");
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

void check_finite(const at::Tensor& tensor, const std::string& file, const std::string& what) {
  if (!tensor.defined() || !at::isFloatingType(tensor.scalar_type()) || tensor.numel() == 0) return;
  auto bad = at::logical_not(at::isfinite(tensor.detach())).reshape({-1});
  const int64_t count = bad.sum().item<int64_t>();
  if (count == 0) return;
  const int64_t first = bad.nonzero()[0][0].item<int64_t>();
  const double value = tensor.detach().reshape({-1})[first].item<double>();
  VLM_FAIL("'", file, "': ", what, " holds ", count, " non-finite value", count == 1 ? "" : "s", " of ",
           tensor.numel(), " (first at flat index ", first, ": ", value,
           "); the checkpoint is damaged or was saved after training diverged");
}

void check_module_finite(const torch::nn::Module& module, const std::string& file, const std::string& prefix) {
  for (const auto& p : module.named_parameters(/*recurse=*/true))
    check_finite(p.value(), file, "parameter '" + prefix + "." + p.key() + "'");
  for (const auto& b : module.named_buffers(/*recurse=*/true))
    check_finite(b.value(), file, "buffer '" + prefix + "." + b.key() + "'");
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
    check_finite(t, path, std::string(is_buffer ? "buffer" : "parameter") + " '" + prefix + "." + key + "'");
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

namespace {
// Every tensor in an archive whose layout we do not know (optimizer state), by key, recursively.
void check_archive_finite(torch::serialize::InputArchive& archive, const std::string& path, const std::string& prefix) {
  for (const auto& key : archive.keys()) {
    at::Tensor t;
    if (archive.try_read(key, t)) {
      check_finite(t, path, "'" + prefix + "." + key + "'");
      continue;
    }
    torch::serialize::InputArchive sub;
    if (archive.try_read(key, sub)) check_archive_finite(sub, path, prefix + "." + key);
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
  check_archive_finite(sub, path_, name);
  try {
    optimizer.load(sub);
  } catch (const c10::Error& e) {
    VLM_FAIL("'", path_, "': cannot load optimizer '", name, "': ", e.what_without_backtrace());
  }
}

at::Tensor CheckpointReader::tensor(const std::string& name) {
  at::Tensor t;
  VLM_CHECK(archive_.try_read(name, t), "'", path_, "' has no tensor '", name, "'");
  check_finite(t, path_, "tensor '" + name + "'");
  return t;
}

nlohmann::json peek_checkpoint(const std::string& path) {
  CheckpointReader r(path, "", INT64_MAX);
  return {{"kind", r.kind()}, {"version", r.version()}, {"meta", r.meta()}};
}

nlohmann::json peek_checkpoint_bytes(const std::string& bytes, const std::string& name) {
  CheckpointReader r(CheckpointReader::FromBytes{}, bytes, name, "", INT64_MAX);
  return {{"kind", r.kind()}, {"version", r.version()}, {"meta", r.meta()}};
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
