#!/usr/bin/env bash
# Compiles every advft source file, CUDA code paths included, against the newer LibTorch releases
# that Debian packages, on a machine with neither a GPU nor those releases installed: trixie's
# libtorch-cuda-dev (2.6, C++17) and sid's libtorch-dev (2.14 in 2026-11, C++20; it ships the
# CUDA headers too). The packages are downloaded, not installed, into build-libtorch2/ (ADVFT_LIBTORCH2_DIR),
# with each suite's Gloo headers (libgloo-dev) for the data-parallel code, and each file is
# checked with `g++ -fsyntax-only -DADVFT_HAVE_CUDA=1 -DADVFT_HAVE_DIST=1`; advft's own kernels
# (src/*/*.cu) are compiled by the CUDA toolkit's nvcc. This is what keeps the
# GPU build (a PyTorch wheel's LibTorch 2.x) compiling between sessions that have a GPU.
# Needs the CUDA toolkit: its runtime headers (CUDA_INCLUDE_DIR, default /usr/local/cuda/include)
# and nvcc beside them (or CUDACXX).
#
#   bash scripts/check_libtorch2.sh              # src/ and tests/, in the unity build's batches
#   bash scripts/check_libtorch2.sh FILE...      # these files, one by one
#   ADVFT_LIBTORCH2_SUITES='trixie sid|trixie' bash ...   # what CI runs (sid may lack it a while)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mkdir -p "${ADVFT_LIBTORCH2_DIR:-build-libtorch2}" && cd "${ADVFT_LIBTORCH2_DIR:-build-libtorch2}" && pwd)
cuda_include=${CUDA_INCLUDE_DIR:-/usr/local/cuda/include}
if [ ! -f "$cuda_include/cuda_runtime_api.h" ]; then
  echo "check_libtorch2: no cuda_runtime_api.h in $cuda_include; install the CUDA toolkit's" \
    "headers or set CUDA_INCLUDE_DIR" >&2
  exit 1
fi

