#!/usr/bin/env bash
# The Fashion-MNIST recipe of ../shared/peer/fmnist_peer.py run by advft and by the peer in one
# call on the GPU machine: 15 clean epochs of PreActResNet-18 (piecewise 0.1), then the 3-epoch
# PGD-10 fine-tune (eps 0.1, step 0.025; lr warm-up over half the steps to 0.05, exponential
# decay to 5e-5), bf16, batch 128, all 60,000 training images; then FGSM and PGD-20 (step 0.01)
# on the 10,000 test images. Prints the fine-tune's wall time and accuracies side by side.
#
#   PEER_DIR=peer FMNIST_DIR=peer/fmnist bash scripts/fmnist_vs_peer.sh [OUT_DIR]
#   PEER_DIR=peer FMNIST_DIR=peer/fmnist bash scripts/fmnist_vs_peer.sh --peer-pretrain FILE
#
# ADVFT_SET="key=value ..." adds --set options to advft's runs (e.g. fused_bn_relu=on).
# FMNIST_DIR holds the four .gz files of Debian's dataset-fashion-mnist (copied next to the peer
# into an ignored folder: only the checkout travels to the GPU machine).
# The peer's clean pre-training is not what is compared, only its fine-tune: `--peer-pretrain FILE`
# runs just those 15 epochs and saves the peer's state_dict to FILE, so that a session can run them
# while it builds; a later run with PEER_CLEAN=FILE fine-tunes from it instead of pre-training,
# the peer and advft both (scripts/peer_state_to_advft.py renames the weights for advft).
set -euo pipefail
cd "$(dirname "$0")/.."
peer_dir=${PEER_DIR:-peer}
data_dir=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
out=${1:-${OUT:-fmnist-out}}
[ -f "$peer_dir/fmnist_peer.py" ] || { echo "fmnist_vs_peer: no $peer_dir/fmnist_peer.py (set PEER_DIR)" >&2; exit 2; }
[ -f "$data_dir/t10k-images-idx3-ubyte.gz" ] || { echo "fmnist_vs_peer: no Fashion-MNIST in $data_dir (set FMNIST_DIR)" >&2; exit 2; }

# peer SNIPPET: the peer's own functions and settings (its source up to its sweep of schedules),
# then SNIPPET; prints the peer's JSON lines.
peer() {
  FMNIST_DIR="$data_dir" python3 - "$peer_dir/fmnist_peer.py" "$1" <<'PY'
import sys
path, snippet = sys.argv[1], sys.argv[2]
source = open(path).read()
cut = source.index("torch.manual_seed(0); np.random.seed(0)")
scope = {"__file__": path, "__name__": "fmnist_peer"}
exec(compile(source[:cut], path, "exec"), scope)
exec("torch.manual_seed(0); np.random.seed(0)\n" + snippet, scope)
PY
}
pretrain="m = model(); run(m, 15, piecewise(0.1), False, tag='clean pre-training, piecewise 0.1')"
if [ "$out" = --peer-pretrain ]; then
  file=${2:?"fmnist_vs_peer: --peer-pretrain needs the file to save the peer's state_dict to"}
  peer "$pretrain; torch.save(m.state_dict(), '$file.tmp')" && mv "$file.tmp" "$file"
  exit
fi
mkdir -p "$out"
bash scripts/build_cuda.sh
advft=./build-cuda/advft
common=(--config fashion_mnist --data-dir "$data_dir" --device cuda --set precision=bf16
        --set data.val_size=0 --force)
for setting in ${ADVFT_SET:-}; do common+=(--set "$setting"); done
echo "${ADVFT_SET:-}" >"$out/advft_settings.txt"

# Both fine-tune from the peer's clean pre-training when there is one (the peer's PyTorch weights,
# renamed to the reference PreActResNet names; the peer normalizes nothing): then only the
# fine-tunes differ. Otherwise advft pre-trains its own, the same 15 epochs.
clean=()
if [ -n "${PEER_CLEAN:-}" ] && [ -f "$PEER_CLEAN" ] &&
  python3 scripts/peer_state_to_advft.py "$PEER_CLEAN" "$out/peer_clean_advft.pt"; then
  clean=(--checkpoint "$out/peer_clean_advft.pt" --mean 0 --std 1)
  echo "fmnist_vs_peer: advft fine-tunes from the peer's clean pre-training too"
