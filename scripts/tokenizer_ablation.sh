#!/usr/bin/env bash
# The unsupervised tokenizer's ablation: trains the conv VQ-VAE with the main job's schedule (8 epochs) once per
# setting below, none of them reading a label, and measures each on the validation split (train[50000:60000]; the
# settings are chosen on it) with the probe ladder, plus its test reconstruction MSE. Two settings train at a time,
# one thread each (a 2-core machine: about 6-8 minutes a pair). docs/results.md holds the table.
#   scripts/tokenizer_ablation.sh [--out=runs/ablation] [--only=NAME[,NAME...]]
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/ablation only=
for a in "$@"; do
  case "$a" in
    --out=*) out=${a#--out=} ;;
    --only=*) only=,${a#--only=}, ;;
    *) echo "tokenizer_ablation.sh: unknown argument '$a' (expected --out= or --only=)" >&2; exit 2 ;;
  esac
done
bin=${VLM_BUILD_DIR:-build}/examples
[ -x "$bin/train_vqvae" ] || { echo "tokenizer_ablation.sh: $bin/train_vqvae is missing: run scripts/setup.sh first" >&2; exit 1; }
still="--rotate=0 --scale=0 --shift=0 --shear=0 --elastic=0"  # no random warp
# name | flags after --variant=conv --max_epochs=8 --label_weight=0 (the default augmentation unless `still`)
settings=(
  "reconstruction|"
  "iic|--mi_weight=0.1"
  "iic_w0.02|--mi_weight=0.02"
  "iic_invariant_recon|--mi_weight=0.05 --invariant_recon=true"
  "iic_invariance|--mi_weight=0.02 --invariance_weight=0.05"
  "iic_c50|--mi_weight=0.05 --mi_clusters=50"
  "iic_neighbours|--mi_weight=0.02 --mi_neighbours=5"
  "iic_c50_neighbours|--mi_weight=0.05 --mi_clusters=50 --mi_neighbours=5"
  "iic_c50_neighbours_still|--mi_weight=0.05 --mi_clusters=50 --mi_neighbours=5 $still"
  "iic_c50_neighbours_mild|--mi_weight=0.05 --mi_clusters=50 --mi_neighbours=5 --rotate=5 --shift=1 --scale=0.05 --shear=5 --elastic=1"
  "iic_c50_neighbours_mlp_head|--mi_weight=0.05 --mi_clusters=50 --mi_neighbours=5 --mi_hidden=256"
  "iic_c50_neighbours_w0.01|--mi_weight=0.01 --mi_clusters=50 --mi_neighbours=5"
  "iic_c50_neighbours_first2|--mi_weight=0.05 --mi_clusters=50 --mi_neighbours=5 --mi_positions=2"
)
mkdir -p "$out"
train() {  # name flags...
  local name=$1; shift
  "$bin/train_vqvae" --variant=conv --max_epochs=8 --label_weight=0 --threads=1 --quiet \
    --latent_points=200 --out_dir="$out/$name" "$@" > "$out/$name.log" 2>&1
  "$bin/probe_tokens" --checkpoint="$out/$name/vqvae.pt" --split=validation --threads=1 > "$out/$name.probe" 2>&1
}
pending=()
for s in "${settings[@]}"; do
  name=${s%%|*} flags=${s#*|}
  [ -z "$only" ] || [[ "$only" == *",$name,"* ]] || continue
  # shellcheck disable=SC2086
  train "$name" $flags &
  pending+=($!)
  if ((${#pending[@]} == 2)); then wait "${pending[@]}"; pending=(); fi
done
((${#pending[@]} == 0)) || wait "${pending[@]}"
printf '%-28s %9s %8s %8s %8s\n' setting test_mse knn logreg mlp
for s in "${settings[@]}"; do
  name=${s%%|*}
  [ -f "$out/$name.probe" ] || continue
  mse=$(sed -n 's/.*recon MSE \([0-9.]*\).*/\1/p' "$out/$name.log")
  read -r knn lin mlp < <(sed -n 's/probe ladder: [0-9]*-NN Hamming \([0-9.]*\) *logistic regression \([0-9.]*\) *MLP ([0-9]* hidden) \([0-9.]*\)/\1 \2 \3/p' "$out/$name.probe")
  printf '%-28s %9s %8s %8s %8s\n' "$name" "$mse" "$knn" "$lin" "$mlp"
done
