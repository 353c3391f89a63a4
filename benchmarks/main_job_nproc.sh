#!/usr/bin/env bash
# The main job in one process and in N data-parallel processes, one after the other on the same machine, into fresh
# run directories: wall time of each whole command (/usr/bin/time) and of each stage, and the headline figures.
#   benchmarks/main_job_nproc.sh [--nproc=2] [--out=runs/nproc] [extra vlm run flags ...]
# docs/benchmarks.md and docs/distributed.md hold the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
nproc=2 out=runs/nproc extra=()
for a in "$@"; do
  case "$a" in
    --nproc=*) nproc=${a#--nproc=} ;;
    --out=*) out=${a#--out=} ;;
    *) extra+=("$a") ;;
  esac
done
bin=${VLM_BUILD_DIR:-build}/examples/vlm
[ -x "$bin" ] || { echo "main_job_nproc.sh: $bin is missing: run scripts/setup.sh first" >&2; exit 1; }
rm -rf "$out/p1" "$out/p$nproc"
mkdir -p "$out"
for n in 1 "$nproc"; do
  echo "== vlm run --nproc=$n -> $out/p$n"
  /usr/bin/time -f "%e s wall, %U s user, %S s system" -o "$out/p$n.time" \
    "$bin" run --run_dir="$out/p$n" --nproc="$n" "${extra[@]}" > "$out/p$n.log" 2>&1
  cat "$out/p$n.time"
done
python3 - "$out" "$nproc" <<'EOF'
import json, sys
out, n = sys.argv[1], sys.argv[2]
rows = []
for p in ("1", n):
    d = f"{out}/p{p}"
    s = json.load(open(f"{d}/summary.json"))
    stages = {st: json.load(open(f"{d}/{st}/stage.json"))["seconds"] for st in ("data", "vqvae", "tokens", "classifier", "gpt", "eval")}
    wall = float(open(f"{d}.time").read().split()[0])
    rows.append((p, wall, stages, s))
print(f"{'processes':>9} {'wall s':>7} " + " ".join(f"{k:>10}" for k in rows[0][2]) +
      "  exact acc (+- s.e.)   graded  tokenizer MSE")
for p, wall, st, s in rows:
    print(f"{p:>9} {wall:7.1f} " + " ".join(f"{v:10.1f}" for v in st.values()) +
          f"  {s['test_accuracy']:.4f} +- {s['test_accuracy_std_error']:.4f}  {s['generation_graded_accuracy']:.3f}"
          f"   {s['vq_test_mse']:.5f}")
print(f"wall ratio 1 / {n} processes: {rows[0][1] / rows[1][1]:.3f}")
EOF
