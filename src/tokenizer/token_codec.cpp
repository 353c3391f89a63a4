#include "vlm/tokenizer/token_codec.h"

#include <map>
#include <mutex>

#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace vlm {

namespace {
struct Registry {
  std::mutex mutex;
  std::map<std::string, CodecLoader> loaders;
};
// Built in here rather than by a static object in image_token_codec.cpp: a static library drops object files that
// nothing references, and with them their registrations.
Registry& registry() {
  static Registry r;
  static std::once_flag builtins;
  std::call_once(builtins, [] {
    r.loaders[kTokenizerCheckpointKind] = [](const std::string& path, c10::Device device) {
      return std::make_unique<ImageTokenCodec>(ImageTokenCodec::load(path, device));
    };
  });
  return r;
}
}  // namespace

bool TokenCodec::write_grid_png(const std::string&, const std::vector<std::vector<std::string>>&, int64_t) const {
  return false;
}

FieldSpec TokenCodec::field(const std::string& name) const {
  FieldSpec f = FieldSpec::codec_field(name, alphabet(), length(), kind());
  if (length() == 0) f.max_length = max_length();
  return f;
}

void TokenCodec::check_field(const FieldSpec& f, const std::string& where) const {
  const FieldSpec mine = field(f.name);
  VLM_CHECK(f.alphabet == mine.alphabet && f.length == mine.length && f.max_length == mine.max_length, where,
            ": the format's field '", f.name, "' holds ", f.length, " letters of \"", f.alphabet, "\", the ", kind(),
            " codec writes ", length(), " of \"", alphabet(), "\"");
}

void register_codec(const std::string& kind, CodecLoader loader) {
  VLM_CHECK(!kind.empty() && loader, "register_codec: a codec needs a kind and a loader");
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  VLM_CHECK(r.loaders.emplace(kind, std::move(loader)).second, "register_codec: codec kind '", kind,
            "' is registered twice");
}

std::vector<std::string> registered_codecs() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> out;
  for (const auto& [kind, loader] : r.loaders) out.push_back(kind);
  return out;
}

std::unique_ptr<TokenCodec> load_codec(const std::string& path, c10::Device device) {
  const std::string kind = peek_checkpoint(path).at("kind").get<std::string>();
  CodecLoader loader;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.loaders.find(kind);
    if (it != r.loaders.end()) loader = it->second;
  }
  if (!loader) {
    std::string known;
    for (const auto& k : registered_codecs()) known += (known.empty() ? "" : ", ") + k;
    VLM_FAIL("'", path, "' is a checkpoint of kind '", kind, "', which is not a registered codec (known: ", known,
             "); a codec defined outside the library registers itself with vlm::CodecRegistration");
  }
  return loader(path, device);
}

}  // namespace vlm
