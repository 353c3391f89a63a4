#!/usr/bin/env bash
# Whole-process A/B timing: runs command A and command B in turn (A B A B ...), after one unmeasured warm-up pair,
# and prints each pair's wall seconds and the median of the pairwise ratios A/B. Pairing keeps the ratio meaningful
# when the machine's speed drifts during the call.
#   benchmarks/ab_wall.sh [-n PAIRS] 'COMMAND A' 'COMMAND B'
set -euo pipefail
pairs=3
if [ "${1:-}" = "-n" ]; then pairs=$2; shift 2; fi
[ $# -eq 2 ] || { echo "usage: benchmarks/ab_wall.sh [-n PAIRS] 'COMMAND A' 'COMMAND B'" >&2; exit 2; }
wall() { local t0 t1; t0=$(date +%s.%N); sh -c "$1" > /dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }
wall "$1" > /dev/null; wall "$2" > /dev/null  # warm-up pair
ratios=()
for ((i = 1; i <= pairs; ++i)); do
  a=$(wall "$1"); b=$(wall "$2")
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", a / b }')
  ratios+=("$r")
  printf 'pair %d: A %8.3f s  B %8.3f s  A/B %s\n' "$i" "$a" "$b" "$r"
done
printf 'median A/B wall ratio: %s\n' "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
