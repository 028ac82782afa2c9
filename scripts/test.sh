#!/usr/bin/env bash
# The test command: set-up if needed, a formatting check, then every test (unit tests and the
# CLI end-to-end tests) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/format.sh --check
build_dir=${ADVFT_BUILD_DIR:-build}
# Two cores: tests run one at a time, each with LibTorch's default thread pool.
ctest --test-dir "$build_dir" --output-on-failure --timeout 1200
