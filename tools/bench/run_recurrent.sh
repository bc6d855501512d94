#!/usr/bin/env bash
# Benchmarks of the recurrent family (docs/benchmarks.md, "Recurrent family"), same threads on
# every side:
#   lstm      nlpkit's LSTM (fused and cells) vs torch::nn::LSTM, forward + backward, with and
#             without lengths, in one process (nlpkit_bench recurrent lstm);
#   lm        RecurrentLanguageModel training (configs/lstm_lm.yaml's sizes) vs the same model in
#             PyTorch eager (recurrent_bench.py), same token stream, weights and dropout masks;
#   convlstm  ConvLSTMEncoderForecaster training vs a plain PyTorch ConvLSTM encoder-forecaster.
# Runs are interleaved and repeated; the summary shows medians, ratios and loss agreement.
#
#   tools/bench/run_recurrent.sh                       # 2 threads, 3 x (3 warm-up + 10 steps)
#   tools/bench/run_recurrent.sh --threads 1 --only lm,convlstm --repeats 5
#
# Options: --threads N (2), --warmup N (3), --steps N (10), --repeats N (3), --only LIST
# (lstm,lm,convlstm). Environment: BUILD_DIR (build), PYTHON (/usr/bin/python3,
# which has torch), JOBS (build parallelism, nproc). Both sides get the same thread pools:
# OPENBLAS_NUM_THREADS defaults to --threads (torch.set_num_threads does not bound OpenBLAS's
# own pool) and GOMP_SPINCOUNT to 10000 (OpenMP workers that spin for long starve OpenBLAS's
# threads: 2-3x slower, noisy steps with 2 threads on 2 CPUs; see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
threads=2 warmup=3 steps=10 repeats=3 only=lstm,lm,convlstm
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run_recurrent.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;;
    --warmup) warmup=$2 ;;
    --steps) steps=$2 ;;
    --repeats) repeats=$2 ;;
    --only) only=$2 ;;
    *) echo "run_recurrent.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
wants() { [[ ,$only, == *,$1,* ]]; }

if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "run_recurrent.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2
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
  echo "run_recurrent.sh: building nlpkit_bench in $BUILD_DIR failed" >&2
  exit 1
fi
bench=("$BUILD_DIR/nlpkit_bench" recurrent)

out=$BUILD_DIR/bench
mkdir -p "$out"
results=$out/recurrent_results.jsonl
: >"$results"
for name in lm convlstm; do
  if wants $name; then
    "${bench[@]}" $name --write-data "$out/recurrent_$name.safetensors"
  fi
done

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
# ATen's dropout masks on the nlpkit side (modules/regularization.h: nlpkit::dropout), so the
# losses compare bitwise with PyTorch's; the figures in docs/benchmarks.md were measured so.
export NLPKIT_TORCH_DROPOUT=${NLPKIT_TORCH_DROPOUT:-1}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads $threads," \
  "$repeats x ($warmup warm-up + $steps timed steps), results $results"
echo "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS GOMP_SPINCOUNT=$GOMP_SPINCOUNT" \
  "OMP_WAIT_POLICY=${OMP_WAIT_POLICY-} MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_-}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
common=(--threads "$threads" --warmup "$warmup" --steps "$steps")
for ((r = 1; r <= repeats; ++r)); do
  if wants lstm; then "${bench[@]}" lstm "${common[@]}" >>"$results"; fi
  for name in lm convlstm; do
    if wants $name; then
      data=$out/recurrent_$name.safetensors
      "${bench[@]}" $name --data "$data" "${common[@]}" >>"$results"
      "$PYTHON" tools/bench/recurrent_bench.py $name --data "$data" "${common[@]}" >>"$results"
    fi
  done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews" \
  "the figures; with --threads 2 on 2 CPUs, badly)"
echo
"$PYTHON" tools/bench/recurrent_bench.py --summarize "$results"
