#!/usr/bin/env bash
# advft's PreActResNet-18 batch-128 PGD-10 AT step against the torch.compile peer, in one call on
# the GPU machine (bf16, channels-last): advft's graphed step as the trainer runs it (its fused
# BatchNorm+ReLU kernels) and with PyTorch's BatchNorm+ReLU first (seconds), then the peer's
# compiled step (scripts/peer_compile_first.py: reduce-overhead, then default; minutes of
# compilation), then the ratio to the best compiled figure. COMPILE_ALL=1 adds the peer's other configurations.
#
#   PEER_DIR=peer bash scripts/bench_vs_compile.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
peer_dir=${PEER_DIR:-peer}
out=${1:-${OUT:-compile-out}}
mkdir -p "$out"
[ -f "$peer_dir/peer_compile.py" ] || { echo "bench_vs_compile: no $peer_dir/peer_compile.py (set PEER_DIR)" >&2; exit 2; }

bash scripts/build_cuda.sh  # incremental: a no-op when nothing changed
for variant in on unfused; do
  flags=()
  [ "$variant" = unfused ] && flags=(--fused-bn-relu off)
  ./build-cuda/advft bench --device cuda --precision bf16 --graphs on --model preact18 \
    --batch 128 --iterations 20 --loops at "${flags[@]}" \
    --json "$out/advft_preact18_128_$variant.json" | tee "$out/advft_preact18_128_$variant.txt" ||
    echo "bench_vs_compile: advft ($variant) failed"
done
python3 scripts/peer_compile_first.py "$peer_dir/peer_compile.py" ${COMPILE_ALL:+all} |
  tee "$out/peer_compile.txt"

python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
def advft(variant):
    try:
        return json.load(open(os.path.join(out, f"advft_preact18_128_{variant}.json")))["at_step"]["images_per_s"]
    except (OSError, KeyError, ValueError):
        return None
compiled = {}
for line in open(os.path.join(out, "peer_compile.txt")):
    m = re.search(r"preact18\s+bs= 128 bf16\+cl compile=(\S+): +(\d+) img/s", line)
    if m:
        compiled[m.group(1)] = float(m.group(2))
if not compiled:
    sys.exit("bench_vs_compile: no compiled figure for PreActResNet-18 at batch 128")
mode, best = max(compiled.items(), key=lambda item: item[1])
print(f"\nPreActResNet-18 bs128 PGD-10 AT step, img/s: torch.compile "
      + ", ".join(f"{k} {v:.0f}" for k, v in compiled.items()))
for variant in ("on", "unfused"):
    ours = advft(variant)
    if ours:
        label = ("advft (graphs, fused BN+ReLU)" if variant == "on"
                 else "advft (graphs, PyTorch's BN+ReLU)")
        print(f"{label}: {ours:.0f} img/s = {ours / best:.2f}x the best compiled ({mode}); target >= 1.3x")
PY
