#!/usr/bin/env bash
# The test command: set-up if needed, a formatting check, then every test (unit tests and the
# CLI end-to-end tests) through CTest. In CI (CI=true) or with ADVFT_TEST_LIBTORCH2=1, the
# sources are compiled against a LibTorch 2.x with CUDA code on (scripts/check_libtorch2.sh).
# In CI or with ADVFT_TEST_SANITIZE=1, the suite but for the tests labelled `long` runs a second
# time from an AddressSanitizer + UndefinedBehaviorSanitizer build, and (also with ADVFT_TEST_FUZZ=1)
# libFuzzer runs on the checkpoint readers for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/format.sh --check
build_dir=${ADVFT_BUILD_DIR:-build}
# One test per core at a time: a third of the suite's time is processes starting (LibTorch's
# libraries take about 0.6 s to load), which one core does while another computes. On 2 cores
# the suite took 8 minutes one at a time, 4.5 two at a time. Tests that share a Python-made
# fixture wait for each other (tests/fixtures.h); everything else has a folder of its own.
jobs=$(nproc)
ctest --test-dir "$build_dir" --output-on-failure --timeout 1200 -j"$jobs"

if [ "${CI:-}" = "true" ] || [ "${ADVFT_TEST_LIBTORCH2:-0}" = "1" ]; then
  # This machine's LibTorch is Debian's 1.13 without CUDA; the GPU build uses 2.x (2.11 on the
  # GPU machine). Every source and test file, CUDA paths on, in the batches the builds compile,
  # against trixie's 2.6 and sid's newest (2.14, C++20), which bracket it; sid may be without one
  # for a while.
  echo "test: compiling against LibTorch 2.x releases with the CUDA code paths"
  ADVFT_LIBTORCH2_SUITES=${ADVFT_LIBTORCH2_SUITES:-trixie sid|trixie} bash scripts/check_libtorch2.sh
fi

if [ "${CI:-}" = "true" ] || [ "${ADVFT_TEST_SANITIZE:-0}" = "1" ]; then
  echo "test: again under AddressSanitizer + UBSan, without the tests labelled long"
  # -O1 -g1 (line tables), as the ASan docs suggest: reports keep file:line, and the build takes
  # half the time of RelWithDebInfo's -O2 -g (its objects were 2.5x larger). UBSan's alignment
  # and null checks, on every pointer use in LibTorch's inlined headers, made the objects 2.4x
  # larger and the build a third slower: a null pointer still dies (with the crash report's
  # backtrace), and the file readers, where unaligned data comes in, are fuzzed below with all
  # of UBSan.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DADVFT_SANITIZE="address;undefined" \
    -DADVFT_SANITIZE_EXCLUDE="alignment;null" >/dev/null
  cmake --build build-asan -j"$(nproc)"
  # LibTorch itself is not instrumented and keeps global caches alive at exit: leaks off.
  # `long` tests (tests/CMakeLists.txt) ran in the Release suite above.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 1800 -j"$jobs" -LE '^long$'
fi

if [ "${CI:-}" = "true" ] || [ "${ADVFT_TEST_FUZZ:-0}" = "1" ]; then
  # About 3 minutes on 2 cores: the clang build, then the targets side by side, each for
  # FUZZ_RUNS runs or FUZZ_SECONDS, whichever comes first.
  echo "test: fuzzing the checkpoint readers"
  # A fixed seed and run count: CI's verdict is the one seen when the change was made (explore
  # with plain `bash scripts/fuzz.sh`, which draws a new seed each time).
  FUZZ_SEED=${FUZZ_SEED:-1} FUZZ_RUNS=${FUZZ_RUNS:-1000000} FUZZ_SECONDS=${FUZZ_SECONDS:-120} \
    bash scripts/fuzz.sh
fi
