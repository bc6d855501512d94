#!/usr/bin/env bash
# SentencePiece tokenization throughput, one thread: nlpkit's SentencePieceTokenizer
# (nlpkit_bench sentencepiece) and WordPieceTokenizer (nlpkit_bench wordpiece) on the same texts,
# each with a model learnt by `nlpkit tokenizer train` on the same lines of the training split.
# No Python peer: neither sentencepiece nor transformers is installed for Python here.
# See docs/benchmarks.md.
#
#   tools/bench/run_sentencepiece.sh                  # data/spam_assassin, 30000 entries
#   DATA=/path/to/spam_assassin tools/bench/run_sentencepiece.sh --vocab-size 8000 --train-lines 0
#
# Options: --vocab-size N (30000), --train-lines N (1000 first bodies of train.tsv to learn from,
# 0 = all), --model-type unigram|bpe (unigram), --repeat N (5 passes; the median counts).
# Environment: DATA (data/spam_assassin: train.tsv, valid.tsv, test.tsv with a `text` column),
# BUILD_DIR (build), PYTHON (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-data/spam_assassin}
vocab_size=30000 train_lines=1000 model_type=unigram repeat=5
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run_sentencepiece.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --vocab-size) vocab_size=$2 ;;
    --train-lines) train_lines=$2 ;;
    --model-type) model_type=$2 ;;
    --repeat) repeat=$2 ;;
    *) echo "run_sentencepiece.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
for f in train valid test; do
  [[ -f $DATA/$f.tsv ]] || { echo "run_sentencepiece.sh: no $DATA/$f.tsv (nlpkit data prepare spam_assassin)" >&2; exit 2; }
done
for b in nlpkit nlpkit_bench; do
  [[ -x $BUILD_DIR/$b ]] || { echo "run_sentencepiece.sh: build $BUILD_DIR/$b first" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The training split's texts (the `text` column), the first train_lines of them, as the corpus.
"$PYTHON" - "$DATA/train.tsv" "$tmp/corpus.txt" "$train_lines" <<'PY'
import sys
rows = [r for r in open(sys.argv[1], encoding="utf-8").read().split("\n")[1:] if r]
column = open(sys.argv[1], encoding="utf-8").readline().rstrip("\n").split("\t").index("text")
limit = int(sys.argv[3]) or len(rows)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for row in rows[:limit]:
        out.write(row.split("\t")[column] + "\n")
PY
corpus_size=$(du -h "$tmp/corpus.txt" | cut -f1)
start=$(date +%s%N)
"$BUILD_DIR/nlpkit" tokenizer train --type sentencepiece "$tmp/corpus.txt" --vocab-size "$vocab_size" \
  --model-type "$model_type" --output "$tmp/spm.model" 2>/dev/null
echo "sentencepiece: $vocab_size-piece $model_type model learnt in $((($(date +%s%N) - start) / 1000000)) ms" \
     "(nlpkit tokenizer train, 1 thread, $corpus_size corpus)"
start=$(date +%s%N)
"$BUILD_DIR/nlpkit" tokenizer train --type wordpiece "$tmp/corpus.txt" --vocab-size "$vocab_size" \
  --min-frequency 20 --output "$tmp/vocab.txt" 2>/dev/null
echo "wordpiece: $(wc -l < "$tmp/vocab.txt")-entry vocabulary learnt in $((($(date +%s%N) - start) / 1000000)) ms" \
     "(min_frequency 20, lowercase)"

files=("$DATA/valid.tsv" "$DATA/test.tsv")
spm=$("$BUILD_DIR/nlpkit_bench" sentencepiece --model "$tmp/spm.model" --repeat "$repeat" "${files[@]}")
wp=$("$BUILD_DIR/nlpkit_bench" wordpiece --vocab "$tmp/vocab.txt" --repeat "$repeat" "${files[@]}")
echo "$spm"
echo "$wp"
"$PYTHON" - "$spm" "$wp" <<'PY'
import json, sys
s, w = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{s['texts']} texts, {s['bytes'] / 1e6:.1f} MB")
print(f"{'':<30}{'tokens':>10} {'tokens/s':>11} {'tokens/CPU s':>13} {'MB/CPU s':>9}")
for name, r in (("SentencePiece tokenize", s), ("WordPiece tokenize", w)):
    cpu = sorted(r["tokenize_cpu_seconds"])[len(r["tokenize_cpu_seconds"]) // 2]
    print(f"{name:<30}{r['tokens']:>10,} {r['tokenize_tokens_per_s']:>11,} "
          f"{r['tokenize_tokens_per_cpu_s']:>13,} {r['bytes'] / 1e6 / cpu:>9.1f}")
for name, r in (("SentencePiece encode (ids)", s), ("WordPiece encode (ids)", w)):
    print(f"{name:<30}{r['tokens']:>10,} {r['encode_tokens_per_s']:>11,}")
PY
