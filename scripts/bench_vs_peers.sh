#!/usr/bin/env bash
# advft bench against the Python peers (../shared/peer), in one call on the GPU machine, so the
# ratios compare like with like: PGD-10 AT step (bf16, channels-last) of PreActResNet-18 at batch
# 128 and 512 and WRN-34-10 at 128, and PGD-20 evaluation at batch 500; advft as the trainer runs
# by default (CUDA graphs, its fused BatchNorm+ReLU kernels where built) and with PyTorch's
# BatchNorm and ReLU instead (fused_bn_relu off), WRN-34-10 also with cuDNN timing every algorithm
# (cudnn_benchmark_limit 0); NO_GRAPHS=1 adds advft's AT steps without graphs.
#
#   PEER_DIR=peer bash scripts/bench_vs_peers.sh [OUT_DIR]
#
# PEER_DIR holds a copy of ../shared/peer (only the checkout travels to the GPU machine; keep the
# copy in a folder .git/info/exclude ignores). Builds against the Python wheel's LibTorch into
# build-cuda/ (scripts/build_cuda.sh). Writes advft's JSON and the peers' logs into OUT_DIR
# (default: $OUT or bench-out) and prints a table of ratios. SKIP_COMPILE=1 leaves out the
# torch.compile peer (minutes of compilation).
set -euo pipefail
cd "$(dirname "$0")/.."
peer_dir=${PEER_DIR:-peer}
out=${1:-${OUT:-bench-out}}
mkdir -p "$out"
[ -f "$peer_dir/peer_bench.py" ] || { echo "bench_vs_peers: no $peer_dir/peer_bench.py (set PEER_DIR)" >&2; exit 2; }

bash scripts/build_cuda.sh  # incremental: a no-op when nothing changed

# name, variants, args. Variants: the defaults (on: graphs, fused BatchNorm+ReLU where built),
# graphs off (off); with graphs also unfused (PyTorch's BatchNorm+ReLU), cl_on / cl_off
# (channels-last), all_algos / algos1 (cuDNN's autotuning timing every candidate algorithm / only
# the first, instead of PyTorch's 10). Each run is stopped after RUN_TIMEOUT_S seconds when that is
# set.
run_advft() {
  local name=$1 variants=$2 variant; shift 2
  for variant in $variants; do
    local flags=(--graphs on)
    case $variant in
      off) flags=(--graphs off) ;;
      unfused) flags+=(--fused-bn-relu off) ;;
      cl_on) flags+=(--channels-last on) ;;
      cl_off) flags+=(--channels-last off) ;;
      all_algos) flags+=(--cudnn-benchmark-limit 0) ;;
      algos1) flags+=(--cudnn-benchmark-limit 1) ;;
    esac
    # --foreground: in timeout's own process group, advft would outlive a stage cut by the
    # session's budget (gpu_session.sh's timeout) and hold the GPU.
    local limit=()
    [ -n "${RUN_TIMEOUT_S:-}" ] && limit=(timeout --foreground -k 5 "$RUN_TIMEOUT_S")
    "${limit[@]}" ./build-cuda/advft bench --device cuda --precision bf16 "${flags[@]}" \
      --json "$out/advft_${name}_$variant.json" "$@" | tee "$out/advft_${name}_$variant.txt"
  done
}
at_variants="on unfused"
[ "${NO_GRAPHS:-0}" = "1" ] && at_variants="on unfused off"
run_advft preact18_128 "$at_variants" --model preact18 --batch 128 --iterations 20 --loops at
run_advft preact18_512 "$at_variants" --model preact18 --batch 512 --iterations 20 --loops at
run_advft wrn34_10_128 "$at_variants" --model wrn34_10 --batch 128 --iterations 8 --loops at
# Evaluation: graphed only (the eager figures were within 3% on the H200).
run_advft preact18_eval500 on --model preact18 --batch 500 --iterations 10 --loops eval
run_advft wrn34_10_eval500 on --model wrn34_10 --batch 500 --iterations 4 --loops eval
# The Fashion-MNIST recipe's step (1x28x28, eps 0.1), graphed: channels-last on (the default) and
# off (one input channel is an odd shape for cuDNN's NHWC kernels), with PyTorch's BatchNorm+ReLU,
# and with cuDNN's autotuning cut to its first candidate (algos1): the recipe's 40 s pay about 3 s
# of warm-up.
run_advft fmnist_128 "cl_on cl_off unfused algos1" --model preact18 --in-channels 1 --input-size 28 \
  --attack pgd:steps=10,eps=0.1,step_size=0.025 --batch 128 --iterations 20 --loops at

# The peer's own step and bench function, for the configurations compared (bf16 autocast +
# channels-last); PEER_BENCH_ALL=1 runs its whole sweep, fp32 included.
if [ "${PEER_BENCH_ALL:-0}" = "1" ]; then
  python3 "$peer_dir/peer_bench.py" | tee "$out/peer_bench.txt"
else
  python3 - "$peer_dir/peer_bench_defs.py" <<'PY' | tee "$out/peer_bench.txt"
