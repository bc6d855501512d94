#!/usr/bin/python3
"""PyTorch eager half of tools/bench/run.sh: the TextCNN-BiLSTM-Attention classifier of
modules/text_classifier.cpp written op for op in Python, trained on the batches and from the
initial weights that `nlpkit_bench --write-data FILE` wrote, with the same step as the nlpkit
half (tools/bench/classifier_bench.cpp): zero_grad(set_to_none=True), forward, cross-entropy,
loss.item(), backward, clip_grad_norm_, AdamW with decay/no-decay groups. Prints one JSON line.

Needs torch (1.13 from Debian: /usr/bin/python3; the pyenv python3 on PATH has no torch).

  /usr/bin/python3 tools/bench/classifier_bench.py --data bench.safetensors --threads 2
  /usr/bin/python3 tools/bench/classifier_bench.py --data bench.safetensors --cnn-over-padding
  /usr/bin/python3 tools/bench/classifier_bench.py --summarize results.jsonl

By default the model does what nlpkit's does, op for op, including running the sentence CNN
over the real sentences only. --cnn-over-padding runs it over every (B*D) row instead, as the
tutorial and a plain port do: the same outputs and gradients, more work.
The nlpkit model also validates its inputs (id range, mask layout) on every forward; a plain
PyTorch model does not, so that work is not copied here: it is part of what nlpkit pays.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import rnn

from safetensors_io import load_safetensors



class WordCNNEncoder(nn.Module):
    def __init__(self, embedding_dim, cnn_hidden_size, kernel_sizes):
        super().__init__()
        self.kernel_sizes = kernel_sizes
        self.convs = nn.ModuleList(
            nn.Conv2d(1, cnn_hidden_size, (k, embedding_dim)) for k in kernel_sizes)

    def forward(self, embedded, word_mask):  # (N, S, E), (N, S)
        s = embedded.size(1)
        max_k = max(self.kernel_sizes)
        x = embedded.masked_fill(~word_mask.unsqueeze(-1), 0)       # (N, S, E)
        x = F.pad(x, (0, 0, 0, max_k - 1)).unsqueeze(1)              # (N, 1, S+max_k-1, E)
        window_mask = word_mask.unsqueeze(1).to(x.dtype)             # (N, 1, S)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(x))                                  # (N, C, S+max_k-k, 1)
            h = h.squeeze(3).narrow(2, 0, s)                         # (N, C, S)
            pooled.append((h * window_mask).max(2)[0])               # (N, C)
        return torch.cat(pooled, 1)                                  # (N, K*C)


class SentEncoder(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, dropout):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, sentences, sentence_mask):  # (B, D, I), (B, D)
        d = sentences.size(1)
        lengths = sentence_mask.sum(1).cpu()
        packed = rnn.pack_padded_sequence(sentences, lengths.clamp_min(1), batch_first=True,
                                          enforce_sorted=False)
        output, _ = self.lstm(packed)
        hidden, _ = rnn.pad_packed_sequence(output, batch_first=True, padding_value=0.0,
                                            total_length=d)     # (B, D, 2H)
        return hidden * sentence_mask.unsqueeze(2).to(hidden.dtype)


class SentAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.key = nn.Linear(hidden_size, hidden_size)
        self.query = nn.Parameter(torch.empty(hidden_size).normal_(0.0, 0.05))

    def forward(self, hidden, sentence_mask):  # (B, D, H), (B, D)
        padding = ~sentence_mask
        empty = padding.all(1, keepdim=True)                          # (B, 1)
        scores = torch.matmul(self.key(hidden), self.query)           # (B, D)
        scores = scores.masked_fill(padding & ~empty, float("-inf"))
        scores = scores.masked_fill(empty, 0)
        attention = torch.softmax(scores, 1).masked_fill(padding, 0)  # (B, D)
        document = torch.bmm(attention.unsqueeze(1), hidden).squeeze(1)  # (B, H)
        return document, attention


class TextClassifier(nn.Module):
    def __init__(self, vocab_size, num_classes, embedding_dim, cnn_hidden_size, kernel_sizes,
                 hidden_size, num_layers, dropout, pad_id, cnn_over_padding=False):
        super().__init__()
        self.cnn_over_padding = cnn_over_padding
        self.word_embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.word_encoder = WordCNNEncoder(embedding_dim, cnn_hidden_size, kernel_sizes)
        self.sent_encoder = SentEncoder(cnn_hidden_size * len(kernel_sizes), hidden_size,
                                        num_layers, dropout)
        self.sent_attention = SentAttention(2 * hidden_size)
        self.fc = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, ids, word_mask, sentence_mask):  # (B, D, S), (B, D, S), (B, D)
        b, d, s = ids.shape
        words = self.dropout(self.word_embedding(ids))                       # (B, D, S, E)
        words, word_mask = words.reshape(b * d, s, -1), word_mask.reshape(b * d, s)
        if self.cnn_over_padding:  # the straightforward way: every row, padding included
            sentences = self.word_encoder(words, word_mask)                  # (B*D, K*C)
        else:  # as nlpkit: only the real sentences (padded ones encode to zeros)
            real = sentence_mask.reshape(b * d).nonzero().squeeze(1)         # (N)
            if real.size(0) == b * d:
                sentences = self.word_encoder(words, word_mask)
            else:
                encoded = self.word_encoder(words.index_select(0, real),
                                            word_mask.index_select(0, real))  # (N, K*C)
                sentences = torch.zeros(b * d, encoded.size(1), dtype=encoded.dtype).index_copy(
                    0, real, encoded)                                        # (B*D, K*C)
        sentences = sentences.view(b, d, -1)                                 # (B, D, K*C)
        hidden = self.sent_encoder(sentences, sentence_mask)                 # (B, D, 2H)
        document, attention = self.sent_attention(hidden, sentence_mask)     # (B, 2H)
        return self.fc(self.dropout(document)), attention                    # (B, C)


def train(args):
    """Runs the benchmark and returns its JSON-ready result."""
    torch.set_num_threads(args.threads)
    tensors, meta = load_safetensors(args.data)
    model = TextClassifier(
        vocab_size=int(meta["vocab_size"]), num_classes=int(meta["num_classes"]),
        embedding_dim=int(meta["embedding_dim"]), cnn_hidden_size=int(meta["cnn_hidden_size"]),
        kernel_sizes=[int(k) for k in meta["kernel_sizes"].split(",")],
        hidden_size=int(meta["hidden_size"]), num_layers=int(meta["num_layers"]),
        dropout=float(meta["dropout"]), pad_id=int(meta["pad_id"]),
        cnn_over_padding=args.cnn_over_padding)
    model.load_state_dict({name[len("model."):]: t for name, t in tensors.items()
                           if name.startswith("model.")})
    batches = [tuple(tensors[f"batch.{n}.{key}"]
                     for key in ("ids", "word_mask", "sentence_mask", "labels"))
               for n in range(int(meta["num_batches"]))]
    batch_size = int(meta["batch_size"])

    # The same groups as nlpkit's make_optimizer: weights (dim >= 2) decay, the rest does not.
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2]},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=args.lr, weight_decay=args.weight_decay)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    torch.manual_seed(int(meta["seed"]))  # the same dropout masks as the nlpkit side
    model.train()
    losses, step_ms = [], []
    profiler = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup and args.profile:
            profiler = torch.autograd.profiler.profile()
            profiler.__enter__()
        start = time.perf_counter()
        ids, word_mask, sentence_mask, labels = batches[step % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        logits, _ = model(ids, word_mask, sentence_mask)
        loss = F.cross_entropy(logits, labels)
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip_grad_norm)
        optimizer.step()
        if step >= args.warmup:
            step_ms.append(1000 * (time.perf_counter() - start))
    if profiler is not None:
        profiler.__exit__(None, None, None)
        profiler.export_chrome_trace(args.profile)

    return {
        "impl": "pytorch-all-rows" if args.cnn_over_padding else "pytorch",
        "threads": args.threads, "warmup": args.warmup, "steps": args.steps,
        "batch_size": batch_size,
        "docs_per_s": round(1000 * args.steps * batch_size / sum(step_ms), 2),
        "ms_per_step": round(sum(step_ms) / args.steps, 2),
        "median_step_ms": round(statistics.median(step_ms), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_training_mib": round(rss_before, 1),
        "losses": losses}


def summarize(path):
    """Prints the medians over runs of the result lines in `path` (JSON, one per run), the
    ratios of nlpkit to each PyTorch variant, and how far their losses are apart."""
    runs = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                result = json.loads(line)
                runs.setdefault(result["impl"], []).append(result)
    keys = ("docs_per_s", "ms_per_step", "median_step_ms", "peak_rss_mib",
            "rss_before_training_mib")
    median = {impl: {key: statistics.median(r[key] for r in results) for key in keys}
              for impl, results in runs.items()}
    print(f"{'implementation':<17} {'docs/s':>7} {'ms/step':>8} {'median step ms':>15} "
          f"{'peak RSS MiB':>13} {'RSS before training':>20}  runs")
    for impl, m in median.items():
        print(f"{impl:<17} {m['docs_per_s']:>7.1f} {m['ms_per_step']:>8.1f} "
              f"{m['median_step_ms']:>15.1f} {m['peak_rss_mib']:>13.1f} "
              f"{m['rss_before_training_mib']:>20.1f}  {len(runs[impl])}")
    if "nlpkit" not in median:
        return
    ours = median["nlpkit"]
    for impl in ("pytorch", "pytorch-all-rows"):
        if impl in median:
            theirs = median[impl]
            print(f"nlpkit / {impl}: {ours['docs_per_s'] / theirs['docs_per_s']:.2f}x docs/s "
                  f"({theirs['median_step_ms'] / ours['median_step_ms']:.2f}x by median step), "
                  f"{ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}x peak RSS")
    # The same initial weights, batches and dropout masks: the losses must agree.
    reference = runs["nlpkit"][0]["losses"]
    for impl, results in runs.items():
        diff = max(abs(a - b) for r in results for a, b in zip(r["losses"], reference))
        print(f"max |loss({impl}) - loss(nlpkit)| over {len(reference)} steps: {diff:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="file written by nlpkit_bench --write-data")
    parser.add_argument("--summarize", metavar="RESULTS.jsonl",
                        help="print medians and ratios of the result lines in this file, and exit")
    parser.add_argument("--cnn-over-padding", action="store_true",
                        help="run the CNN over every sentence row, padded ones included (the "
                             "straightforward port) instead of the real ones only (as nlpkit)")
    parser.add_argument("--profile", metavar="TRACE.json",
                        help="write a chrome://tracing profile of the timed steps here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--clip-grad-norm", type=float, default=1.0)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return 0
    if not args.data:
        parser.error("--data is required (write it with nlpkit_bench --write-data FILE)")
    if args.threads < 1 or args.warmup < 0 or args.steps < 1:
        parser.error("--threads and --steps must be positive, --warmup not negative")
    print(json.dumps(train(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
