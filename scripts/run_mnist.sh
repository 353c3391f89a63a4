#!/usr/bin/env bash
# The main job: raw MNIST -> VQ-VAE -> tokens -> GPT -> evaluation -> report, into runs/<name>/ (resumable).
#   scripts/run_mnist.sh [--preset=default|seed|tiny] [--run_dir=DIR] [--data_dir=DIR] [--key=value ...]
# Every flag of `build/examples/vlm run --help` is accepted; a finished stage is skipped on a re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${VLM_BUILD_DIR:-build}/examples/vlm
if [ ! -x "$bin" ]; then
  echo "run_mnist.sh: $bin is missing: run scripts/setup.sh first (it installs, fetches MNIST and builds)" >&2
  exit 1
fi
exec "$bin" run "$@"
