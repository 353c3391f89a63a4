#pragma once
// The one checkpoint container of vlm (docs/checkpoints.md): a LibTorch archive holding
//   "vlm_magic"      = "vlm-checkpoint"
//   "vlm_kind"       = what it holds ("vqvae", "gpt", "classifier", ...), checked on load
//   "vlm_version"    = the kind's format version, checked on load (newer than the reader knows = clear error)
//   "vlm_meta"       = a JSON document: the module options, tokenizer, step, metrics, ... (whatever the kind needs)
//   modules, optimizers and tensors under their names.
// Loading rebuilds a module from the options in `meta` first, then loads its weights by name.
// Saving writes `<path>.tmp.<pid>` and renames it into place, so a crash never leaves a half-written checkpoint.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

namespace vlm {

inline constexpr const char* kCheckpointMagic = "vlm-checkpoint";

class CheckpointWriter {
 public:
  CheckpointWriter(std::string kind, int64_t version, nlohmann::json meta = nlohmann::json::object());
  nlohmann::json& meta() { return meta_; }
  CheckpointWriter& add_module(const std::string& name, const torch::nn::Module& module);
  CheckpointWriter& add_optimizer(const std::string& name, const torch::optim::Optimizer& optimizer);
  CheckpointWriter& add_tensor(const std::string& name, const at::Tensor& tensor);
  /// Serialises everything to `path` atomically.
  void save(const std::string& path);

 private:
  std::string kind_;
  int64_t version_;
  nlohmann::json meta_;
  torch::serialize::OutputArchive archive_;
};

class CheckpointReader {
 public:
  /// Opens `path` and checks magic, kind and version (1..max_version). Throws vlm::Error naming the file.
  CheckpointReader(const std::string& path, const std::string& expected_kind, int64_t max_version);
  const nlohmann::json& meta() const { return meta_; }
  int64_t version() const { return version_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& name);
  /// Loads weights into a module built with the right options; a missing or mis-shaped tensor is an error.
  void load_module(const std::string& name, torch::nn::Module& module);
  void load_optimizer(const std::string& name, torch::optim::Optimizer& optimizer);
  at::Tensor tensor(const std::string& name);

 private:
  std::string path_;
  int64_t version_ = 0;
  nlohmann::json meta_;
  torch::serialize::InputArchive archive_;
};

/// Reads only the header of a checkpoint: {"kind", "version", "meta"}; throws if it is not a vlm checkpoint.
nlohmann::json peek_checkpoint(const std::string& path);

/// The state of LibTorch's default CPU generator, as a tensor to store in a checkpoint, and back.
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state);

}  // namespace vlm