else
  [ -z "${PEER_CLEAN:-}" ] || echo "fmnist_vs_peer: WARNING: $PEER_CLEAN could not be used;" \
    "advft pre-trains its own, so the two fine-tunes do not start from the same weights"
  "$advft" train "${common[@]}" --out "$out/advft_clean" --epochs 15 --set train.adversarial=false \
    --set schedule.kind=piecewise --set schedule.peak_lr=0.1 2>&1 | tail -n 3
  clean=(--checkpoint "$out/advft_clean/last.safetensors")
fi
start=$(date +%s.%N)
"$advft" finetune "${common[@]}" --out "$out/advft_ft" "${clean[@]}" 2>&1 | tail -n 3
end=$(date +%s.%N)
"$advft" eval --checkpoint "$out/advft_ft/last.safetensors" --data-dir "$data_dir" --device cuda \
  --precision bf16 --attack fgsm --attack pgd:steps=20,eps=0.1,step_size=0.01 \
  --json "$out/advft_eval.json"
python3 -c "print($end - $start)" > "$out/advft_ft_wall_seconds.txt"

# The peer's own figure is its training loop; its whole process up to the end of that loop
# (Python, torch, the data, the model, the loop) is the like-for-like twin of advft's wall time,
# measured where the peer's process does nothing else before it (PEER_CLEAN).
process_timed=0
if [ -n "${PEER_CLEAN:-}" ] && [ -f "$PEER_CLEAN" ]; then
  echo "fmnist_vs_peer: the peer fine-tunes from its clean pre-training in $PEER_CLEAN"
  pretrain="m = model(); m.load_state_dict(torch.load('$PEER_CLEAN'))"
  process_timed=1
fi
# run() evaluates right after its loop: the end of training is stamped there.
stamp_end="_evaluate = evaluate
def evaluate(m):
    torch.cuda.synchronize(); print(json.dumps({'trained_at': time.time()}), flush=True)
    return _evaluate(m)"
launched=$(date +%s.%N)
peer "$stamp_end
$pretrain; run(m, 3, ssfd(0.05), True, tag='fine-tune 3 ep, ssfd peak 0.05')" > "$out/peer.jsonl"
echo "$launched $process_timed" > "$out/peer_launched.txt"
cat "$out/peer.jsonl"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
lines = [json.loads(line) for line in open(os.path.join(out, "peer.jsonl")) if line.startswith("{")]
peer = [line for line in lines if "pgd20" in line][-1]
trained_at = [line["trained_at"] for line in lines if "trained_at" in line][-1]
launched, process_timed = open(os.path.join(out, "peer_launched.txt")).read().split()
peer_process = trained_at - float(launched) if process_timed == "1" else None
ours = json.load(open(os.path.join(out, "advft_eval.json")))
wall = float(open(os.path.join(out, "advft_ft_wall_seconds.txt")).read())
settings = open(os.path.join(out, "advft_settings.txt")).read().strip()
train = json.load(open(os.path.join(out, "advft_ft", "results.json")))["train_seconds"]
fgsm, pgd = (a["accuracy"] for a in ours["attacks"])
print(f"\n{'3-epoch fine-tune':28s} {'clean %':>8s} {'FGSM %':>8s} {'PGD-20 %':>9s} {'seconds':>9s}")
process = f"; process to the end of training {peer_process:.1f} s" if peer_process else ""
print(f"{'peer (PyTorch eager, loop)':28s} {peer['clean']:8.2f} {peer['fgsm']:8.2f} "
      f"{peer['pgd20']:9.2f} {peer['seconds']:9.1f}  (its own timing{process})")
print(f"{'advft finetune (wall)':28s} {ours['clean']['accuracy']:8.2f} {fgsm:8.2f} {pgd:9.2f} "
      f"{wall:9.1f}  (training loop {train:.1f} s{'; ' + settings if settings else ''})")
print(f"time ratios advft/peer (target <= 0.333): advft's process / the peer's loop "
      f"{wall / peer['seconds']:.3f}; loop / loop {train / peer['seconds']:.3f}"
      + (f"; process / process {wall / peer_process:.3f}" if peer_process else ""))
print(f"PGD-20 difference {pgd - peer['pgd20']:+.2f} points (target within 1)")
PY
