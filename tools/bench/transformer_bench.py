"""The PyTorch side of the Transformer benchmark (tools/bench/run_transformer.sh): the same model
as nlpkit's `Transformer` written with torch.nn.Transformer (batch_first, post-LN, ReLU), the same
weights and batches read from the file `nlpkit_bench transformer --write-data` wrote, the same
training step (cross-entropy, Adam 1e-3, dropout 0) and threads. Prints one JSON line like the
C++ side. `--summarize RESULTS.jsonl` prints the comparison table of both sides' lines."""
import argparse
import json
import math
import statistics
import sys
import time

import torch
from torch import nn

from safetensors_io import load_safetensors


class Model(nn.Module):
    def __init__(self, vocab, hidden, heads, layers, ff, max_length=64):
        super().__init__()
        self.hidden = hidden
        self.src_embedding = nn.Embedding(vocab, hidden, padding_idx=0)
        self.tgt_embedding = nn.Embedding(vocab, hidden, padding_idx=0)
        self.register_buffer("position_table", torch.zeros(max_length, hidden))
        self.transformer = nn.Transformer(hidden, heads, layers, layers, ff, dropout=0.0,
                                          batch_first=True)
        self.output_proj = nn.Linear(hidden, vocab)

    def embed(self, table, ids):
        return table(ids) * math.sqrt(self.hidden) + self.position_table[: ids.size(1)]

    def forward(self, src, tgt_in):
        mask = self.transformer.generate_square_subsequent_mask(tgt_in.size(1))
        h = self.transformer(self.embed(self.src_embedding, src),
                             self.embed(self.tgt_embedding, tgt_in), tgt_mask=mask)
        return self.output_proj(h)


def load(model, weights):
    """nlpkit names -> torch names: q/k/v projections stacked into in_proj."""
    state = {}
    for name, t in weights.items():
        if name.startswith(("encoder.", "decoder.")):
            name = "transformer." + name
        for part in ("q_proj", "k_proj", "v_proj"):
            if part in name:
                kind = "weight" if name.endswith("weight") else "bias"
                key = name[: name.index(part)] + "in_proj_" + kind
                state.setdefault(key, {})[part] = t
                break
        else:
            state[name] = t
    for key, value in list(state.items()):
        if isinstance(value, dict):
            state[key] = torch.cat([value["q_proj"], value["k_proj"], value["v_proj"]])
    missing, unexpected = model.load_state_dict(state, strict=True), None
    return missing


def run(args):
    torch.set_num_threads(args.threads)
    tensors, meta = load_safetensors(args.data)
    data = {k: v for k, v in tensors.items() if k.startswith("data.")}
    weights = {k: v for k, v in tensors.items() if not k.startswith("data.")}
    model = Model(int(meta["vocab"]), int(meta["hidden"]), int(meta["heads"]),
                  int(meta["layers"]), int(meta["ff"]))
    load(model, weights)
    batch = int(meta["batch"])
    batches = data["data.src"].size(0) // batch
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses, timed, tokens, spans = [], 0.0, 0, []
    profiler = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup and args.profile:
            profiler = torch.autograd.profiler.profile()
            profiler.__enter__()
        b = step % batches
        src = data["data.src"][b * batch:(b + 1) * batch]
        tgt_in = data["data.tgt_in"][b * batch:(b + 1) * batch]
        tgt_out = data["data.tgt_out"][b * batch:(b + 1) * batch]
        start, start_unix = time.perf_counter(), time.time()
        optimizer.zero_grad(set_to_none=True)
        logits = model(src, tgt_in)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
        loss.backward()
        optimizer.step()
        value = loss.item()
        if step >= args.warmup:
            timed += time.perf_counter() - start
            tokens += src.numel() + tgt_out.numel()
            spans.append([start_unix, time.time()])
        losses.append(value)
    if profiler is not None:
        profiler.__exit__(None, None, None)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=30),
              file=sys.stderr)
    print(json.dumps({"side": "pytorch", "mode": "train", "threads": args.threads,
                      "warmup": args.warmup, "steps": args.steps, "batch_size": batch,
                      "tokens_per_s": tokens / timed, "ms_per_step": 1000 * timed / args.steps,
                      "losses": losses, "tokens_per_step": tokens // args.steps,
                      "step_spans": spans}))


