#pragma once
// A small reader of the Python pickles nanoGPT writes: `torch.save` zip archives (data.pkl + data/<key> storages)
// and plain pickles such as a data set's meta.pkl. Internal to the library (src/), used by io/nanogpt.cpp.
//
// Why not LibTorch's own unpickler: torch::pickle_load (1.13) turns every collections.OrderedDict into None, so a
// state_dict() (an OrderedDict) cannot be read, and it rejects the SETITEM opcode that Python writes for a dict
// with one item; torch::jit::unpickle accepts only protocol 2 (meta.pkl is protocol 4). This reader knows the
// opcodes of protocols 2-5, OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and typed storages;
// any other class becomes an opaque Object (so parts the importer never reads, e.g. optimizer state of an unusual
// optimizer, do not stop it). It never executes anything.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vlm::py {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Tensor, Global, Object };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                                    ///< String, Bytes, Global ("module.name"), Object (its class)
  std::vector<ValuePtr> items;                      ///< List, Tuple; Object: its constructor arguments
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;  ///< Dict, in insertion order
  at::Tensor tensor;                                ///< Tensor

  bool is(Kind k) const { return kind == k; }
  /// The value of a string key of a Dict, or nullptr.
  ValuePtr get(const std::string& key) const;
  /// Python's name of the kind ("dict", "int", "object torch.Foo", ...), for error messages.
  std::string type_name() const;
};

/// Loads a storage of a torch.save archive: (record key, dtype, number of elements) -> a 1-D tensor.
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

/// Reads a pickle from bytes; `what` names it in errors. Persistent ids (torch storages) need `storage`.
ValuePtr read_pickle(const std::string& bytes, const std::string& what, const StorageLoader& storage = nullptr);
/// Reads a whole pickle file (e.g. meta.pkl).
ValuePtr read_pickle_file(const std::string& path);
/// Reads a `torch.save` file (the zip format, PyTorch's default since 1.6). Throws vlm::Error naming the file when it
/// is not one (a legacy non-zip torch.save, a truncated file, anything else).
ValuePtr read_torch_save(const std::string& path);

}  // namespace vlm::py
