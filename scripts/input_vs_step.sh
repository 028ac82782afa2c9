#!/usr/bin/env bash
# Whether an image folder's input keeps up with ResNet-50's PGD-3 AT step on this machine (issue
# 4: "the GPU never waits for input"): writes ImageNet-like JPEGs (500x375 and 375x500, quality
# 90, like ImageNet's) with Pillow, then `advft bench --data` times the decoding, cropping and
# copying on all cores beside the AT step, with CUDA graphs and bf16 where there is a GPU.
#
#   bash scripts/input_vs_step.sh OUT_DIR [ADVFT_BINARY]   # $PYTHON (python3) with numpy, Pillow
#   PYTHON=/usr/bin/python3 MODEL=resnet18 BATCH=4 bash scripts/input_vs_step.sh out/  # on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: input_vs_step.sh OUT_DIR [ADVFT_BINARY]}
advft=${2:-build-cuda/advft}
[ -x "$advft" ] || advft=build/advft
mkdir -p "$out"
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
"${PYTHON:-python3}" - "$folder" <<'PY'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
y, x = np.mgrid[0:375, 0:500].astype(np.float32)
for c in range(8):
    os.makedirs(f"{root}/train/n{c:08d}")
    for i in range(64):
        # Smooth colour fields plus noise: JPEG sizes like a photograph's (about 70 KB).
        f = rng.uniform(0.005, 0.05, size=3)
        img = np.stack([128 + 90 * np.sin(f[k] * x + k + i) for k in range(3)], axis=2)
        img = np.clip(img + rng.normal(0, 12, size=img.shape), 0, 255).astype(np.uint8)
        if i % 3 == 0:
            img = img.transpose(1, 0, 2)
        Image.fromarray(img).save(f"{root}/train/n{c:08d}/{i}.JPEG", quality=90)
PY
echo "input_vs_step: $(find "$folder" -name '*.JPEG' | wc -l) JPEGs, $(du -sh "$folder" | cut -f1)"
"$advft" bench --model "${MODEL:-resnet50}" --input-size 224 --batch "${BATCH:-256}" \
  --attack pgd:steps=3,eps=4/255,step_size=2/255 --loops at,input --warmup 2 --iterations 6 \
  --data "$folder" --json "$out/input_vs_step.json" | tee "$out/input_vs_step.txt"
