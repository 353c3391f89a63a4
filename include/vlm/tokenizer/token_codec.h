#pragma once
// TokenCodec: the one interface a modality implements to be written into sequences. A codec turns items (images,
// signals, ...) into strings of letters of its alphabet and back, saves and loads its own checkpoint, and may draw
// its items. ImageTokenCodec (a trained VQ-VAE) is the library's; examples/custom_codec defines another outside it.
//
//   std::unique_ptr<TokenCodec> codec = vlm::load_codec("runs/mnist/vqvae/vqvae.pt");   // any registered kind
//   std::vector<std::string> text = codec->encode(items);     // (N, ...) -> N strings of codec->alphabet()
//   at::Tensor back = codec->decode(text);                    // -> (N, ...) on the CPU
//   FieldSpec f = codec->field("image");                     // the codec field of a SequenceFormat
//
// A codec defined elsewhere registers a loader for its checkpoint kind once (a static CodecRegistration in its own
// file is enough); load_codec() reads the kind from the checkpoint's header (vlm/io/checkpoint.h) and dispatches.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/text/sequence_format.h"

namespace vlm {

class TokenCodec {
 public:
  virtual ~TokenCodec() = default;

  /// The kind its checkpoints are stored under, and the registry's name for it ("vqvae").
  virtual std::string kind() const = 0;
  /// The letters it writes; code k is alphabet()[k].
  virtual std::string alphabet() const = 0;
  /// Letters per item; 0 = variable length (then max_length() bounds it).
  virtual int64_t length() const = 0;
  virtual int64_t max_length() const { return length(); }

  /// items (N, ...) on any device -> N strings of the alphabet.
  virtual std::vector<std::string> encode(const at::Tensor& items) const = 0;
  /// N strings -> items (N, ...) on the CPU; a bad letter or length is a vlm::Error naming the string.
  virtual at::Tensor decode(const std::vector<std::string>& texts) const = 0;

  /// Writes a checkpoint that load_codec() reads back (atomically). `extra_meta` is stored alongside.
  virtual void save(const std::string& path, const nlohmann::json& extra_meta = nlohmann::json::object()) const = 0;

  /// Optional: the decoded items as a PNG grid, one grid row per inner vector ("" = an empty tile). Returns false
  /// when the modality has no picture (the default).
  virtual bool write_grid_png(const std::string& path, const std::vector<std::vector<std::string>>& rows,
                              int64_t columns) const;

  /// The codec field `name` of a SequenceFormat that holds this codec's strings.
  FieldSpec field(const std::string& name) const;
  /// Throws (starting with `where`) unless `field` holds this codec's strings: its alphabet and lengths.
  void check_field(const FieldSpec& field, const std::string& where) const;
};

/// Builds a codec from a checkpoint of its kind on `device`.
using CodecLoader = std::function<std::unique_ptr<TokenCodec>(const std::string& path, c10::Device device)>;

/// Registers the loader of a checkpoint kind; registering a kind twice is an error.
void register_codec(const std::string& kind, CodecLoader loader);
/// The kinds that load_codec() knows ("vqvae" always).
std::vector<std::string> registered_codecs();
/// Loads any registered codec from its checkpoint; an unknown kind is an error listing the known ones.
std::unique_ptr<TokenCodec> load_codec(const std::string& path, c10::Device device = c10::kCPU);

/// Registers at static-initialisation time: `static vlm::CodecRegistration reg("mykind", &MyCodec::load);`
struct CodecRegistration {
  CodecRegistration(const std::string& kind, CodecLoader loader) { register_codec(kind, std::move(loader)); }
};

}  // namespace vlm
