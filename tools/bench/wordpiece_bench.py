#!/usr/bin/python3
"""WordPiece throughput of HuggingFace's BertTokenizer algorithm in pure Python.

A port of the slow BertTokenizer of HuggingFace transformers (tokenization_bert.py:
BasicTokenizer + WordpieceTokenizer, driven by PreTrainedTokenizer.tokenize as
BertTokenizer.from_pretrained sets it up: the five special tokens are cut out first and kept
whole). No transformers package is needed. The port is checked against the golden fixture the
C++ tests use (--check), so the figures compare the same algorithm:

  /usr/bin/python3 tools/bench/wordpiece_bench.py --check tests/data/golden/wordpiece_basic
  /usr/bin/python3 tools/bench/wordpiece_bench.py --vocab VOCAB.txt --lowercase \
      data/spam_assassin/test.tsv

Prints one JSON object: tokens, seconds, tokens_per_s and, over the thread's CPU time instead of
wall time, tokens_per_cpu_s (one thread, like nlpkit_bench wordpiece).
"""
import argparse
import json
import sys
import time
import unicodedata

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class BertTokenizerPort:
    def __init__(self, vocab_path, lower_case, max_input_chars_per_word=100):
        self.vocab = {}
        with open(vocab_path, encoding="utf-8") as f:
            for index, line in enumerate(f.readlines()):
                self.vocab[line.rstrip("\n")] = index
        self.lower_case = lower_case
        self.max_chars = max_input_chars_per_word

    # PreTrainedTokenizer.tokenize: specials first (kept verbatim), the rest lowercased
    # character by character (its re.sub with "(.+?)"), then BertTokenizer._tokenize.
    def tokenize(self, text):
        pieces = self._split_specials(text)
        out = []
        for piece in pieces:
            if piece in SPECIALS:
                out.append(piece)
            elif piece:
                if self.lower_case:
                    piece = "".join(ch.lower() for ch in piece)
                for word in self._basic(piece):
                    if word in SPECIALS:  # never_split: a special formed by the cleaning
                        out.append(word)
                    else:
                        out.extend(self._wordpiece(word))
        return out

    def _split_specials(self, text):
        pieces, start, i = [], 0, 0
        while i < len(text):
            if text[i] == "[":
                hit = next((s for s in SPECIALS if text.startswith(s, i)), None)
                if hit:
                    pieces.append(text[start:i].rstrip())
                    pieces.append(hit)
                    i += len(hit)
                    # The whitespace after a special token is stripped too.
                    while i < len(text) and text[i].isspace():
                        i += 1
                    start = i
                    continue
            i += 1
        pieces.append(text[start:])
        return pieces

    def _basic(self, text):
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                chars.append(" ")
            elif _is_chinese_char(cp):
                chars.extend((" ", ch, " "))
            else:
                chars.append(ch)
        words = []
        for word in "".join(chars).split():
            if word in SPECIALS:  # BasicTokenizer's never_split
                words.append(word)
                continue
            if self.lower_case:
                word = word.lower()
                word = "".join(c for c in unicodedata.normalize("NFD", word)
                               if unicodedata.category(c) != "Mn")
            current = []
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(ch)
                else:
                    current.append(ch)
            if current:
                words.append("".join(current))
        return " ".join(words).split()

    def _wordpiece(self, word):
        if len(word) > self.max_chars:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                sub = word[start:end]
                if start > 0:
                    sub = "##" + sub
                if sub in self.vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return ["[UNK]"]
            pieces.append(found)
            start = end
        return pieces


def check(golden_dir):
    cases = [json.loads(line) for line in open(f"{golden_dir}/cases.jsonl", encoding="utf-8")]
    tokenizers = {lc: BertTokenizerPort(f"{golden_dir}/vocab.txt", lc) for lc in (True, False)}
    bad = 0
    for case in cases:
        tok = tokenizers[case["lower_case"]]
        got = tok.tokenize(case["text"])
        ids = [tok.vocab[t] for t in got]
        if got != case["tokens"] or ids != case["ids"]:
            bad += 1
            print(f"mismatch: {case['text']!r} lower_case={case['lower_case']}\n"
                  f"  expected {case['tokens']}\n  got      {got}", file=sys.stderr)
    print(f"{len(cases) - bad}/{len(cases)} cases match")
    return 1 if bad else 0


def read_texts(paths):
    # As nlpkit_bench does: lines split on "\n" (a trailing "\r" dropped), fields on tabs.
    texts = []
    for path in paths:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        column = lines[0].split("\t").index("text")
        for line in lines[1:]:
            fields = line.split("\t")
            if column < len(fields):
                texts.append(fields[column])
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="TSV files with a header and a 'text' column")
    parser.add_argument("--vocab", help="vocab.txt")
    parser.add_argument("--lowercase", action="store_true")
    parser.add_argument("--check", metavar="GOLDEN_DIR", help="compare with a golden fixture")
    parser.add_argument("--dump", metavar="PATH", help="also write the tokens, one line per text")
    args = parser.parse_args()
    if args.check:
        return check(args.check)
    tokenizer = BertTokenizerPort(args.vocab, args.lowercase)
    texts = read_texts(args.files)
    start, cpu_start = time.perf_counter(), time.thread_time()
    outputs = [tokenizer.tokenize(text) for text in texts]
    seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - cpu_start
    tokens = sum(len(o) for o in outputs)
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            for o in outputs:
                f.write(" ".join(o) + "\n")
    print(json.dumps({"impl": "python", "texts": len(texts), "tokens": tokens,
                      "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 3),
                      "tokens_per_s": round(tokens / seconds),
                      "tokens_per_cpu_s": round(tokens / cpu_seconds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
