#!/usr/bin/env bash
# Data-parallel scaling on CPU: each config trained for the same steps and the same global batch
# on 1 rank (`nlpkit train`, T threads) and on 2 Gloo ranks (`nlpkit launch --nproc 2 train`,
# T/2 threads each, batch_size/2 each), so both use the same cores and see the same examples per
# step. Throughput is the trainer's tokens/s (summed over the ranks), the median of the logged
# steps after the first two; the ratio is 2 ranks / 1 rank.
#
#   tools/bench/run_scaling.sh                  # quickstart classifier + small BERT, 40 steps
#   tools/bench/run_scaling.sh --tiny           # tiny configs, a few steps: a smoke test, seconds
#   tools/bench/run_scaling.sh --threads 4 --steps 80
#
# Options: --steps N (40; --tiny: 6), --threads T (total cores, default nproc; even), --tiny,
# --configs 'a.yaml b.yaml' (default configs/quickstart.yaml configs/bert_pretrain_small.yaml,
# which need `nlpkit data prepare spam_assassin`). Environment: BUILD_DIR (build), PYTHON
# (/usr/bin/python3), OUT (a temporary folder; runs and the summary table land there),
# GOMP_SPINCOUNT (10000).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
steps='' threads=$(nproc) tiny=0 configs=''
while [[ $# -gt 0 ]]; do
  case $1 in
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --steps) steps=$2; shift ;;
    --threads) threads=$2; shift ;;
    --tiny) tiny=1 ;;
    --configs) configs=$2; shift ;;
    *) echo "run_scaling.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((tiny)); then
  steps=${steps:-6}
  configs=${configs:-"configs/tiny/classifier.yaml configs/tiny/bert_mlm.yaml"}
else
  steps=${steps:-40}
  configs=${configs:-"configs/quickstart.yaml configs/bert_pretrain_small.yaml"}
fi
((threads >= 2 && threads % 2 == 0)) || { echo "run_scaling.sh: --threads must be even" >&2; exit 2; }
nlpkit="$BUILD_DIR/nlpkit"
[[ -x "$nlpkit" ]] || { echo "run_scaling.sh: $nlpkit not built" >&2; exit 1; }
# OpenMP workers otherwise spin on the cores the other rank needs (docs/benchmarks.md, "Thread
# pools"); both runs get the same setting.
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

# The config's batch size: the global batch of both runs.
batch_of() { "$nlpkit" dump-config "$1" | awk '/^data:/{d=1} d && /^  batch_size:/{print $2; exit}'; }

summary="$OUT/scaling.tsv"
printf 'config\tglobal_batch\tsteps\tthreads\t1_rank_tok_s\t2_ranks_tok_s\tratio\n' > "$summary"
for config in $configs; do
  name=$(basename "$config" .yaml)
  batch=$(batch_of "$config")
  ((batch % 2 == 0)) || { echo "run_scaling.sh: $config: batch_size $batch is odd" >&2; exit 2; }
  common=(trainer.max_steps="$steps" trainer.epochs=1000 trainer.eval_each_epoch=false
          trainer.eval_every=0 'data.valid=""' 'data.test=""' logging.every=1 logging.progress=none
          logging.tensorboard=false trainer.keep_last=1 trainer.keep_best=false)
  echo "== $name: global batch $batch, $steps steps, $threads threads" >&2
  "$nlpkit" train "$config" "${common[@]}" output_dir="$OUT/$name-1" threads="$threads" \
    data.batch_size="$batch" > "$OUT/$name-1.log" 2>&1 ||
    { tail -5 "$OUT/$name-1.log" >&2; exit 1; }
  "$nlpkit" launch --nproc 2 train "$config" "${common[@]}" output_dir="$OUT/$name-2" \
    threads=$((threads / 2)) data.batch_size=$((batch / 2)) > "$OUT/$name-2.log" 2>&1 ||
    { tail -5 "$OUT/$name-2.log" >&2; exit 1; }
  "$PYTHON" - "$OUT/$name-1/metrics.jsonl" "$OUT/$name-2/metrics.jsonl" <<EOF >> "$summary"
import json, statistics, sys
def tps(path):
    rows = [json.loads(l) for l in open(path)]
    train = [r["tokens_per_second"] for r in rows if r.get("split") == "train"]
    return statistics.median(train[2:] if len(train) > 4 else train)
one, two = tps(sys.argv[1]), tps(sys.argv[2])
print(f"$name\t$batch\t$steps\t$threads\t{one:.0f}\t{two:.0f}\t{two / one:.2f}")
EOF
done
column -t -s $'\t' "$summary"
echo "runs and logs in $OUT" >&2
