#include "vlm/models/gpt_checkpoint.h"

#include <algorithm>

#include "vlm/core/check.h"
#include "vlm/core/options.h"
#include "vlm/io/checkpoint.h"

namespace vlm {

namespace {
GPTCheckpointHeader header_of(const nlohmann::json& meta, const std::string& path) {
  VLM_CHECK(meta.contains("gpt") && meta.contains("tokenizer"), "'", path,
            "' is a gpt checkpoint without the model options or the tokenizer in its metadata");
  GPTCheckpointHeader h;
  h.options = options_from_json<GPTOptions>(meta["gpt"], path + ": gpt");
  h.options.validate();
  h.tokenizer = CharTokenizer::from_json(meta["tokenizer"]);
  VLM_CHECK(h.options.vocab_size() == h.tokenizer.vocab_size(), "'", path, "': the model has vocab_size ",
            h.options.vocab_size(), " but its tokenizer ", h.tokenizer.vocab_size(), " characters");
  if (meta.contains("format")) {
    h.format = SequenceFormat::from_json(meta["format"], path + ": format");
  } else {
    // Written before formats were stored (only the seed's had a checkpoint then), or a model whose block is too
    // short for the seed's lines: the seed's format, whose lines such a model cannot hold whole.
    const auto seed = SequenceFormat::seed();
    h.format = seed.with_block_size(std::max(h.options.block_size(), seed.max_line_length()));
    VLM_CHECK(h.format.vocabulary() == h.tokenizer.chars(), "'", path,
              "' stores no sequence format and its vocabulary is not the seed format's");
  }
  VLM_CHECK(h.format.vocabulary() == h.tokenizer.chars(), "'", path, "': the format's characters \"",
            h.format.vocabulary(), "\" are not the tokenizer's \"", h.tokenizer.chars(), "\"");
  h.meta = meta;
  return h;
}
}  // namespace

GPTCheckpointHeader read_gpt_checkpoint_header(const std::string& path) {
  CheckpointReader r(path, kGPTCheckpointKind, kGPTCheckpointVersion);
  return header_of(r.meta(), path);
}

LoadedGPT load_gpt_checkpoint(const std::string& path, c10::Device device) {
  CheckpointReader r(path, kGPTCheckpointKind, kGPTCheckpointVersion);
  auto h = header_of(r.meta(), path);
  LoadedGPT out;
  out.meta = std::move(h.meta);
  out.tokenizer = std::move(h.tokenizer);
  out.format = std::move(h.format);
  out.model = GPT(h.options);
  r.load_module("model", *out.model);
  out.model->to(device);
  out.model->eval();
  return out;
}

nlohmann::json gpt_checkpoint_meta(const GPT& model, const CharTokenizer& tokenizer, const SequenceFormat& format,
                                   int64_t iter) {
  return {{"gpt", options_to_json(model->options)},
          {"tokenizer", tokenizer.to_json()},
          {"format", format.to_json()},
          {"iter", iter}};
}

}  // namespace vlm
