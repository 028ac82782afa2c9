#!/usr/bin/env bash
# The README's first command: install and build, then a short real run on Fashion-MNIST —
# clean training of a small model (the "pretrained" checkpoint), `advft finetune` from it,
# and `advft eval` of the result on all 10,000 test images at eps = 0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
advft=${ADVFT_BUILD_DIR:-build}/advft
runs=${ADVFT_QUICKSTART_DIR:-runs/quickstart}
data=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
rm -rf "$runs"   # the quick start's own directory only, so it can be run again
mkdir -p "$runs"
start=$(date +%s)

echo "== 1/3 clean training (the stand-in for a pretrained model)"
"$advft" train --config quickstart --data-dir "$data" --out "$runs/pretrain" --epochs 2 \
  --set train.adversarial=false >/dev/null

echo "== 2/3 adversarial fine-tuning: 2 epochs of PGD-3 at eps 0.1, slow start, fast decay"
"$advft" finetune --config quickstart --data-dir "$data" --out "$runs/finetune" \
  --checkpoint "$runs/pretrain/last.safetensors" >/dev/null

echo "== 3/3 evaluation on the full test set (eps 0.1)"
"$advft" eval --checkpoint "$runs/finetune/last.safetensors" --data-dir "$data" \
  --attack fgsm --attack pgd:steps=20,eps=0.1,step_size=0.01 --json "$runs/eval.json"

echo "quickstart: $(( $(date +%s) - start )) s after the build; run directories in $runs"
