#!/usr/bin/env bash
# Load test of `vlm serve` with wrk (Debian's, an epoll C client: one thread, so it takes little of the 2 cores):
# classify and generate (n=16) at 1, 8 and 64 concurrent connections, dynamic batching on (--max_batch=64) and off
# (--max_batch=1), in one run. Prints a markdown table (docs/benchmarks.md) with requests/s, p50/p99 latency, the CPU
# the client and the server took (cores = CPU seconds / wall seconds), and errors (non-2xx answers, socket errors).
#   benchmarks/serve_bench.sh [--run_dir=runs/mnist] [--vlm=build/examples/vlm] [--data_dir=data/mnist]
#                             [--seconds=10] [--clients="1 8 64"] [--server_args="--threads=0"]
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir=runs/mnist vlm=build/examples/vlm data_dir=data/mnist seconds=10 clients="1 8 64" server_args=""
for arg in "$@"; do
  case "$arg" in
    --run_dir=*) run_dir=${arg#*=} ;;
    --vlm=*) vlm=${arg#*=} ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --seconds=*) seconds=${arg#*=} ;;
    --clients=*) clients=${arg#*=} ;;
    --server_args=*) server_args=${arg#*=} ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "serve_bench.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "serve_bench.sh: wrk is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$vlm" ] || { echo "serve_bench.sh: no vlm binary at $vlm" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The classify body: MNIST test image 0 as the tokenizer sees it (its letters decoded back), a 28x28 grayscale PNG.
letters=$("$vlm" encode --run_dir="$run_dir" --data_dir="$data_dir" --index=0 | tail -n1)
"$vlm" decode --run_dir="$run_dir" --tokens="$letters" --out="$work/digit.png" >/dev/null
cat >"$work/classify.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = io.open("$work/digit.png", "rb")
wrk.body = f:read("*all")
f:close()
EOF
cat >"$work/generate.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"label": "7", "n": 16, "temperature": 0.8, "top_k": 0, "seed": 1}'
EOF

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of a process

start_server() {  # $1: extra flags
  # shellcheck disable=SC2086
  "$vlm" serve --run_dir="$run_dir" --port=0 $server_args $1 >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/server.log")
    [ -n "$port" ] && return
    sleep 0.1
  done
  echo "serve_bench.sh: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "serve_bench.sh: the server did not exit cleanly" >&2; exit 1; }
  server_pid=""
}

# One wrk run; prints a table row.
measure() {  # $1 mode, $2 endpoint, $3 clients
  local before after out client_cpu
  before=$(cpu_ticks "$server_pid")
  TIMEFORMAT='%U %S'
  { time wrk -t1 -c"$3" -d"${seconds}s" --timeout 10s --latency -s "$work/$2.lua" "http://127.0.0.1:$port/api/$2" \
      >"$work/wrk.txt" 2>&1; } 2>"$work/time.txt"
  after=$(cpu_ticks "$server_pid")
  out=$(cat "$work/wrk.txt")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  # non-2xx answers plus socket errors (connect, read, write, timeout)
  errors=$(awk '/Non-2xx/ {n += $5} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
  client_cpu=$(awk -v s="$seconds" '{printf "%.2f", ($1 + $2) / s}' "$work/time.txt")
  local server_cpu
  server_cpu=$(awk -v a="$after" -v b="$before" -v t="$ticks" -v s="$seconds" 'BEGIN {printf "%.2f", (a - b) / t / s}')
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$mode_name" "$3" "$rps" "$p50" "$p99" \
    "$client_cpu" "$server_cpu" "$errors"
}

echo "vlm serve load test: $(date -u +%FT%TZ), $(nproc) cores, run $run_dir, ${seconds}s per row, wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server flags: $server_args; body: classify = a 28x28 PNG, generate = {label 7, n 16, temperature 0.8}"
echo
echo "| endpoint | batching | clients | requests/s | p50 | p99 | client cores | server cores | errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in on off; do
  if [ "$mode" = on ]; then flags="--max_batch=64"; mode_name="on (max_batch 64)"; else flags="--max_batch=1"; mode_name="off"; fi
  start_server "$flags"
  wrk -t1 -c8 -d2s -s "$work/classify.lua" "http://127.0.0.1:$port/api/classify" >/dev/null  # warm-up
  wrk -t1 -c8 -d2s -s "$work/generate.lua" "http://127.0.0.1:$port/api/generate" >/dev/null
  for endpoint in classify generate; do
    for c in $clients; do measure "$mode" "$endpoint" "$c"; done
  done
  stop_server
done
