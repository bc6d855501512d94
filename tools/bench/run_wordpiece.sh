#!/usr/bin/env bash
# WordPiece tokenization throughput, one thread: nlpkit (nlpkit_bench wordpiece) against a
# pure-Python port of HuggingFace's BertTokenizer (wordpiece_bench.py, checked against the golden
# fixture first), on the same texts with the same vocabulary; the two token streams must be
# identical. The vocabulary is learnt first with `nlpkit tokenizer train` on the training split.
# See docs/benchmarks.md.
#
#   tools/bench/run_wordpiece.sh                       # data/spam_assassin, 30000 entries
#   DATA=/path/to/spam_assassin tools/bench/run_wordpiece.sh --vocab-size 8000 --min-frequency 20
#
# Options: --vocab-size N (30000), --min-frequency N (20), --repeat N (5, nlpkit passes; the
# median counts). Environment: DATA (data/spam_assassin: train.tsv, valid.tsv, test.tsv with a
# `text` column), BUILD_DIR (build), PYTHON (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-data/spam_assassin}
vocab_size=30000 min_frequency=20 repeat=5
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run_wordpiece.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --vocab-size) vocab_size=$2 ;;
    --min-frequency) min_frequency=$2 ;;
    --repeat) repeat=$2 ;;
    *) echo "run_wordpiece.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
for f in train valid test; do
  [[ -f $DATA/$f.tsv ]] || { echo "run_wordpiece.sh: no $DATA/$f.tsv (nlpkit data prepare spam_assassin)" >&2; exit 2; }
done
for b in nlpkit nlpkit_bench; do
  [[ -x $BUILD_DIR/$b ]] || { echo "run_wordpiece.sh: build $BUILD_DIR/$b first" >&2; exit 2; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" tools/bench/wordpiece_bench.py --check tests/data/golden/wordpiece_basic

# The training split's texts (the `text` column) as the corpus.
"$PYTHON" - "$DATA/train.tsv" "$tmp/corpus.txt" <<'PY'
import sys
rows = open(sys.argv[1], encoding="utf-8").read().split("\n")
column = rows[0].split("\t").index("text")
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for row in rows[1:]:
        if row:
            out.write(row.split("\t")[column] + "\n")
PY
start=$(date +%s%N)
"$BUILD_DIR/nlpkit" tokenizer train --type wordpiece "$tmp/corpus.txt" --vocab-size "$vocab_size" \
  --min-frequency "$min_frequency" --output "$tmp/vocab.txt" 2>/dev/null
echo "vocabulary: $(wc -l < "$tmp/vocab.txt") entries learnt in $((($(date +%s%N) - start) / 1000000)) ms" \
     "(nlpkit tokenizer train, $(du -h "$tmp/corpus.txt" | cut -f1) corpus, min_frequency $min_frequency)"

files=("$DATA/valid.tsv" "$DATA/test.tsv")
cpp=$("$BUILD_DIR/nlpkit_bench" wordpiece --vocab "$tmp/vocab.txt" --repeat "$repeat" \
  --dump "$tmp/cpp.txt" "${files[@]}")
py=$("$PYTHON" tools/bench/wordpiece_bench.py --vocab "$tmp/vocab.txt" --lowercase \
  --dump "$tmp/py.txt" "${files[@]}")
echo "$cpp"
echo "$py"
if cmp -s "$tmp/cpp.txt" "$tmp/py.txt"; then echo "tokens: identical"; else echo "tokens: DIFFER"; exit 1; fi
"$PYTHON" - "$cpp" "$py" <<'PY'
import json, sys
c, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{c['texts']} texts, {c['bytes'] / 1e6:.1f} MB, {c['tokens']} tokens")
print(f"{'':<26}{'tokens/s':>10} {'x Python':>9} {'tokens/CPU s':>13} {'x Python':>9}")
rows = [("nlpkit tokenize (strings)", c["tokenize_tokens_per_s"], c["tokenize_tokens_per_cpu_s"]),
        ("nlpkit encode (ids)", c["encode_tokens_per_s"], None),
        ("Python BertTokenizer port", p["tokens_per_s"], p["tokens_per_cpu_s"])]
for name, wall, cpu in rows:
    line = f"{name:<26}{wall:>10,} {wall / p['tokens_per_s']:>8.1f}x"
    if cpu:
        line += f" {cpu:>13,} {cpu / p['tokens_per_cpu_s']:>8.1f}x"
    print(line)
PY
