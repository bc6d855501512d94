#!/usr/bin/env bash
# Does regularization help with little data? (issue "Regularized and adversarial training",
# section 6.) SpamAssassin with only 500 training examples (a stratified sample, the same for
# every run: data.train_examples=500), the full validation and test splits; each setting trained
# with 3 seeds; prints test accuracy and macro F1 as mean +- std (sample std over the seeds).
#
#   tools/experiments/spam500.sh                  # all settings, seeds 1 2 3
#   tools/experiments/spam500.sh --only textcnn   # settings whose name starts with textcnn
#   SEEDS="1 2" tools/experiments/spam500.sh
#
# Needs `build/nlpkit data prepare spam_assassin` and, for the BERT rows, the pretrained small
# BERT of configs/bert_pretrain_small.yaml in runs/bert_pretrain_small. Runs go to
# runs/spam500/SETTING_sSEED (an existing finished run is reused: delete it to rerun).
set -euo pipefail
cd "$(dirname "$0")/../.."
NLPKIT=${NLPKIT:-build/nlpkit}
SEEDS=${SEEDS:-1 2 3}
only=""
[[ ${1:-} == --only ]] && only=$2

textcnn=(configs/quickstart.yaml data.train_examples=500 trainer.epochs=10 logging.every=1000
         logging.progress=line)
bert=(configs/bert_finetune_spam.yaml data.train_examples=500 trainer.epochs=5
      trainer.eval_every=0 logging.every=1000 logging.progress=line)
eda=(augmentation.eda.copies=2)
declare -A settings=(
  [textcnn_plain]="${textcnn[*]}"
  [textcnn_eda]="${textcnn[*]} ${eda[*]}"
  [textcnn_rdrop]="${textcnn[*]} regularization.rdrop.alpha=1"
  [textcnn_sift]="${textcnn[*]} regularization.sift.weight=1"
  [bert_plain]="${bert[*]}"
  [bert_sift]="${bert[*]} regularization.sift.weight=1"
)
mkdir -p runs/spam500
order=(textcnn_plain textcnn_eda textcnn_rdrop textcnn_sift bert_plain bert_sift)

for name in "${order[@]}"; do
  [[ -n $only && $name != "$only"* ]] && continue
  for seed in $SEEDS; do
    dir=runs/spam500/${name}_s$seed
    if [[ -f $dir/test_metrics.json ]]; then continue; fi
    rm -rf "$dir"
    start=$(date +%s)
    # shellcheck disable=SC2086  # the settings are word lists
    "$NLPKIT" train ${settings[$name]} seed="$seed" output_dir="$dir" >"$dir.log" 2>&1 ||
      { echo "spam500: $name seed $seed failed, see $dir.log" >&2; exit 1; }
    echo "$name seed $seed: $(($(date +%s) - start)) s"
  done
done

/usr/bin/python3 - "$SEEDS" "${order[@]}" <<'PY'
import json, os, statistics, sys
seeds = sys.argv[1].split()
print("\n| setting | test accuracy | test macro F1 | runs |\n|---|---|---|---|")
for name in sys.argv[2:]:
    acc, f1 = [], []
    for seed in seeds:
        path = f"runs/spam500/{name}_s{seed}/test_metrics.json"
        if os.path.exists(path):
            m = json.load(open(path))
            acc.append(m["accuracy"]); f1.append(m["macro_f1"])
    if not acc:
        continue
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"| {name} | {statistics.mean(acc):.3f} +- {sd(acc):.3f} | "
          f"{statistics.mean(f1):.3f} +- {sd(f1):.3f} | {len(acc)} |")
PY
