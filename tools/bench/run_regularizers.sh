#!/usr/bin/env bash
# Cost of the training-step regularizers (issue "Regularized and adversarial training",
# section 8): the step time of R-Drop, SiFT and Mixup relative to a plain step, for the
# TextCNN-BiLSTM-Attention classifier (configs/quickstart.yaml) and the small BERT classifier
# (configs/bert_finetune_spam.yaml, from scratch so that no pretrained run is needed), measured
# in one run of this script: the settings alternate, each repeat trains every setting for
# 2 x --steps steps (the first half warms up, the second is timed), and the summary gives the median ms per timed step and the ratio to
# plain. Needs `build/nlpkit data prepare spam_assassin`.
#
#   tools/bench/run_regularizers.sh                   # 2 threads, 3 repeats, 8 + 8 steps
#   tools/bench/run_regularizers.sh --threads 1 --repeats 2 --only textcnn
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
threads=2 repeats=3 steps=8 only=""
while [[ $# -gt 0 ]]; do
  [[ $1 == -h || $1 == --help ]] && { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
  [[ $# -ge 2 ]] || { echo "run_regularizers.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;; --repeats) repeats=$2 ;; --steps) steps=$2 ;; --only) only=$2 ;;
    *) echo "run_regularizers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -f data/spam_assassin/train.tsv ]] ||
  { echo "run_regularizers.sh: run \`$BUILD_DIR/nlpkit data prepare spam_assassin\` first" >&2; exit 2; }
cmake --build "$BUILD_DIR" --target nlpkit >/dev/null
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

out=$BUILD_DIR/bench/regularizers
rm -rf "$out" && mkdir -p "$out"
total=$((2 * steps))
# A log record at the end of the warm-up and one at the end: the second one's ms_per_step
# covers exactly the timed steps.
common=(threads="$threads" trainer.max_steps=$total logging.every=$steps logging.progress=line
        logging.tensorboard=false trainer.eval_each_epoch=false trainer.eval_every=0 data.test='""'
        data.valid='""' trainer.save_every=0)
models=(textcnn bert)
settings=(plain rdrop sift mixup)
# train MODEL SETTING RUN_DIR
train() {
  local args=()
  case $1 in
    textcnn) args=(configs/quickstart.yaml) ;;
    bert) args=(configs/bert_finetune_spam.yaml 'model.pretrained=""' 'tokenizer.vocab=""') ;;
  esac
  case $2 in
    rdrop) args+=(regularization.rdrop.alpha=1) ;;
    sift) args+=(regularization.sift.weight=1) ;;
    mixup) args+=(regularization.mixup.alpha=0.4) ;;
  esac
  "$BUILD_DIR/nlpkit" train "${args[@]}" "${common[@]}" output_dir="$3" >"$3.log" 2>&1
}
echo "machine: $(nproc) CPUs; threads $threads; $repeats repeats of $steps warm-up + $steps timed steps"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= repeats; ++r)); do
  for m in "${models[@]}"; do
    [[ -n $only && $m != "$only" ]] && continue
    for s in "${settings[@]}"; do
      run=$out/${m}_${s}_$r
      train "$m" "$s" "$run" || { echo "run_regularizers.sh: $m $s failed, see $run.log" >&2; exit 1; }
    done
  done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" "$total" <<'PY'
import glob, json, os, statistics, sys
out, total = sys.argv[1], int(sys.argv[2])
rows = {}
for path in glob.glob(f"{out}/*/metrics.jsonl"):
    model, setting, _ = os.path.basename(os.path.dirname(path)).rsplit("_", 2)
    last = [r for r in map(json.loads, open(path)) if r["split"] == "train" and r["step"] == total]
    if last:
        rows.setdefault(model, {}).setdefault(setting, []).append(last[0]["ms_per_step"])
print("\n| model | setting | median ms/step | x plain |\n|---|---|---:|---:|")
for model, settings in rows.items():
    plain = statistics.median(settings["plain"])
    for setting in ("plain", "rdrop", "sift", "mixup"):
        if setting in settings:
            ms = statistics.median(settings[setting])
            print(f"| {model} | {setting} | {ms:.1f} | {ms / plain:.2f}x |")
PY
