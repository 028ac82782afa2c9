#!/usr/bin/env bash
# Installs what advft needs on Debian 12 / Ubuntu (skipping what is there) and builds Release
# into build/. Safe to run again: it only installs missing packages and rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build libtorch-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
          libgtest-dev zlib1g-dev libturbojpeg0-dev libpng-dev dataset-fashion-mnist clang-format
          libgloo-dev  # Gloo's headers: data-parallel runs (src/dist) over LibTorch's c10d
          clang libclang-rt-14-dev  # clang + its sanitizer/libFuzzer runtime: scripts/fuzz.sh
          python3-torch python3-torchvision python3-pil python3-numpy)  # python3-*: only to
                                      # write the tests' PyTorch and Pillow/torchvision fixtures
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

build_dir=${ADVFT_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ADVFT_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
echo "setup: built $build_dir/advft"
