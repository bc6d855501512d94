#!/usr/bin/python3
"""PyTorch eager half of tools/bench/run_recurrent.sh: the LSTM language model and the ConvLSTM
encoder-forecaster written in plain PyTorch Python, trained on the data and from the initial
weights that `nlpkit_bench recurrent lm|convlstm --write-data FILE` wrote, with the same step as
the nlpkit half (tools/bench/recurrent_bench.cpp): zero_grad(set_to_none=True), forward, loss,
loss.item(), backward, clip_grad_norm_, AdamW, Adam or SGD. Prints one JSON line.

Needs torch (1.13 from Debian: /usr/bin/python3; the pyenv python3 on PATH has no torch).

  /usr/bin/python3 tools/bench/recurrent_bench.py lm --data lm.safetensors --threads 2
  /usr/bin/python3 tools/bench/recurrent_bench.py convlstm --data convlstm.safetensors
  /usr/bin/python3 tools/bench/recurrent_bench.py --summarize results.jsonl

The models are what a PyTorch user writes: the language model is PyTorch's
word_language_model example (batch first), the ConvLSTM is ndrplz/ConvLSTM_pytorch's cell and
stack with Shi et al.'s unconditioned forecaster on top. nlpkit's modules also check their
inputs' shapes on every forward; these do not, so that work is part of what nlpkit pays.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from safetensors_io import load_safetensors



# ------------------------------------------------------------------------------------------------
# lm: PyTorch's word_language_model RNNModel (LSTM), batch first


class RNNModel(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers, dropout, tie):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)
        self.tie = tie
        if tie:
            self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, hidden):  # (B, T), ((L, B, H), (L, B, H)) or None
        emb = self.drop(self.embedding(ids))                   # (B, T, E)
        output, hidden = self.rnn(emb, hidden)                 # (B, T, H)
        output = self.drop(output)
        if self.tie:
            logits = F.linear(output, self.embedding.weight, self.output_bias)
        else:
            logits = self.decoder(output)                      # (B, T, V)
        return logits, hidden


def lm_setup(tensors, meta):
    vocab_size, bptt = int(meta["vocab_size"]), int(meta["bptt"])
    model = RNNModel(vocab_size, int(meta["embedding_dim"]), int(meta["hidden_size"]),
                     int(meta["num_layers"]), float(meta["dropout"]), meta["tie_embeddings"] == "1")
    tokens = tensors["tokens"]  # (B, num_batches * bptt + 1)
    num_batches = int(meta["num_batches"])
    state = {"hidden": None}

    def loss_of(step):  # the language_model task's train_step
        n = step % num_batches
        if n == 0:
            state["hidden"] = None
        x = tokens[:, n * bptt:(n + 1) * bptt]                 # (B, bptt)
        y = tokens[:, n * bptt + 1:(n + 1) * bptt + 1]         # (B, bptt)
        logits, hidden = model(x, state["hidden"])
        state["hidden"] = tuple(h.detach() for h in hidden)
        return F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))

    return model, loss_of, "tokens", tokens.size(0) * bptt


# ------------------------------------------------------------------------------------------------
# convlstm: ndrplz/ConvLSTM_pytorch's ConvLSTMCell and ConvLSTM, and an encoder-forecaster


class ConvLSTMCell(nn.Module):
    def __init__(self, input_dim, hidden_dim, kernel_size):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.conv = nn.Conv2d(input_dim + hidden_dim, 4 * hidden_dim, kernel_size,
                              padding=(kernel_size[0] // 2, kernel_size[1] // 2))

    def forward(self, x, state):  # (B, C, H, W), ((B, Hd, H, W), (B, Hd, H, W))
        h_cur, c_cur = state
        combined_conv = self.conv(torch.cat([x, h_cur], dim=1))  # (B, 4*Hd, H, W)
        cc_i, cc_f, cc_o, cc_g = torch.split(combined_conv, self.hidden_dim, dim=1)
        i = torch.sigmoid(cc_i)
        f = torch.sigmoid(cc_f)
        o = torch.sigmoid(cc_o)
        g = torch.tanh(cc_g)
        c_next = f * c_cur + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next


class ConvLSTM(nn.Module):
    def __init__(self, input_dim, hidden_dims, kernel_size):
        super().__init__()
        self.cell_list = nn.ModuleList(
            ConvLSTMCell(input_dim if i == 0 else hidden_dims[i - 1], hidden_dims[i], kernel_size)
            for i in range(len(hidden_dims)))

    def forward(self, x, states=None):  # (B, T, C, H, W); one (h, c) per layer or None
        b, t, _, height, width = x.shape
        outputs, last_states = [], []
        layer_input = x
        for i, cell in enumerate(self.cell_list):
            if states is None:
                zeros = torch.zeros(b, cell.hidden_dim, height, width)
                h, c = zeros, zeros
            else:
                h, c = states[i]
            steps = []
            for s in range(t):
                h, c = cell(layer_input[:, s], (h, c))
                steps.append(h)
            layer_input = torch.stack(steps, dim=1)            # (B, T, Hd, H, W)
            outputs.append(layer_input)
            last_states.append((h, c))
        return outputs, last_states


class EncoderForecaster(nn.Module):
    def __init__(self, input_dim, hidden_dims, kernel_size):
        super().__init__()
        self.encoder = ConvLSTM(input_dim, hidden_dims, kernel_size)
        self.forecaster = ConvLSTM(input_dim, hidden_dims, kernel_size)
        self.output_conv = nn.Conv2d(sum(hidden_dims), input_dim, 1)

    def forward(self, frames, future):  # (B, T_in, C, H, W)
        b, _, c, height, width = frames.shape
        _, states = self.encoder(frames)
        outputs, _ = self.forecaster(torch.zeros(b, future, c, height, width), states)
        hidden = torch.cat(outputs, dim=2)                     # (B, future, sum Hd, H, W)
        logits = self.output_conv(hidden.flatten(0, 1))        # (B*future, C, H, W)
        return logits.view(b, future, c, height, width)


def convlstm_setup(tensors, meta):
    frames_in, frames_out = int(meta["frames_in"]), int(meta["frames_out"])
    k = int(meta["kernel_size"])
    model = EncoderForecaster(int(meta["channels"]),
                              [int(h) for h in meta["hidden_sizes"].split(",")], (k, k))
    batches = [tensors[f"batch.{n}"] for n in range(int(meta["num_batches"]))]

    def loss_of(step):
        frames = batches[step % len(batches)]
        logits = model(frames[:, :frames_in], frames_out)
        return F.binary_cross_entropy_with_logits(logits, frames[:, frames_in:])

    return model, loss_of, "frames", int(meta["batch_size"]) * (frames_in + frames_out)


# ------------------------------------------------------------------------------------------------


def train(args):
    """Runs the benchmark and returns its JSON-ready result."""
    torch.set_num_threads(args.threads)
    tensors, meta = load_safetensors(args.data)
    if meta["bench"] != args.bench:
        sys.exit(f"recurrent_bench.py: {args.data} was written for {meta['bench']}, "
                 f"not {args.bench}")
    setup = lm_setup if args.bench == "lm" else convlstm_setup
    model, loss_of, unit, units_per_step = setup(tensors, meta)
    model.load_state_dict({name[len("model."):]: t for name, t in tensors.items()
                           if name.startswith("model.")})

    # nlpkit's make_optimizer: weights (dim >= 2) decay, the rest (biases) does not.
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizers = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    optimizer = optimizers[meta["optimizer"]](groups, lr=float(meta["lr"]),
                                              weight_decay=float(meta["weight_decay"]))
    clip = float(meta["clip_grad_norm"])
    max_norm = clip if clip > 0 else float("inf")

    torch.manual_seed(int(meta["seed"]))  # the same dropout masks as the nlpkit side
    model.train()
    losses, step_ms = [], []
    profiler = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup and args.profile:
            profiler = torch.autograd.profiler.profile()
            profiler.__enter__()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(step)
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        if step >= args.warmup:
            step_ms.append(1000 * (time.perf_counter() - start))
    if profiler is not None:
        profiler.__exit__(None, None, None)
        profiler.export_chrome_trace(args.profile)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25),
              file=sys.stderr)

    return {"bench": args.bench, "impl": "pytorch", "threads": args.threads,
            "warmup": args.warmup, "steps": args.steps,
            f"{unit}_per_s": 1000 * args.steps * units_per_step / sum(step_ms),
            "ms_per_step": sum(step_ms) / args.steps,
            "median_step_ms": statistics.median(step_ms),
            "losses": losses}


def summarize(path):
    """Prints, per benchmark, the medians over runs of the result lines in `path` (JSON, one per
    run), the ratios of nlpkit to PyTorch, and how far their losses are apart."""
    runs = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                result = json.loads(line)
                runs.setdefault(result["bench"], {}).setdefault(result["impl"], []).append(result)
    if "lstm" in runs:
        results = runs["lstm"]["nlpkit"]
        order = ("torch", "nlpkit_fused", "nlpkit_cells",
                 "torch_lengths", "nlpkit_fused_lengths", "nlpkit_cells_lengths")
        names = sorted(results[0]["results"], key=lambda n: order.index(n) if n in order else 99)
        med = {name: {key: statistics.median(r["results"][name][key] for r in results)
                      for key in ("median_step_ms", "mean_step_ms", "tokens_per_s")}
               for name in names}
        shape = results[0]["shape"]
        print(f"lstm: B={shape['batch_size']} T={shape['seq_len']} "
              f"input={shape['input_size']} hidden={shape['hidden_size']} "
              f"layers={shape['num_layers']}, forward + backward, {len(results)} runs "
              f"({shape['real_tokens_with_lengths']:.0f} real tokens with lengths)")
        print(f"  {'implementation':<22} {'median step ms':>15} {'mean step ms':>13} "
              f"{'tokens/s':>9} {'max |diff| vs torch':>20}")
        for name in names:
            diff = max(r["results"][name]["max_abs_diff_vs_torch"] for r in results)
            print(f"  {name:<22} {med[name]['median_step_ms']:>15.2f} "
                  f"{med[name]['mean_step_ms']:>13.2f} {med[name]['tokens_per_s']:>9.0f} "
                  f"{diff:>20.1e}")

        def ratio(ours, theirs):  # throughput ratio: time(theirs) / time(ours), of the medians
            return med[theirs]["median_step_ms"] / med[ours]["median_step_ms"]

        for suffix in ("", "_lengths"):
            print(f"  nlpkit fused / torch{suffix}: "
                  f"{ratio('nlpkit_fused' + suffix, 'torch' + suffix):.3f}x throughput; "
                  f"cells / fused{suffix}: "
                  f"{ratio('nlpkit_cells' + suffix, 'nlpkit_fused' + suffix):.3f}x")
    for bench, unit in (("lm", "tokens_per_s"), ("convlstm", "frames_per_s")):
        if bench not in runs:
            continue
        impls = runs[bench]
        label = unit.replace("_per_s", "/s")
        print(f"{bench}: training, {label}")
        keys = (unit, "ms_per_step", "median_step_ms")
        median = {impl: {key: statistics.median(r[key] for r in rs) for key in keys}
                  for impl, rs in impls.items()}
        print(f"  {'implementation':<15} {label:>9} {'ms/step':>9} "
              f"{'median step ms':>15}  runs")
        for impl, m in median.items():
            print(f"  {impl:<15} {m[unit]:>9.1f} {m['ms_per_step']:>9.1f} "
                  f"{m['median_step_ms']:>15.1f}  {len(impls[impl])}")
        if "nlpkit" in median and "pytorch" in median:
            ours, theirs = median["nlpkit"], median["pytorch"]
            print(f"  nlpkit / pytorch: {ours[unit] / theirs[unit]:.3f}x {label}"
                  f" ({theirs['median_step_ms'] / ours['median_step_ms']:.3f}x by median step)")
            # The same initial weights, data and dropout masks: the losses must agree.
            reference = impls["nlpkit"][0]["losses"]
            diff = max(abs(a - b) for rs in impls.values() for r in rs
                       for a, b in zip(r["losses"], reference))
            print(f"  max |loss - loss(nlpkit)| over {len(reference)} steps: {diff:.1e} "
                  f"(first loss {reference[0]:.6f}, last {reference[-1]:.6f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", nargs="?", choices=("lm", "convlstm"))
    parser.add_argument("--data", help="file written by nlpkit_bench recurrent BENCH --write-data")
    parser.add_argument("--summarize", metavar="RESULTS.jsonl",
                        help="print medians and ratios of the result lines in this file, and exit")
    parser.add_argument("--profile", metavar="TRACE.json",
                        help="write a chrome://tracing profile of the timed steps here (and a "
                             "table of the ops to stderr)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return 0
    if not args.bench or not args.data:
        parser.error("BENCH and --data are required (write the data with "
                     "nlpkit_bench recurrent BENCH --write-data FILE)")
    if args.threads < 1 or args.warmup < 0 or args.steps < 1:
        parser.error("--threads and --steps must be positive, --warmup not negative")
    print(json.dumps(train(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
