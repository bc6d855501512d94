#!/usr/bin/env bash
# Word vectors and classic text classifiers against the tools people use, on SpamAssassin:
#  1. Word2Vec training speed (corpus words read per second per thread, as word2vec.c and
#     fastText count them) of `nlpkit train` (task word2vec) vs Debian's `fasttext skipgram|cbow`
#     (subwords off: -minn 0 -maxn 0, so it trains plain word2vec) vs gensim's Word2Vec, with the
#     same dimension, window, negatives, epochs, min count, subsampling, lr and threads, on the
#     same pre-tokenized corpus; then the nearest neighbours of a few words in each one's vectors.
#  2. The FastText classifier (configs/spam_fasttext.yaml) vs `fasttext supervised` (same
#     dimension, word n-grams, epochs): test accuracy and training time.
#  3. TF-IDF + logistic regression (configs/spam_tfidf_lr.yaml): test accuracy and macro F1.
# See docs/benchmarks.md. Needs tools/install-deps.sh --bench (fasttext, python3-gensim).
#
#   tools/bench/run_word2vec.sh                          # the full runs (minutes to an hour)
#   tools/bench/run_word2vec.sh --lines 300 --epochs 1   # a quick check that everything runs
#
# Options: --threads "1 4" (thread counts timed, default "1 2"), --epochs N (5), --dim N (100),
# --window N (5), --negative N (5), --min-count N (5), --lines N (first N documents of each split;
# 0 = all), --skip PART (w2v, fasttext or linear; repeatable). Environment: DATA
# (data/spam_assassin), BUILD_DIR (build), PYTHON (/usr/bin/python3), FASTTEXT (fasttext).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
DATA=${DATA:-data/spam_assassin}
FASTTEXT=${FASTTEXT:-fasttext}
threads_list="1 2" epochs=5 dim=100 window=5 negative=5 min_count=5 lines=0 skip=" "
while [[ $# -gt 0 ]]; do
  if [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
  [[ $# -ge 2 ]] || { echo "run_word2vec.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case $1 in
    --threads) threads_list=$2 ;;
    --epochs) epochs=$2 ;;
    --dim) dim=$2 ;;
    --window) window=$2 ;;
    --negative) negative=$2 ;;
    --min-count) min_count=$2 ;;
    --lines) lines=$2 ;;
    --skip) skip+="$2 " ;;
    *) echo "run_word2vec.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
for f in train valid test; do
  [[ -f $DATA/$f.tsv ]] || { echo "run_word2vec.sh: no $DATA/$f.tsv (nlpkit data prepare spam_assassin)" >&2; exit 2; }
done
[[ -x $BUILD_DIR/nlpkit ]] || { echo "run_word2vec.sh: build $BUILD_DIR/nlpkit first" >&2; exit 2; }
command -v "$FASTTEXT" >/dev/null || { echo "run_word2vec.sh: no fasttext (tools/install-deps.sh --bench)" >&2; exit 2; }
"$PYTHON" -c "import gensim" 2>/dev/null || { echo "run_word2vec.sh: no gensim for $PYTHON (tools/install-deps.sh --bench)" >&2; exit 2; }
nlpkit=$(realpath "$BUILD_DIR/nlpkit")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# One tokenization for every tool: lowercase, punctuation split off (as nlpkit's whitespace
# tokenizer does for ASCII), one document a line; fastText's supervised format beside it.
"$PYTHON" - "$DATA" "$tmp" "$lines" <<'PY'
import re, sys
data, out, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
token = re.compile(r"\w+|[^\w\s]")
for split in ("train", "valid", "test"):
    rows = open(f"{data}/{split}.tsv", encoding="utf-8").read().split("\n")
    header = rows[0].split("\t")
    t, l = header.index("text"), header.index("label")
    rows = [r.split("\t") for r in rows[1:] if r]
    if lines > 0:
        rows = rows[:lines]
    with open(f"{out}/{split}.txt", "w") as txt, open(f"{out}/{split}.ft", "w") as ft, \
         open(f"{out}/{split}.tsv", "w") as tsv:
        tsv.write("text\tlabel\n")
        for r in rows:
            words = " ".join(token.findall(r[t].lower()))
            txt.write(words + "\n")
            ft.write(f"__label__{r[l]} {words}\n")
            tsv.write(f"{words}\t{r[l]}\n")
PY
words=$(wc -w < "$tmp/train.txt")
echo "corpus: $(wc -l < "$tmp/train.txt") documents, $words words (SpamAssassin train, tokenized); epochs $epochs, dim $dim, window $window, negative $negative, min_count $min_count, sample 1e-3"
ft_version=$(dpkg-query -W -f='${Version}' fasttext 2>/dev/null || echo "?")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); fastText $ft_version"

if [[ $skip != *" w2v "* ]]; then
  echo
  echo "| tool | model | threads | words/s/thread | train s | wall s |"
  echo "|---|---|---:|---:|---:|---:|"
  for arch in skipgram cbow; do
    nl_arch=$([[ $arch == skipgram ]] && echo skip_gram || echo cbow)
    lr=$([[ $arch == skipgram ]] && echo 0.025 || echo 0.05)
    for t in $threads_list; do
      # nlpkit
      start=$(date +%s%N)
      "$nlpkit" train configs/spam_w2v.yaml output_dir="$tmp/nl_$arch" data.train="$tmp/train.txt" \
        threads="$t" model.architecture="$nl_arch" model.embedding_dim="$dim" model.window="$window" \
        model.negative="$negative" data.min_freq="$min_count" trainer.epochs="$epochs" \
        optimizer.lr="$lr" model.output_format=text logging.progress=none >"$tmp/nl.log" 2>&1 \
        || { cat "$tmp/nl.log"; exit 1; }
      wall=$(ms "$start")
      "$PYTHON" - "$tmp/nl_$arch/train_summary.json" "$arch" "$t" "$wall" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"| nlpkit | {sys.argv[2]} | {sys.argv[3]} | {s['words_per_second_per_thread']:.0f} | {s['seconds']:.1f} | {int(sys.argv[4]) / 1000:.1f} |")