import sys
scope = {"__name__": "peer_bench_defs"}
exec(compile(open(sys.argv[1]).read(), sys.argv[1], "exec"), scope)
bench, preact18, wrn34_10 = scope["bench"], scope["preact18"], scope["wrn34_10"]
bench("preact18", preact18, 128, True, True)
bench("preact18", preact18, 512, True, True)
bench("wrn34-10", wrn34_10, 128, True, True, iters=8)
PY
fi
python3 "$peer_dir/peer_eval.py" | tee "$out/peer_eval.txt"
if [ "${SKIP_COMPILE:-0}" != "1" ]; then
  # The peer's compiled configurations through the one runner bench_vs_compile.sh uses too; the
  # peer's whole script would add its eager FLOP-count runs, whose lines the compiled column's
  # patterns below would take for compiled figures.
  python3 scripts/peer_compile_first.py "$peer_dir/peer_compile.py" all |
    tee "$out/peer_compile.txt"
fi

# WRN-34-10 is convolution-bound: whether cuDNN has faster kernels than its first 10 candidates.
# Last and bounded (60 s, of a session budget that has no more room): timing every candidate may
# take long, and must not cost the rows above.
RUN_TIMEOUT_S=60 run_advft wrn34_10_128 all_algos --model wrn34_10 --batch 128 --iterations 8 \
  --loops at || echo "bench_vs_peers: WRN-34-10 with every cuDNN algorithm timed failed or took over 60 s"

python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
def advft(name, loop, variant="on", field="images_per_s"):
    path = os.path.join(out, f"advft_{name}_{variant}.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path))[loop].get(field)
def warmup(name, loop, variant="on"):
    return advft(name, loop, variant, "warmup_seconds") or 0.0
def peer(file, pattern):
    path = os.path.join(out, file)
    if not os.path.exists(path):
        return None
    best = None
    for line in open(path):
        m = re.search(pattern, line)
        if m:
            best = max(best or 0.0, float(m.group(1)))
    return best
rows = [
    ("PreActResNet-18 bs128 AT", advft("preact18_128", "at_step"),
     peer("peer_bench.txt", r"preact18\s+bs= 128 amp=1 cl=1 .*?AT:\s+(\d+)"),
     peer("peer_compile.txt", r"preact18\s+bs= 128 .*?:\s+(\d+) img/s")),
    ("PreActResNet-18 bs512 AT", advft("preact18_512", "at_step"),
     peer("peer_bench.txt", r"preact18\s+bs= 512 amp=1 cl=1 .*?AT:\s+(\d+)"),
     peer("peer_compile.txt", r"preact18\s+bs= 512 .*?:\s+(\d+) img/s")),
    ("WRN-34-10 bs128 AT", advft("wrn34_10_128", "at_step"),
     peer("peer_bench.txt", r"wrn34-10\s+bs= 128 amp=1 cl=1 .*?AT:\s+(\d+)"),
     peer("peer_compile.txt", r"wrn34.10\s+bs= 128 .*?:\s+(\d+) img/s")),
    ("PreActResNet-18 PGD-20 eval bs500", advft("preact18_eval500", "eval"),
     peer("peer_eval.txt", r"preact18 PGD-20 eval bs=500: (\d+)"), None),
    ("WRN-34-10 PGD-20 eval bs500", advft("wrn34_10_eval500", "eval"),
     peer("peer_eval.txt", r"wrn34.10 PGD-20 eval bs=500: (\d+)"), None),
]
print("\nadvft as the trainer runs by default (CUDA graphs, fused BatchNorm+ReLU) against the Python"
      "\npeers, bf16 + channels-last; unfused: advft with PyTorch's BatchNorm+ReLU (fused_bn_relu off),"
      "\nits ratios in brackets")
print(f"{'loop':36s} {'advft img/s':>11s} {'unfused':>7s} {'eager img/s':>12s} {'ratio':>13s} "
      f"{'compiled':>10s} {'ratio':>13s}")
for name, ours, eager, compiled in rows:
    key = {"PreActResNet-18 bs128 AT": ("preact18_128", "at_step"),
           "PreActResNet-18 bs512 AT": ("preact18_512", "at_step"),
           "WRN-34-10 bs128 AT": ("wrn34_10_128", "at_step"),
           "PreActResNet-18 PGD-20 eval bs500": ("preact18_eval500", "eval"),
           "WRN-34-10 PGD-20 eval bs500": ("wrn34_10_eval500", "eval")}[name]
    unfused = advft(*key, variant="unfused")
    def ratio(peer_value):
        if not peer_value:
            return "            -"
        return f"{ours / peer_value:5.2f} ({unfused / peer_value:5.2f})" if unfused else \
            f"{ours / peer_value:5.2f}        "
    print(f"{name:36s} {ours:11.0f} {unfused or 0:7.0f} {eager or 0:12.0f} {ratio(eager)} "
          f"{compiled or 0:10.0f} {ratio(compiled)}")
    no_graphs = advft(*key, variant="off")
    if no_graphs:
        print(f"{'':36s} without graphs: {no_graphs:.0f} img/s")
    all_algos = advft(*key, variant="all_algos")
    if all_algos:
        print(f"{'':36s} every cuDNN algorithm timed: {all_algos:.0f} img/s"
              + (f", {all_algos / eager:.2f}x eager" if eager else "")
              + f"; warm-up {warmup(*key, 'all_algos'):.1f} s against {warmup(*key):.1f} s")
print("\nFashion-MNIST step (PreActResNet-18 1x28x28, PGD-10, batch 128, graphs), img/s "
      "(warm-up s: autotuning, eager steps, capture):")
for variant in ("cl_on", "cl_off", "unfused", "algos1"):
    rate = advft("fmnist_128", "at_step", variant)
    if rate:
        print(f"  {variant:8s} {rate:7.0f} ({warmup('fmnist_128', 'at_step', variant):.2f} s)")
PY
