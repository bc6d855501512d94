#!/usr/bin/env bash
# BERT training-step benchmark (issue "BERT", section 7), same data, weights and threads on both
# sides: nlpkit's BertForPreTraining (nlpkit_bench bert) vs HuggingFace's BertForPreTraining
# written in PyTorch eager Python (tools/bench/bert_bench.py), B=32, T=128, hidden 256, 4 layers,
# 4 heads, intermediate 1024, vocabulary 8000, dropout 0.1; MLM loss on the masked positions
# + NSP, AdamW, clip_grad_norm_(1.0). Runs are interleaved and repeated; the summary shows
# medians, the ratio nlpkit / PyTorch in tokens/s, per-phase times and the loss agreement.
# nlpkit runs twice per repeat: with its own dropout masks ("nlpkit", the figure) and with
# NLPKIT_TORCH_DROPOUT=1 ("nlpkit-torch-dropout": ATen's masks, losses bitwise PyTorch's).
#
#   tools/bench/run_bert.sh                       # 2 threads, 3 x (3 warm-up + 10 steps)
#   tools/bench/run_bert.sh --threads 1 --repeats 5
#   tools/bench/run_bert.sh --data-args '--dropout 0 --attention-dropout 0'
#   tools/bench/run_bert.sh --profile 1           # then one profiled run per side: op tables
#
# Options: --threads N (2), --warmup N (3), --steps N (10), --repeats N (3), --data-args 'ARGS'
# (passed to nlpkit_bench bert --write-data: model, data and optimizer options, see
# nlpkit_bench bert --help), --profile 0|1 (0). Environment: BUILD_DIR (build), PYTHON
# (/usr/bin/python3, which has torch), JOBS (build parallelism, nproc). Both sides get the same
# thread pools: OPENBLAS_NUM_THREADS defaults to --threads and GOMP_SPINCOUNT to 10000 (see
# run_recurrent.sh and docs/benchmarks.md, "Thread pools").
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
threads=2 warmup=3 steps=10 repeats=3 data_args='' profile=0
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run_bert.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;;
    --warmup) warmup=$2 ;;
    --steps) steps=$2 ;;
    --repeats) repeats=$2 ;;
    --data-args) data_args=$2 ;;
    --profile) profile=$2 ;;
    *) echo "run_bert.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done

if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "run_bert.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2
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
  echo "run_bert.sh: building nlpkit_bench in $BUILD_DIR failed" >&2
  exit 1
fi
bench=("$BUILD_DIR/nlpkit_bench" bert)

out=$BUILD_DIR/bench
mkdir -p "$out"
results=$out/bert_results.jsonl
data=$out/bert.safetensors
: >"$results"
# shellcheck disable=SC2086  # data_args is a list of options
"${bench[@]}" --write-data "$data" $data_args

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads $threads," \
  "$repeats x ($warmup warm-up + $steps timed steps), results $results"
echo "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS GOMP_SPINCOUNT=$GOMP_SPINCOUNT" \
  "OMP_WAIT_POLICY=${OMP_WAIT_POLICY-} MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_-}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
common=(--data "$data" --threads "$threads" --warmup "$warmup" --steps "$steps")
for ((r = 1; r <= repeats; ++r)); do
  "${bench[@]}" "${common[@]}" >>"$results"
  NLPKIT_TORCH_DROPOUT=1 "${bench[@]}" "${common[@]}" >>"$results"
  "$PYTHON" tools/bench/bert_bench.py "${common[@]}" >>"$results"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews" \
  "the figures; with --threads 2 on 2 CPUs, badly)"
echo
"$PYTHON" tools/bench/bert_bench.py --summarize "$results"
if [[ $profile == 1 ]]; then
  # Profiled runs are slower (every operator is recorded) and not part of the figures above.
  echo
  "${bench[@]}" "${common[@]}" --profile "$out/bert_nlpkit_trace.json" >/dev/null
  echo
  "$PYTHON" tools/bench/bert_bench.py "${common[@]}" --profile "$out/bert_pytorch_trace.json" \
    >/dev/null
fi
