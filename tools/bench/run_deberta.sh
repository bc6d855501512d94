#!/usr/bin/env bash
# DeBERTa training-step benchmark (issue "DeBERTa", section 6), in one run: nlpkit's
# DebertaForMaskedLM vs nlpkit's BertForPreTraining of the same size (goal: DeBERTa at most 1.4x
# BERT's step time), and vs HuggingFace's DebertaV2ForMaskedLM written in PyTorch eager Python
# (tools/bench/deberta_model.py through bert_bench.py), same data, weights and threads. Shape:
# hidden 256, 4 layers, 4 heads, intermediate 1024, vocabulary 8000, dropout 0.1, DeBERTa-v3
# attention (c2p + p2c, 256 log buckets, shared keys, max_position_embeddings 512 on both models);
# T=128 with B=32 and T=512 with B=--batch-512 (8 by default: 32 x 512 takes 6-17 s per step on
# 2 CPUs; say which one you ran). AdamW, clip_grad_norm_(1.0); MLM loss on the masked positions
# (+ NSP for BERT). Runs are interleaved and repeated; the summary shows medians and the ratios.
#
#   tools/bench/run_deberta.sh                          # 2 threads, 3 x (3 warm-up + 10 steps)
#   tools/bench/run_deberta.sh --batch-512 32 --repeats 2
#   tools/bench/run_deberta.sh --warmup 1 --steps 1 --repeats 1 --quick 1   # smoke test
#
# Options: --threads N (2), --warmup N (3), --steps N (10), --repeats N (3), --batch-512 N (8),
# --seq-lens 'LIST' ('128 512'), --quick 0|1 (1: hidden 32, 2 layers, vocab 200: checks the
# script, not the speed). Environment: BUILD_DIR (build), PYTHON (/usr/bin/python3), JOBS,
# SKIP_BUILD=1 (use $BUILD_DIR/nlpkit_bench as it is).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
threads=2 warmup=3 steps=10 repeats=3 batch_512=8 seq_lens='128 512' quick=0
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run_deberta.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;;
    --warmup) warmup=$2 ;;
    --steps) steps=$2 ;;
    --repeats) repeats=$2 ;;
    --batch-512) batch_512=$2 ;;
    --seq-lens) seq_lens=$2 ;;
    --quick) quick=$2 ;;
    *) echo "run_deberta.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done

if ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
  echo "run_deberta.sh: $PYTHON cannot import torch and numpy (apt-get install python3-torch)" >&2
  exit 2
fi
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  :
elif [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if [[ ${SKIP_BUILD:-0} != 1 ]] &&
  ! log=$(cmake --build "$BUILD_DIR" -j"${JOBS:-$(nproc)}" --target nlpkit_bench 2>&1); then
  echo "$log" >&2
  echo "run_deberta.sh: building nlpkit_bench in $BUILD_DIR failed" >&2
  exit 1
fi
bench=("$BUILD_DIR/nlpkit_bench" bert)

out=$BUILD_DIR/bench
mkdir -p "$out"
results=$out/deberta_results.jsonl
: >"$results"
shape=(--max-position-embeddings 512 --position-buckets 256)
[[ $quick == 1 ]] && shape+=(--hidden-size 32 --num-layers 2 --intermediate-size 64 --vocab-size 200)
for t in $seq_lens; do
  b=32
  [[ $t -gt 128 ]] && b=$batch_512
  for model in bert deberta; do
    "${bench[@]}" --write-data "$out/${model}_$t.safetensors" --model "$model" --seq-len "$t" \
      --batch-size "$b" "${shape[@]}"
  done
done

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), threads $threads," \
  "$repeats x ($warmup warm-up + $steps timed steps), results $results"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
common=(--threads "$threads" --warmup "$warmup" --steps "$steps")
for ((r = 1; r <= repeats; ++r)); do
  for t in $seq_lens; do
    # BERT and DeBERTa in one process, a step of each in turn (--paired): the machine's other
    # load slows both alike, so their step-for-step ratio is what the goal is judged on.
    "${bench[@]}" --data "$out/bert_$t.safetensors" --paired "$out/deberta_$t.safetensors" \
      "${common[@]}" >>"$results"
    "$PYTHON" tools/bench/bert_bench.py --data "$out/deberta_$t.safetensors" "${common[@]}" \
      >>"$results"
  done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews" \
  "the figures)"
echo
"$PYTHON" tools/bench/bert_bench.py --summarize "$results"