PY
      # fastText, subwords off
      start=$(date +%s%N)
      "$FASTTEXT" "$arch" -input "$tmp/train.txt" -output "$tmp/ft_$arch" -dim "$dim" -ws "$window" \
        -neg "$negative" -epoch "$epochs" -minCount "$min_count" -t 1e-3 -lr "$lr" -thread "$t" \
        -minn 0 -maxn 0 -verbose 2 >"$tmp/ft.log" 2>&1 || { cat "$tmp/ft.log"; exit 1; }
      wall=$(ms "$start")
      # fastText redraws its progress line with \r; the last one holds the final rate.
      rate=$(tr '\r' '\n' < "$tmp/ft.log" | grep -o 'words/sec/thread: *[0-9]*' | tail -1 | grep -o '[0-9]*$')
      echo "| fastText $ft_version | $arch | $t | $rate | | $(awk "BEGIN{print $wall/1000}") |"
      # gensim
      "$PYTHON" - "$tmp/train.txt" "$arch" "$t" "$dim" "$window" "$negative" "$epochs" "$min_count" "$lr" "$tmp/gs_$arch.txt" <<'PY'
import sys, time, gensim
from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence
path, arch, t, dim, window, neg, epochs, min_count, lr, out = sys.argv[1:]
start = time.time()
model = Word2Vec(vector_size=int(dim), window=int(window), negative=int(neg), hs=0,
                 sg=1 if arch == "skipgram" else 0, min_count=int(min_count), sample=1e-3,
                 alpha=float(lr), min_alpha=float(lr) * 1e-4, workers=int(t), seed=1)
sentences = LineSentence(path, max_sentence_length=10 ** 9)
model.build_vocab(sentences)
train_start = time.time()
model.train(sentences, total_examples=model.corpus_count, epochs=int(epochs))
train = time.time() - train_start
words = model.corpus_total_words * int(epochs)
model.wv.save_word2vec_format(out)
print(f"| gensim {gensim.__version__} | {arch} | {t} | {words / train / int(t):.0f} | {train:.1f} | {time.time() - start:.1f} |")
PY
    done
  done
  echo
  echo "Nearest neighbours (skip-gram vectors, cosine):"
  for w in money free linux click email; do
    for tool in nl ft gs; do
      case $tool in
        nl) f="$tmp/nl_skipgram/vectors.txt" ;;
        ft) f="$tmp/ft_skipgram.vec" ;;
        gs) f="$tmp/gs_skipgram.txt" ;;
      esac
      printf '  %-8s %-6s %s\n' "$tool" "$w" "$("$nlpkit" embeddings neighbors "$f" "$w" -k 6 2>&1 | cut -f1 | tr '\n' ' ')"
    done
  done
fi

if [[ $skip != *" fasttext "* ]]; then
  echo
  echo "| classifier | test accuracy | train s |"
  echo "|---|---:|---:|"
  start=$(date +%s%N)
  "$nlpkit" train configs/spam_fasttext.yaml output_dir="$tmp/nl_sup" data.train="$tmp/train.tsv" \
    data.valid="$tmp/valid.tsv" data.test="$tmp/test.tsv" model.embedding_dim="$dim" \
    trainer.epochs="$epochs" logging.progress=none logging.tensorboard=false >"$tmp/sup.log" 2>&1 \
    || { cat "$tmp/sup.log"; exit 1; }
  wall=$(ms "$start")
  "$PYTHON" -c "import json,sys; print(f'| nlpkit fasttext (Adam, {sys.argv[2]} epochs) | {json.load(open(sys.argv[1]))[\"accuracy\"]:.4f} | {int(sys.argv[3])/1000:.1f} |')" \
    "$tmp/nl_sup/test_metrics.json" "$epochs" "$wall"
  start=$(date +%s%N)
  "$FASTTEXT" supervised -input "$tmp/train.ft" -output "$tmp/ft_sup" -dim "$dim" -wordNgrams 2 \
    -epoch "$epochs" -thread 1 -verbose 0 >/dev/null 2>&1
  wall=$(ms "$start")
  acc=$("$FASTTEXT" test "$tmp/ft_sup.bin" "$tmp/test.ft" | awk '/^P@1/ {print $2}')
  echo "| fasttext supervised (SGD, $epochs epochs, 1 thread) | $acc | $(awk "BEGIN{print $wall/1000}") |"
fi

if [[ $skip != *" linear "* ]]; then
  echo
  start=$(date +%s%N)
  "$nlpkit" train configs/spam_tfidf_lr.yaml output_dir="$tmp/lin" data.train="$tmp/train.tsv" \
    data.valid="$tmp/valid.tsv" data.test="$tmp/test.tsv" logging.progress=none >"$tmp/lin.log" 2>&1 \
    || { cat "$tmp/lin.log"; exit 1; }
  wall=$(ms "$start")
  "$PYTHON" - "$tmp/lin/linear_baseline.json" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b, t = r["best"], r["test"]
print(f"TF-IDF + logistic regression: best n-grams 1..{b['ngram_max']}, l2 {b['l2']:g} "
      f"({r['folds']}-fold CV {r['metric']} {b[r['metric']]:.4f}); test accuracy {t['accuracy']:.4f}, "
      f"macro F1 {t['macro_f1']:.4f}; {int(sys.argv[2]) / 1000:.1f} s with the grid")
PY
fi
