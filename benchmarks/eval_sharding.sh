#!/usr/bin/env bash
# Is the main job's evaluation faster sharded across N ranks (one thread each; the passes over the test set split,
# the rest on rank 0 with all cores, what `vlm run --nproc=N` does) or on one process with all the cores (what
# `--nproc=1` does)? Redoes the eval stage of a copy of a finished run both ways, in turns (A B A B ...), and prints
# each turn's stage seconds (eval/stage.json: the stage alone, without process start and data loading), the whole
# command's wall seconds, and the ratio. docs/distributed.md holds the figures.
#   benchmarks/eval_sharding.sh [--run_dir=runs/mnist] [--nproc=2] [--turns=3]
set -euo pipefail
cd "$(dirname "$0")/.."
run=runs/mnist nproc=2 turns=3
for a in "$@"; do
  case "$a" in
    --run_dir=*) run=${a#--run_dir=} ;;
    --nproc=*) nproc=${a#--nproc=} ;;
    --turns=*) turns=${a#--turns=} ;;
    *) echo "eval_sharding.sh: unknown argument '$a' (expected --run_dir=, --nproc= or --turns=)" >&2; exit 2 ;;
  esac
done
bin=${VLM_BUILD_DIR:-build}/examples/vlm
[ -x "$bin" ] || { echo "eval_sharding.sh: $bin is missing: run scripts/setup.sh first" >&2; exit 1; }
[ -f "$run/summary.json" ] || { echo "eval_sharding.sh: '$run' is not a finished run (no summary.json)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cp -r "$run" "$out/run"  # the run itself is left as it is
# The run's own resolved configuration, key by key, so that only the eval stage is redone.
mapfile -t config < <(python3 - "$run/config.json" <<'EOF'
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    if k in ("run_dir", "force", "force_stages", "runtime", "nproc") or isinstance(v, (dict, list)):
        continue
    print(f"--{k}={str(v).lower() if isinstance(v, bool) else v}")
EOF
)
stage_seconds() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$out/run/eval/stage.json"; }
now() { date +%s.%N; }
printf 'eval stage of a copy of %s, in turns: A = 1 process x all cores, B = %d processes (sharded)\n' "$run" "$nproc"
ratios=()
for t in $(seq "$turns"); do
  declare -A stage wall
  for n in 1 "$nproc"; do
    t0=$(now)
    "$bin" run "${config[@]}" --run_dir="$out/run" --nproc="$n" --force_stages=eval > "$out/log.$t.$n" 2>&1 ||
      { cat "$out/log.$t.$n" >&2; exit 1; }
    ran=$(grep -c '^\[[a-z]*\] running' "$out/log.$t.$n" || true)
    [ "$ran" = 1 ] || { grep '^\[' "$out/log.$t.$n" >&2; echo "eval_sharding.sh: stages other than eval ran" >&2; exit 1; }
    wall[$n]=$(awk -v x="$t0" -v y="$(now)" 'BEGIN { print y - x }')
    stage[$n]=$(stage_seconds)
  done
  ratios+=("$(awk -v a="${stage[1]}" -v b="${stage[$nproc]}" 'BEGIN { printf "%.3f", a / b }')")
  printf '  turn %d: stage A %6.1f s  B %6.1f s  (whole command %6.1f s and %6.1f s)  A / B %s\n' "$t" \
    "${stage[1]}" "${stage[$nproc]}" "${wall[1]}" "${wall[$nproc]}" "${ratios[-1]}"
done
printf 'stage A / B per turn: %s (> 1: sharded is faster)\n' "${ratios[*]}"
