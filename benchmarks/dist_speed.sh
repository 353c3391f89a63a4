#!/usr/bin/env bash
# Data-parallel speed of the GPT trainer: the same training (global batch, seed, data) in one process with the best
# single-process thread setting, in one process with one thread, and in N processes x 1 thread (vlm launch, Gloo on
# 127.0.0.1), in one run, as ms/iteration and the ratio to the single process. docs/benchmarks.md holds the figures.
#   benchmarks/dist_speed.sh [--iters=200] [--nproc=2] [extra train_gpt flags ...]
# The token files are the seed's (../shared/seed-tokens) when present, else runs/mnist/tokens (scripts/run_mnist.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
iters=200 nproc=2 extra=()
for a in "$@"; do
  case "$a" in
    --iters=*) iters=${a#--iters=} ;;
    --nproc=*) nproc=${a#--nproc=} ;;
    *) extra+=("$a") ;;
  esac
done
bin=${VLM_BUILD_DIR:-build}/examples
tok=../shared/seed-tokens
[ -f "$tok/train.txt" ] || tok=runs/mnist/tokens
[ -f "$tok/train.txt" ] || { echo "dist_speed.sh: no token files (run scripts/run_mnist.sh first)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--preset=cpu --train_text="$tok/train.txt" --val_text="$tok/valid.txt" --max_iters="$iters"
        --lr_decay_iters="$iters" --eval_interval=0 --eval_classify=0 --final_classify=0 --eval_iters=1
        --checkpoint_interval=0 --log_interval="$iters" "${extra[@]}")
ms() { sed -n 's/^done: .*(\([0-9.]*\) ms\/iter.*/\1/p' "$1"; }
"$bin/train_gpt" "${common[@]}" --threads=0 --out_dir="$out/one" > "$out/one.log" 2>&1
"$bin/train_gpt" "${common[@]}" --threads=1 --out_dir="$out/one1" > "$out/one1.log" 2>&1
"$bin/vlm" launch --nproc="$nproc" -- "$bin/train_gpt" "${common[@]}" --threads=1 --out_dir="$out/dp" \
  > "$out/dp.log" 2>&1
a=$(ms "$out/one.log") b=$(ms "$out/one1.log") c=$(ms "$out/dp.log")
printf 'GPT --preset=cpu, global batch 64, %s iterations\n' "$iters"
printf '  1 process, all cores (OpenBLAS)  %8.2f ms/iter\n' "$a"
printf '  1 process, 1 thread              %8.2f ms/iter\n' "$b"
best=$(awk -v a="$a" -v b="$b" 'BEGIN { print (a < b ? a : b) }')
printf '  %s processes x 1 thread (Gloo)    %8.2f ms/iter   speed-up %.2fx over the best single process\n' \
  "$nproc" "$c" "$(awk -v x="$best" -v y="$c" 'BEGIN { print x / y }')"
grep -h "^per iteration" "$out/dp.log" | sed "s/^/  rank 0 of the data-parallel run: /"
