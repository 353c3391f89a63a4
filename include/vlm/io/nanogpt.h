#pragma once
// nanoGPT interop: our GPT's parameter names are nanoGPT's, so a nanoGPT `ckpt.pt` (what its train.py writes:
// torch.save({'model': state_dict, 'optimizer', 'model_args', 'iter_num', 'best_val_loss', 'config'})) becomes a vlm
// "gpt" checkpoint that load_gpt_checkpoint, the evaluator and the sampler read (docs/checkpoints.md).
//
//   CharTokenizer vocab = read_nanogpt_meta("data/mnist_vlm/meta.pkl");     // or nanogpt_tokenizer("...chars...")
//   import_nanogpt("out-mnist-vlm/ckpt.pt", vocab, "runs/imported/gpt.pt");
//   LoadedGPT gpt = load_gpt_checkpoint("runs/imported/gpt.pt");
//
// Key mapping: `transformer.X` -> `X`; `lm_head.weight` must equal `transformer.wte.weight` (tied) and is dropped;
// `transformer.h.N.attn.bias` (the causal-mask buffer of PyTorch < 2.0) is dropped; a `_orig_mod.` prefix
// (torch.compile) is removed. The vocabulary is not in ckpt.pt: it comes from the data set's meta.pkl or is given.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "vlm/models/gpt.h"
#include "vlm/text/char_tokenizer.h"
#include "vlm/text/sequence_format.h"

namespace vlm {

/// A nanoGPT checkpoint, read and mapped to our names.
struct NanoGPTCheckpoint {
  GPTOptions options;                        ///< from model_args
  std::map<std::string, at::Tensor> state;   ///< our parameter names (wte.weight, h.0.ln_1.weight, ...), float32
  int64_t iter_num = 0;
  double best_val_loss = 0;                  ///< NaN when absent
  bool compiled = false;                     ///< the keys carried torch.compile's `_orig_mod.` prefix
  nlohmann::json model_args, config;         ///< as stored (values that are not JSON scalars become strings)
};

/// Reads a nanoGPT ckpt.pt (a torch.save zip archive; LibTorch's own unpickler cannot read state dicts, see
/// src/io/py_pickle.h). Every defect is a vlm::Error naming the file: not a torch.save archive or not nanoGPT's
/// dict, missing model_args fields, missing or unexpected state-dict keys, a shape that model_args contradicts
/// (naming the key and both shapes), an untied lm_head.
NanoGPTCheckpoint read_nanogpt_checkpoint(const std::string& path);

/// Our GPT holding the checkpoint's weights (in eval mode).
GPT nanogpt_to_gpt(const NanoGPTCheckpoint& ckpt);

/// The tokenizer for a nanoGPT character vocabulary (the characters in id order).
CharTokenizer nanogpt_tokenizer(const std::string& chars);
/// The seed's sequence format whose vocabulary is `chars` (its image alphabet: the characters the templates do not
/// use), or nullopt when `chars` is not such a vocabulary.
std::optional<SequenceFormat> seed_format_of_vocabulary(const std::string& chars, int64_t block_size);

/// Reads a nanoGPT data set's meta.pkl ({'vocab_size', 'itos', 'stoi'}, written by data/<set>/prepare.py) into
/// nanogpt_tokenizer(itos in id order). Every character must be a single byte.
CharTokenizer read_nanogpt_meta(const std::string& path);

/// Reads `ckpt_path`, checks that `vocab` has model_args.vocab_size characters and writes a vlm "gpt" checkpoint
/// (version 1: meta {"gpt", "tokenizer", "format", "iter", "best_val_loss", "imported_from"}, module "model") to
/// `out_path`. The format is `format` (null: the seed's, which the vocabulary must then be). Returns the checkpoint.
NanoGPTCheckpoint import_nanogpt(const std::string& ckpt_path, const CharTokenizer& vocab,
                                 const std::string& out_path, const SequenceFormat* format = nullptr);

}  // namespace vlm
