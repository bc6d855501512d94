#!/usr/bin/env bash
# Training throughput and peak memory of the TextCNN-BiLSTM-Attention classifier: nlpkit
# (nlpkit_bench) against the same model in PyTorch eager (classifier_bench.py, Debian's torch,
# the same ATen kernels), on the same batches, initial weights, dropout masks and thread count.
# Runs are interleaved and repeated; the table shows medians. See docs/benchmarks.md.
#
#   tools/bench/run.sh                          # quickstart shapes, 2 threads, 3 x 20 steps
#   tools/bench/run.sh --threads 1 --steps 10 --repeats 5
#   tools/bench/run.sh --batch-size 64          # other options shape the data and the model
#   BUILD_DIR=build-bench tools/bench/run.sh    # build and use another build directory
#
# Options: --threads N (2), --warmup N (3), --steps N (20), --repeats N (3); every other option
# goes to `nlpkit_bench --write-data` (see nlpkit_bench --help). Environment: BUILD_DIR (build),
# PYTHON (/usr/bin/python3, which has torch), JOBS (build parallelism, nproc).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
threads=2 warmup=3 steps=20 repeats=3
data_args=()
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;;
    --warmup) warmup=$2 ;;
    --steps) steps=$2 ;;
    --repeats) repeats=$2 ;;
    *) data_args+=("$1" "$2") ;;
  esac
  shift 2
done

if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "run.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2
  exit 2
fi

# Build (incremental: a no-op when nlpkit_bench is up to date).
if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if ! log=$(cmake --build "$BUILD_DIR" -j"${JOBS:-$(nproc)}" --target nlpkit_bench 2>&1); then
  echo "$log" >&2
  echo "run.sh: building nlpkit_bench in $BUILD_DIR failed" >&2
  exit 1
fi
bench=$BUILD_DIR/nlpkit_bench

out=$BUILD_DIR/bench
mkdir -p "$out"
data=$out/classifier_data.safetensors
results=$out/classifier_results.jsonl
"$bench" --write-data "$data" ${data_args[@]+"${data_args[@]}"}
: >"$results"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads $threads," \
  "$repeats x ($warmup warmup + $steps timed steps)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# ATen's dropout masks on the nlpkit side (modules/regularization.h: nlpkit::dropout), so the
# losses compare bitwise with PyTorch's; the figures in docs/benchmarks.md were measured so.
export NLPKIT_TORCH_DROPOUT=${NLPKIT_TORCH_DROPOUT:-1}
common=(--threads "$threads" --warmup "$warmup" --steps "$steps")
for ((r = 1; r <= repeats; ++r)); do
  "$bench" --data "$data" "${common[@]}" >>"$results"
  "$PYTHON" tools/bench/classifier_bench.py --data "$data" "${common[@]}" >>"$results"
  "$PYTHON" tools/bench/classifier_bench.py --data "$data" "${common[@]}" --cnn-over-padding \
    >>"$results"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews" \
  "the figures; with --threads 2 on 2 CPUs, badly)"
echo
"$PYTHON" tools/bench/classifier_bench.py --summarize "$results"