def concurrent_ratio(ours, theirs, least=3):
    """For two runs that ran at the same time: each side's median step time over the steps that
    lay inside the window where both were timing, as (ours ms, theirs ms, our steps, their
    steps); None when the runs did not overlap by `least` steps each."""
    a, b = ours.get("step_spans"), theirs.get("step_spans")
    if not a or not b or ours["tokens_per_step"] != theirs["tokens_per_step"]:
        return None
    begin, end = max(a[0][0], b[0][0]), min(a[-1][1], b[-1][1])
    inside = [[e - s for s, e in spans if s >= begin and e <= end] for spans in (a, b)]
    if min(len(x) for x in inside) < least:
        return None
    return (1000 * statistics.median(inside[0]), 1000 * statistics.median(inside[1]),
            len(inside[0]), len(inside[1]))


def summarize(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    train = {side: [r for r in rows if r["side"] == side and r["mode"] == "train"]
             for side in ("nlpkit", "pytorch")}
    pairs = [concurrent_ratio(x, y) for x, y in zip(train["nlpkit"], train["pytorch"])]
    pairs = [p for p in pairs if p is not None]
    if pairs:
        # Each run's own tokens/s would count the seconds it ran alone: only the window counts.
        print("Transformer training, concurrent pairs (one core each; median ms per step while "
              "both ran)")
        for n_ms, p_ms, n_steps, p_steps in pairs:
            print("  nlpkit %6.1f ms (%2d steps)  PyTorch %6.1f ms (%2d steps)  ratio %.2fx"
                  % (n_ms, n_steps, p_ms, p_steps, p_ms / n_ms))
        print("  median ratio nlpkit / PyTorch over %d pairs: %.2fx"
              % (len(pairs), statistics.median(p_ms / n_ms for n_ms, p_ms, _, _ in pairs)))
    elif train["nlpkit"] and train["pytorch"]:
        ours = statistics.median(r["tokens_per_s"] for r in train["nlpkit"])
        theirs = statistics.median(r["tokens_per_s"] for r in train["pytorch"])
        print("Transformer training (median of %d runs each)" % len(train["nlpkit"]))
        print("  nlpkit   %10.0f tokens/s" % ours)
        print("  PyTorch  %10.0f tokens/s" % theirs)
        print("  ratio nlpkit / PyTorch: %.2fx" % (ours / theirs))
    if train["nlpkit"] and train["pytorch"]:
        diff = max(abs(a - b) for x, y in zip(train["nlpkit"], train["pytorch"])
                   for a, b in zip(x["losses"], y["losses"]))
        first, last = train["nlpkit"][0]["losses"][0], train["nlpkit"][0]["losses"][-1]
        print("  loss %.4f -> %.4f; largest |nlpkit - PyTorch| loss difference over the steps: %.2e"
              % (first, last, diff))
    decode = [r for r in rows if r["mode"] == "decode"]
    if decode:
        inc = statistics.median(r["incremental_words_per_s"] for r in decode)
        rec = statistics.median(r["recompute_words_per_s"] for r in decode)
        print("Beam search (beam %d, median of %d runs)" % (decode[0]["beam"], len(decode)))
        print("  key/value cache     %8.1f words/s" % inc)
        print("  recompute prefix    %8.1f words/s" % rec)
        print("  ratio: %.2fx; same hypotheses: %s" % (inc / rec, all(r["same_hypotheses"] for r in decode)))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--summarize")
    parser.add_argument("--profile", action="store_true",
                        help="print the operators' self times of the timed steps on stderr")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
    elif args.data:
        run(args)
    else:
        parser.error("give --data FILE or --summarize RESULTS")


if __name__ == "__main__":
    sys.exit(main())
