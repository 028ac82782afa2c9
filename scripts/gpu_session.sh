#!/usr/bin/env bash
# Everything a session with a GPU machine has to establish about the CUDA paths, in order of
# importance and within a time budget, so that one or two calls of the device tool return it all:
#   build   scripts/build_cuda.sh against the machine's PyTorch wheel (tests included)
#   tests   the *_CUDA tests (graph vs eager, bf16 vs fp32, train/eval/bench on the GPU)
#   bench   scripts/bench_vs_peers.sh without the torch.compile peer (SKIP_COMPILE=1)
#   fmnist  scripts/fmnist_vs_peer.sh, the Fashion-MNIST recipe against fmnist_peer.py
#   profile nsys's kernel summary of one WRN-34-10 AT-step bench, where nsys exists
#   compile  the torch.compile peer (minutes of compilation)
# Each stage writes OUT_DIR/<stage>.log. A stage that fails or runs out of the budget is reported
# and the next one still runs while time is left; the ones after a failed build are skipped.
#
#   PEER_DIR=peer FMNIST_DIR=peer/fmnist BUDGET_S=540 bash scripts/gpu_session.sh "$OUT" [STAGE...]
#
# Default stages: build tests bench. A second call on the still-warm machine can then run
# `... gpu_session.sh "$OUT" build fmnist` (the build is incremental). PEER_DIR and FMNIST_DIR
# are copies of ../shared/peer and Debian's Fashion-MNIST .gz files in a folder that
# .git/info/exclude ignores, named in the device tool's carry (only the checkout travels).
#
# Before the first call, on this machine: `bash scripts/gpu_session.sh --prepare` makes those
# copies in peer/ and peer/fmnist/ and adds peer/ to .git/info/exclude; then carry ["peer"].
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
  set -e
  mkdir -p peer/fmnist
  cp ../shared/peer/*.py ../shared/peer/README.md peer/
  cp /usr/share/datasets/fashion-mnist/*.gz peer/fmnist/
  grep -qx "peer/" .git/info/exclude 2>/dev/null || echo "peer/" >>.git/info/exclude
  git check-ignore -q peer/ && echo "gpu_session: peer/ ready ($(du -sh peer | cut -f1)); carry [\"peer\"]"
  exit 0
fi
out=${1:-${OUT:-gpu-out}}
shift || true
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(build tests bench)
budget=${BUDGET_S:-540}
started=$(date +%s)
mkdir -p "$out"
export PEER_DIR=${PEER_DIR:-peer} FMNIST_DIR=${FMNIST_DIR:-peer/fmnist}

{
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt"

summary=()
built=1
failures=0
# stage NAME SECONDS_IT_NEEDS COMMAND...: runs COMMAND into OUT_DIR/NAME.log within the budget.
stage() {
  local name=$1 needs=$2
  shift 2
  local left=$((budget - ($(date +%s) - started)))
  if [ "$built" = 0 ]; then
    summary+=("$name: skipped (the build failed)")
    return
  fi
  if [ "$left" -lt "$needs" ]; then
    summary+=("$name: not run (${left}s of the budget left, it needs about ${needs}s)")
    return
  fi
  echo "gpu_session: $name (${left}s left)"
  local t0 rc
  t0=$(date +%s)
  timeout -k 10 "$left" "$@" >"$out/$name.log" 2>&1
  rc=$?
  local took=$(($(date +%s) - t0))
  case $rc in
    0) summary+=("$name: ok in ${took}s") ;;
    124 | 137) summary+=("$name: stopped by the budget after ${took}s (partial log $name.log)") ;;
    *) summary+=("$name: FAILED (exit $rc) after ${took}s, see $name.log") ;;
  esac
  [ "$rc" = 0 ] || failures=$((failures + 1))
  if [ "$name" = build ] && [ "$rc" != 0 ]; then built=0; fi
  return 0
}

profile_wrn() {
  command -v nsys >/dev/null || { echo "no nsys on this machine"; return 0; }
  nsys profile --force-overwrite true -o "$out/wrn34_10_at" ./build-cuda/advft bench \
    --model wrn34_10 --batch 128 --device cuda --precision bf16 --iterations 4 >/dev/null &&
    nsys stats --report cuda_gpu_kern_sum,cuda_gpu_sum --format csv \
      -o "$out/wrn34_10_at" "$out/wrn34_10_at.nsys-rep"
}

export -f profile_wrn
export out
for name in "${stages[@]}"; do
  case $name in
    build) stage build 60 bash scripts/build_cuda.sh ;;
    tests) stage tests 30 ctest --test-dir build-cuda -R '_CUDA$' --output-on-failure --timeout 300 ;;
    bench) stage bench 120 env SKIP_COMPILE=1 bash scripts/bench_vs_peers.sh "$out/bench" ;;
    fmnist) stage fmnist 300 bash scripts/fmnist_vs_peer.sh "$out/fmnist" ;;
    profile) stage profile 60 bash -c profile_wrn ;;
    compile) stage compile 240 python3 "$PEER_DIR/peer_compile.py" ;;
    *)
      summary+=("$name: unknown stage (build tests bench fmnist profile compile)")
      failures=$((failures + 1))
      ;;
  esac
done

# What the reply's output tail should show: the tests' verdicts and the ratio tables.
[ -f "$out/tests.log" ] && grep -E "tests passed|tests failed|\*\*\*Failed|Passed|Skipped" "$out/tests.log"
[ -f "$out/bench.log" ] && sed -n '/^advft with CUDA graphs/,$p' "$out/bench.log"
[ -f "$out/fmnist.log" ] && sed -n '/^3-epoch fine-tune/,$p' "$out/fmnist.log"
[ -f "$out/compile.log" ] && grep "img/s" "$out/compile.log"
printf '%s\n' "gpu_session: $(($(date +%s) - started))s of ${budget}s" "${summary[@]}"
[ "$failures" = 0 ]
