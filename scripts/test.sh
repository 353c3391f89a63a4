#!/usr/bin/env bash
# The test command: set up what is missing (packages, MNIST, build), then run the whole suite with ctest.
#   scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
