#!/usr/bin/env bash
# Transformer benchmarks (issue "Attention, Seq2Seq and Transformer", section 7), same weights,
# data, batch and threads on both sides:
# - training: nlpkit's Transformer (nlpkit_bench transformer) vs the same model written with
#   torch.nn.Transformer in PyTorch eager Python (tools/bench/transformer_bench.py); tokens/s
#   (source + target tokens), the ratio, and the largest loss difference over the steps;
# - decoding: nlpkit's beam search (beam 5) words/s with the key/value cache and by recomputing
#   the prefix at every step, and whether both give the same hypotheses.
# Runs are interleaved and repeated; the summary shows medians.
# --concurrent runs both training sides at the same time, one thread each, each pinned to its
# own core (swapped every repeat), and compares their step times over the window in which both
# ran: on a shared machine whose speed drifts, both sides then see the same conditions.
#
#   tools/bench/run_transformer.sh                  # 2 threads, 3 x (2 warm-up + 10 steps)
#   tools/bench/run_transformer.sh --threads 1 --repeats 5
#   tools/bench/run_transformer.sh --concurrent --steps 30 --repeats 4
#   tools/bench/run_transformer.sh --data-args '--hidden 64 --layers 1 --batches 2' --steps 2
#
# Options: --threads N (2), --warmup N (2), --steps N (10), --repeats N (3), --concurrent (needs
# 2 CPUs and taskset; sets --threads 1), --data-args 'ARGS'
# (passed to nlpkit_bench transformer --write-data: --batch, --src-len, --tgt-len, --vocab,
# --hidden, --heads, --layers, --ff, --batches, --seed). Environment: BUILD_DIR (build), PYTHON
# (/usr/bin/python3, which has torch), JOBS (build parallelism, nproc). OPENBLAS_NUM_THREADS
# defaults to --threads and GOMP_SPINCOUNT to 10000 on both sides (see run_bert.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
threads=2 warmup=2 steps=10 repeats=3 data_args='' concurrent=0
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  if [[ $1 == --concurrent ]]; then
    concurrent=1 threads=1
    shift
    continue
  fi
  [[ $# -ge 2 ]] || { echo "run_transformer.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;;
    --warmup) warmup=$2 ;;
    --steps) steps=$2 ;;
    --repeats) repeats=$2 ;;
    --data-args) data_args=$2 ;;
    *) echo "run_transformer.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
((concurrent)) && threads=1

if ((concurrent)) && { [[ $(nproc) -lt 2 ]] || ! command -v taskset >/dev/null; }; then
  echo "run_transformer.sh: --concurrent needs 2 CPUs and taskset (util-linux)" >&2
  exit 2
fi
if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "run_transformer.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2
  exit 2
fi
if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if ! log=$(cmake --build "$BUILD_DIR" -j"${JOBS:-$(nproc)}" --target nlpkit_bench 2>&1); then
  echo "$log" >&2
  echo "run_transformer.sh: building nlpkit_bench in $BUILD_DIR failed" >&2
  exit 1
fi
bench=("$BUILD_DIR/nlpkit_bench" transformer)

out=$BUILD_DIR/bench
mkdir -p "$out"
results=$out/transformer_results.jsonl
data=$out/transformer.safetensors
: >"$results"
# shellcheck disable=SC2086  # data_args is a list of options
"${bench[@]}" --write-data "$data" $data_args

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads $threads," \
  "$repeats x ($warmup warm-up + $steps timed steps), results $results"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
common=(--data "$data" --threads "$threads" --warmup "$warmup" --steps "$steps")
for ((r = 1; r <= repeats; ++r)); do
  if ((concurrent)); then
    ours=$((r % 2)) theirs=$(((r + 1) % 2))
    taskset -c "$ours" "${bench[@]}" "${common[@]}" >"$out/transformer_ours.json" &
    taskset -c "$theirs" "$PYTHON" tools/bench/transformer_bench.py "${common[@]}" \
      >"$out/transformer_theirs.json"
    wait $!
    cat "$out/transformer_ours.json" "$out/transformer_theirs.json" >>"$results"
  else
    "${bench[@]}" "${common[@]}" >>"$results"
    "$PYTHON" tools/bench/transformer_bench.py "${common[@]}" >>"$results"
  fi
  "${bench[@]}" "${common[@]}" --mode decode >>"$results"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews" \
  "the figures)"
echo
"$PYTHON" tools/bench/transformer_bench.py --summarize "$results"
