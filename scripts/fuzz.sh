#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang into build-fuzz/ and runs each for a bounded
# time (FUZZ_SECONDS, default 60) from its checked-in seeds. Any finding fails: a crash, an
# ASan/UBSan report, an exception other than a CheckpointError naming the file, a run over
# 10 s or an allocation over 2 GB. The inputs that found it are left in build-fuzz/artifacts/.
# FUZZ_SEED and FUZZ_RUNS make a run repeatable (CI sets both, so that a result does not depend
# on luck); unset, each run explores from a new random seed until FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
seed=${FUZZ_SEED:-0}  # 0: libFuzzer picks one
runs=${FUZZ_RUNS:--1}  # -1: until FUZZ_SECONDS
build_dir=${ADVFT_FUZZ_BUILD_DIR:-build-fuzz}

cmake -S fuzz -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build_dir" -j"${ADVFT_BUILD_JOBS:-$(nproc)}"
# One dictionary per target; the whole-file target needs the zip words and the pickle ones.
cat fuzz/pickle.dict fuzz/zip.dict >"$build_dir/torch_file.dict"
mkdir -p "$build_dir/artifacts"

# run_fuzzer TARGET MAX_LEN DICT: one libFuzzer process (one core); its exit status goes to
# TARGET.status beside its log, so that a finding never stops the jobs running beside it.
run_fuzzer() {
  local target=$1 max_len=$2 dict=$3
  # New inputs go to the build folder's corpus (first folder), never into the seeds in fuzz/.
  local corpus="$build_dir/corpus/$target" status=0
  mkdir -p "$corpus"
  UBSAN_OPTIONS=print_stacktrace=1 "$build_dir/$target" -max_total_time="$seconds" \
    -seed="$seed" -runs="$runs" \
    -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 -dict="$dict" -print_final_stats=1 \
    -artifact_prefix="$build_dir/artifacts/$target-" "$corpus" "fuzz/corpus/${target%_fuzzer}" \
    >"$build_dir/$target.log" 2>&1 || status=$?
  echo "$status" >"$build_dir/$target.status"
}

# max_len: the seeds are ~1 KiB; a few KiB leaves room to grow without slowing every run.
targets=("unpickle_fuzzer 4096 fuzz/pickle.dict" "safetensors_fuzzer 4096 fuzz/safetensors.dict"
  "torch_file_fuzzer 8192 $build_dir/torch_file.dict")
# The targets run side by side, one per core (CI's 2 cores: 1.5 minutes instead of 2.5). Each is
# a single process with its own seed and run count, so what it finds does not depend on its
# neighbours; only FUZZ_SECONDS is wall time, and a shared core would make it cover less.
running=0
for spec in "${targets[@]}"; do
  read -r target _ <<<"$spec"
  if [ "$running" -ge "$(nproc)" ]; then
    wait -n || true  # run_fuzzer returns 0; its status is in the file
    running=$((running - 1))
  fi
  echo "fuzz: $target for ${seconds}s (seed $seed, runs $runs)"
  rm -f "$build_dir/$target.status"
  run_fuzzer $spec &
  running=$((running + 1))
done
wait

failed=()
for spec in "${targets[@]}"; do
  read -r target _ <<<"$spec"
  log="$build_dir/$target.log"
  if [ "$(cat "$build_dir/$target.status" 2>/dev/null)" = 0 ]; then
    echo "fuzz: $target:"
    grep -E "^stat::number_of_executed_units|^Done" "$log" | sed 's/^/  /'
  else
    tail -n 60 "$log"
    echo "fuzz: $target FAILED; full log $log; rerun an input with: $build_dir/$target FILE"
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}"
  exit 1
fi
echo "fuzz: no findings"
