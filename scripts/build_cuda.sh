#!/usr/bin/env bash
# Builds advft against the CUDA LibTorch of the PyTorch wheel that python3 imports (the GPU
# machine's), into build-cuda/ (or ADVFT_BUILD_DIR). ADVFT_BUILD_TESTS=OFF skips the tests.
#
#   bash scripts/build_cuda.sh && ctest --test-dir build-cuda -R '_CUDA$' --output-on-failure
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${ADVFT_BUILD_DIR:-build-cuda}
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
# advft's own kernels need nvcc; CMake looks on the PATH and in CUDACXX.
if ! command -v nvcc >/dev/null && [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DADVFT_BUILD_TESTS="${ADVFT_BUILD_TESTS:-ON}" -DCMAKE_PREFIX_PATH="$prefix" \
  ${ADVFT_CMAKE_ARGS:-} | grep -E "advft:|Error|error" || true
# -k 0: a first build on a new LibTorch reports every file that fails, not only the first.
cmake --build "$build_dir" -j"$(nproc)" -- -k 0
echo "build_cuda: built $build_dir/advft"
