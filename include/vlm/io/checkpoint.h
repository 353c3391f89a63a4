#pragma once
// The one checkpoint container of vlm (docs/checkpoints.md): a LibTorch archive holding
//   "vlm_magic"      = "vlm-checkpoint"
//   "vlm_kind"       = what it holds ("vqvae", "gpt", "classifier", ...), checked on load
//   "vlm_version"    = the kind's format version, checked on load (newer than the reader knows = clear error)
//   "vlm_meta"       = a JSON document: the module options, tokenizer, step, metrics, ... (whatever the kind needs)
//   modules, optimizers and tensors under their names.
// Loading rebuilds a module from the options in `meta` first, then loads its weights by name.
// Saving serialises to memory, writes `<path>.tmp.<pid>` (write + fsync) and renames it into place, so a crash or a
// full disk never leaves a half-written checkpoint: a failed write is a vlm::Error naming the file and the OS cause,
// the temporary is removed and the previous checkpoint stays as it was.
// Loading treats the file as untrusted: magic, kind and version are checked first, every floating-point tensor that
// load_module / tensor() hands out is checked to be finite (NaN/Inf weights are an error naming the file and the
// tensor), and shapes are checked against the module built from the stored options.
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
  /// The same from the bytes of a checkpoint file in memory; `name` stands for the file in messages.
  struct FromBytes {};
  CheckpointReader(FromBytes, const std::string& bytes, const std::string& name, const std::string& expected_kind,
                   int64_t max_version);
  const std::string& kind() const { return kind_; }
  const nlohmann::json& meta() const { return meta_; }
  int64_t version() const { return version_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& name);
  /// Loads weights into a module built with the right options; a missing, mis-shaped or non-finite (NaN/Inf) tensor
  /// is an error naming the file and the tensor's full name.
  void load_module(const std::string& name, torch::nn::Module& module);
  /// Loads optimizer state; non-finite floating state (e.g. Adam moments) is an error naming the file.
  void load_optimizer(const std::string& name, torch::optim::Optimizer& optimizer);
  /// A stored tensor; a floating tensor must be finite.
  at::Tensor tensor(const std::string& name);

 private:
  /// Checks the archive's bytes, hands them to LibTorch, then open().
  void load(const std::string& bytes, const std::string& expected_kind, int64_t max_version);
  void open(const std::string& expected_kind, int64_t max_version);
  std::string path_, kind_;
  int64_t version_ = 0;
  nlohmann::json meta_;
  torch::serialize::InputArchive archive_;
};

/// Reads only the header of a checkpoint: {"kind", "version", "meta"}; throws if it is not a vlm checkpoint.
nlohmann::json peek_checkpoint(const std::string& path);
/// The same from the bytes of a checkpoint file; `name` stands for the file in messages.
nlohmann::json peek_checkpoint_bytes(const std::string& bytes, const std::string& name);

/// Throws vlm::Error naming `file` and `what` when a floating-point tensor holds NaN or Inf (how many, the first
/// flat index and its value). Integer and bool tensors always pass.
void check_finite(const at::Tensor& tensor, const std::string& file, const std::string& what);

/// Checks every floating parameter and buffer of `module` (recursively) with check_finite, naming each by its full
/// name (`prefix`.a.weight). For weights that did not come from CheckpointReader::load_module, e.g. after training.
void check_module_finite(const torch::nn::Module& module, const std::string& file, const std::string& prefix);

/// The state of LibTorch's default CPU generator, as a tensor to store in a checkpoint, and back.
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state);

}  // namespace vlm
