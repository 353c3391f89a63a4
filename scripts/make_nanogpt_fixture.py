#!/usr/bin/env python3
"""Writes the nanoGPT interop fixture of tests/test_nanogpt.cpp with nanoGPT's own model.py.

    python3 scripts/make_nanogpt_fixture.py /path/to/nanoGPT/model.py tests/fixtures/nanogpt

model.py is nanoGPT's (github.com/karpathy/nanoGPT, not vendored here); any PyTorch that runs it will do (Debian's
python3-torch 1.13.1 made the committed files: it has no scaled_dot_product_attention, so model.py takes its
"slow attention" path and every attention layer carries its causal-mask buffer `attn.bias`, as real CPU checkpoints
of that era do).

A tiny GPT over the seed's 50-character vocabulary (block_size 32, the seed's; n_layer 2, n_head 2, n_embd 16) is
trained for a few AdamW steps on windows of the seed's sequences, so that biases and LayerNorm weights are no longer
0 and 1 (a swapped or dropped tensor then changes the logits) and the optimizer state is real. Each variant is saved
exactly as nanoGPT's train.py saves it, and its logits on fixed windows are saved beside it:

  meta.pkl                 data/<set>/prepare.py's pickle {'vocab_size', 'itos', 'stoi'} (default pickle protocol)
  bias/ckpt.pt             torch.save({'model', 'optimizer', 'model_args', 'iter_num', 'best_val_loss', 'config'})
                           of a model with bias=True
  bias/expected.pt         torch.save({'idx': (B, T) int64, 'logits': (B, T, V) float32,
                                       'prompt': (1, P) int64, 'greedy': (1, P + N) int64})
  compiled/ckpt.pt         bias=False (train.py's default), state-dict keys prefixed '_orig_mod.' as torch.compile
                           leaves them (train.py saves the compiled model's state dict; 1.13 has no torch.compile, so
                           the prefix is added to the keys by hand)
  compiled/expected.pt     as above

'logits' are model(idx, targets)[0], every position (without targets nanoGPT returns only the last one); 'greedy' is
model.generate(prompt, N, top_k=1): the prompt followed by N argmax tokens.
"""
import importlib.util
import os
import pickle
import sys

import torch

# The seed's own token file, in the shared/ folder beside the checkout; overridable with VLM_SEED_TRAIN.
SEED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "seed-tokens", "train.txt")


def load_model_py(path):
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_text(path):
    # Exactly what the seed's data/mnist_vlm/prepare.py does: every line stripped, all concatenated.
    with open(path, "r") as f:
        return "".join(line.strip() for line in f)


def make_variant(nanogpt, data, stoi, out_dir, bias, compiled, seed):
    torch.manual_seed(seed)
    model_args = dict(n_layer=2, n_head=2, n_embd=16, block_size=32, bias=bias, vocab_size=len(stoi), dropout=0.0)
    model = nanogpt.GPT(nanogpt.GPTConfig(**model_args))
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.99), device_type="cpu")

    ids = torch.tensor([stoi[c] for c in data[:200000]], dtype=torch.long)
    B, T = 16, model_args["block_size"]
    model.train()
    iters = 40
    for _ in range(iters):
        ix = torch.randint(len(ids) - T - 1, (B,))
        x = torch.stack([ids[i:i + T] for i in ix])          # (B, T)
        y = torch.stack([ids[i + 1:i + 1 + T] for i in ix])  # (B, T)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()

    # Two fixed windows of the seed's text (one at a sequence start, one mid-sequence) and a classification prompt.
    idx = torch.stack([ids[0:T], ids[1000 + 7:1000 + 7 + T]])  # (2, T)
    prompt_text = data[96:96 + 23]  # a whole "image:XXXXXXXX, number:" or "number:D, image:" prefix of the stream
    prompt = torch.tensor([[stoi[c] for c in prompt_text]], dtype=torch.long)  # (1, P)
    with torch.no_grad():
        logits, _ = model(idx, torch.zeros_like(idx))  # targets -> every position's logits (B, T, V)
        greedy = model.generate(prompt, T - prompt.size(1), top_k=1)  # (1, T)

    state = model.state_dict()
    if compiled:
        state = {"_orig_mod." + k: v for k, v in state.items()}
    # train.py's config: the globals of its configurator (here the seed's config/train_mnist_vlm.py values).
    config = dict(out_dir="out-mnist-vlm", eval_interval=500, log_interval=10, eval_iters=2, eval_only=False,
                  always_save_checkpoint=False, init_from="scratch", wandb_log=False, wandb_project="tiny_vlm",
                  wandb_run_name="", dataset="mnist_vlm", gradient_accumulation_steps=1, batch_size=B,
                  block_size=T, n_layer=model_args["n_layer"], n_head=model_args["n_head"],
                  n_embd=model_args["n_embd"], dropout=0.0, bias=bias, learning_rate=1e-2, max_iters=iters,
                  weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, decay_lr=False, warmup_iters=0,
                  lr_decay_iters=iters, min_lr=1e-3, backend="nccl", device="cpu", dtype="float32", compile=compiled)
    checkpoint = {
        "model": state,
        "optimizer": optimizer.state_dict(),
        "model_args": model_args,
        "iter_num": iters,
        "best_val_loss": loss.detach(),  # train.py stores estimate_loss()'s 0-dim tensor
        "config": config,
    }
    os.makedirs(out_dir, exist_ok=True)
    torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))
    torch.save({"idx": idx, "logits": logits.contiguous(), "prompt": prompt, "greedy": greedy},
               os.path.join(out_dir, "expected.pt"))
    print(f"{out_dir}: bias={bias} compiled={compiled} loss {loss.item():.4f} "
          f"|logits| max {logits.abs().max().item():.3f}, greedy {''.join(itos_of(stoi)[int(i)] for i in greedy[0])!r}")


def itos_of(stoi):
    return {i: ch for ch, i in stoi.items()}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    nanogpt = load_model_py(sys.argv[1])
    out = sys.argv[2]
    data = seed_text(os.environ.get("VLM_SEED_TRAIN", SEED_DATA))
    chars = sorted(list(set(data)))  # prepare.py's vocabulary
    stoi = {ch: i for i, ch in enumerate(chars)}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "meta.pkl"), "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos_of(stoi), "stoi": stoi}, f)
    print(f"vocabulary ({len(chars)}): {''.join(chars)!r}")
    make_variant(nanogpt, data, stoi, os.path.join(out, "bias"), bias=True, compiled=False, seed=1337)
    make_variant(nanogpt, data, stoi, os.path.join(out, "compiled"), bias=False, compiled=True, seed=1338)


if __name__ == "__main__":
    main()