# batch NAME SOURCE...: the unity sources CMake makes of a target's sources (CMakeLists.txt,
# ADVFT_UNITY_BUILD): sorted by name as file(GLOB) sorts, 16 to a file. Each one's path is printed.
batch() {
  local name=$1 i=0 n=0 unit=
  shift
  mkdir -p "$work/unity"
  rm -f "$work/unity/$name"_*.cpp
  while IFS= read -r source; do
    if [ $((i % 16)) -eq 0 ]; then
      unit=$work/unity/${name}_$n.cpp
      n=$((n + 1))
      echo "$unit"
    fi
    echo "#include \"$PWD/$source\"" >>"$unit"
    i=$((i + 1))
  done < <(printf '%s\n' "$@" | LC_ALL=C sort)
}
if [ $# -gt 0 ]; then
  files=("$@")
else
  # Checked as the builds compile them: 4 batches instead of 56 files take a quarter of the time,
  # and a name two files of a batch both define fails here as it would in the build.
  mapfile -t files < <(batch advft_core $(find src -name '*.cpp' ! -path src/main.cpp)
    batch advft_tests tests/*_test.cpp
    echo src/main.cpp)
fi

# A private apt configuration over this machine's own Debian mirror, with the two newer suites.
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' | grep -v security | head -n 1)
if [ -z "$mirror" ]; then
  echo "check_libtorch2: apt names no Debian mirror; run 'apt-get update' first" >&2
  exit 1
fi
apt_dir=$work/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
cat >"$apt_dir/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main contrib
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o Dir::State::status=/dev/null
  -o APT::Sandbox::User=root -qq)
apt-get "${apt_opts[@]}" update

# unpack SUITE: its LibTorch headers under $work/torch-SUITE (again when the suite has a newer
# version); fails when the suite does not have the package (sid's come and go).
unpack() {
  local suite=$1 package deb
  case $suite in
    trixie) package=libtorch-cuda-dev/trixie ;;
    sid) package=libtorch-dev/sid ;;
    *) echo "check_libtorch2: unknown suite '$suite' in ADVFT_LIBTORCH2_SUITES (trixie, sid)" >&2; exit 2 ;;
  esac
  deb=$(apt-get "${apt_opts[@]}" download --print-uris "$package" 2>/dev/null | awk '{print $2}')
  [ -n "$deb" ] || return 1
  if [ "$(cat "$work/torch-$suite/.unpacked" 2>/dev/null)" != "$deb" ]; then
    rm -rf "${work:?}/torch-$suite" && mkdir -p "$work/torch-$suite"
    (cd "$work" && apt-get "${apt_opts[@]}" download "$package") || return 1
    dpkg-deb -x "$work/$deb" "$work/torch-$suite"
    rm -f "$work/$deb"
    echo "$deb" >"$work/torch-$suite/.unpacked"
  fi
  # Gloo's headers of the same suite, beside LibTorch's: src/dist includes ProcessGroupGloo.hpp,
  # which includes them (a PyTorch wheel ships both in torch/include).
  if [ ! -f "$work/torch-$suite/usr/include/gloo/config.h" ]; then
    deb=$(apt-get "${apt_opts[@]}" download --print-uris "libgloo-dev/$suite" 2>/dev/null |
      awk '{print $2}')
    [ -n "$deb" ] || return 1
    (cd "$work" && apt-get "${apt_opts[@]}" download "libgloo-dev/$suite") || return 1
    dpkg-deb -x "$work/$deb" "$work/torch-$suite"
    rm -f "$work/$deb"
  fi
}
# Each word of ADVFT_LIBTORCH2_SUITES is a suite, or alternatives "a|b": the first that has it.
suites=()
for choice in ${ADVFT_LIBTORCH2_SUITES:-trixie sid}; do
  found=
  for suite in ${choice//|/ }; do
    if unpack "$suite"; then
      found=$suite
      break
    fi
    echo "check_libtorch2: Debian $suite has no LibTorch package now; trying the next choice"
  done
  [ -n "$found" ] || { echo "check_libtorch2: no LibTorch 2.x in any of '$choice'" >&2; exit 1; }
  case " ${suites[*]} " in
    *" $found "*) ;;  # a fallback that is already on the list is checked once
    *) suites+=("$found") ;;
  esac
done

# A CPU package leaves out the header CMake writes for a CUDA build; its one macro marks c10_cuda
# as a shared library, which is what every LibTorch distribution builds.
stub=$work/stub/c10/cuda/impl
mkdir -p "$stub" && echo '#define C10_CUDA_BUILD_SHARED_LIBS' >"$stub/cuda_cmake_macros.h"

# settings SUITE: sets version (MAJOR.MINOR), std and flags, the flags of a real build against
# SUITE's headers (CMakeLists.txt, spdlog's and the tests' targets) with CUDA on.
settings() {
  local tree=$work/torch-$1/usr/include major minor
  # torch/version.h moved between releases; the preprocessor finds it wherever it is.
  read -r major minor < <(printf '#include <torch/version.h>\nTORCH_VERSION_MAJOR TORCH_VERSION_MINOR\n' |
    g++ -E -P -x c++ -isystem "$tree" -isystem "$tree/torch/csrc/api/include" - | tail -n 1)
  version=$major.$minor
  std=c++17
  if [ "$major" -gt 2 ] || [ "$minor" -ge 13 ]; then std=c++20; fi  # as CMakeLists.txt decides
  flags=(-std="$std" -Wall -Wextra -Wpedantic -Winvalid-pch -isystem "$tree"
    -isystem "$tree/torch/csrc/api/include" -isystem "$cuda_include" -isystem "$work/stub"
    -Iinclude -Itests -DADVFT_HAVE_CUDA=1 -DADVFT_HAVE_CUDA_KERNELS=1 -DADVFT_HAVE_JPEG=1 -DADVFT_HAVE_PNG=1 -DADVFT_HAVE_DIST=1 -DUSE_C10D_GLOO -DADVFT_VERSION='"check"' -DADVFT_CONFIG_DIR='"configs"'
    -DADVFT_BINARY='"advft"' -DADVFT_SOURCE_DIR='"."' -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL
    -DSPDLOG_SHARED_LIB -DFMT_SHARED)
}
# compile_pch SUITE: the precompiled header a real build uses (about 5 s a file instead of 13),
# with the flags `settings` set; its exit status goes to pch-SUITE/status, its messages to
# pch-SUITE/log.
compile_pch() {
  local pch_dir=$work/pch-$1 status=0
  printf '#include <torch/torch.h>\n#include <nlohmann/json.hpp>\n#include <spdlog/spdlog.h>\n' \
    >"$pch_dir/pch.h"
  g++ "${flags[@]}" -x c++-header "$pch_dir/pch.h" -o "$pch_dir/pch.h.gch" >"$pch_dir/log" 2>&1 ||
    status=$?
  echo "$status" >"$pch_dir/status"
}
# Each compiler run is one process on one core: the headers of every suite compile side by side
# and beside the CUDA kernels (a minute less on 2 cores than one after the other).
for suite in "${suites[@]}"; do
  mkdir -p "$work/pch-$suite"
  rm -f "$work/pch-$suite/status" "$work/pch-$suite/log"
  settings "$suite"
  compile_pch "$suite" &
done

failed=0
# advft's own kernels (src/*/*.cu: no LibTorch in them) through the CUDA compiler, for the
# architectures CMakeLists.txt builds by default; a warning (a register spill too) fails the check.
nvcc=${CUDACXX:-$(dirname "$cuda_include")/bin/nvcc}
if [ ! -x "$nvcc" ]; then
  echo "check_libtorch2: no CUDA compiler at $nvcc; install the CUDA toolkit or set CUDACXX" >&2
  exit 1
fi
for cu in src/*/*.cu; do
  if ! "$nvcc" -std=c++17 -O3 -gencode=arch=compute_80,code=sm_80 \
    -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90 \
    -Xptxas=-warn-spills -c "$cu" -o "$work/$(basename "$cu").o" >"$work/nvcc.log" 2>&1 ||
    grep -q "warning" "$work/nvcc.log"; then
    head -n 40 "$work/nvcc.log"
    echo "check_libtorch2: $cu: $("$nvcc" --version | tail -n 1): errors or warnings above"
    failed=1
  fi
done
echo "check_libtorch2: CUDA kernels compiled by $("$nvcc" --version | grep -o 'release [0-9.]*')"
wait

for suite in "${suites[@]}"; do
  pch_dir=$work/pch-$suite
  if [ "$(cat "$pch_dir/status" 2>/dev/null)" != 0 ]; then
    head -n 40 "$pch_dir/log" 2>/dev/null || true
    echo "check_libtorch2: Debian $suite's LibTorch headers did not compile; full log $pch_dir/log"
    failed=1
    continue
  fi
  settings "$suite"
  echo "check_libtorch2: LibTorch $version ($std), ${#files[@]} files"
  log=$work/check-$version.log
  if ! printf '%s\n' "${files[@]}" |
    xargs -P "$(nproc)" -n 1 bash -c 'g++ -fsyntax-only "$@" || { echo "FAILED: ${*: -1}"; exit 1; }' \
      bash "${flags[@]}" -include "$pch_dir/pch.h" >"$log" 2>&1; then
    grep -E "error|FAILED" "$log" | head -n 40
    echo "check_libtorch2: LibTorch $version: errors above; full log $log"
    failed=1
  elif grep -q "warning" "$log"; then
    grep -A3 "warning" "$log" | head -n 40
    echo "check_libtorch2: LibTorch $version: warnings above; full log $log"
    failed=1
  fi
done
[ "$failed" = 0 ] && echo "check_libtorch2: all files compile against every LibTorch above"
exit "$failed"
