#!/usr/bin/env bash
# Installs missing dependencies and builds nlpkit (Release) into build/. Idempotent and
# incremental. Extra arguments go to CMake's configure step, e.g.
#   tools/build.sh -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
elif [[ $# -gt 0 ]]; then
  cmake -S . -B build "$@" >/dev/null
fi
cmake --build build -j"$(nproc)"
