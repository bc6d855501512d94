#!/usr/bin/python3
"""PyTorch eager half of tools/bench/run_bert.sh: HuggingFace's BertForPreTraining written in plain
PyTorch Python, trained on the batches and from the initial weights that `nlpkit_bench bert
--write-data FILE` wrote, with the same step as the nlpkit half (tools/bench/bert_bench.cpp):
zero_grad(set_to_none=True), forward, MLM loss on the masked positions + NSP loss, loss.item(),
backward, clip_grad_norm_, AdamW. Prints one JSON line.

Needs torch (1.13 from Debian: /usr/bin/python3; the pyenv python3 on PATH has no torch).

  /usr/bin/python3 tools/bench/bert_bench.py --data bert.safetensors --threads 2
  /usr/bin/python3 tools/bench/bert_bench.py --summarize results.jsonl

The modules are transformers' modeling_bert.py (4.x, eager attention) as HuggingFace writes
them, with their names and registration order, so that the same state dict loads and
named_parameters() comes in the same order as nlpkit's: BertEmbeddings (word + token type, then
+= position), BertSelfAttention (separate query/key/value Linear, matmul, / sqrt(d), + the
additive mask (1 - m) * finfo.min, softmax, dropout, matmul, permute + view), BertSelfOutput,
BertIntermediate (exact GELU), BertOutput, BertPooler, BertLMPredictionHead tied to the word
embeddings, and the NSP head. What is left out is what this step never runs (head masks,
caches, cross-attention, chunking, outputs of every layer). Like nlpkit's masked_lm task, and
unlike BertForPreTraining.forward, the loss computes the MLM logits at the masked positions only.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

from safetensors_io import load_safetensors

IGNORE = -100  # labels of positions without an MLM target


class BertConfig:
    def __init__(self, meta):
        self.vocab_size = int(meta["vocab_size"])
        self.hidden_size = int(meta["hidden_size"])
        self.num_hidden_layers = int(meta["num_layers"])
        self.num_attention_heads = int(meta["num_heads"])
        self.intermediate_size = int(meta["intermediate_size"])
        self.max_position_embeddings = int(meta["max_position_embeddings"])
        self.type_vocab_size = int(meta["type_vocab_size"])
        self.layer_norm_eps = float(meta["layer_norm_eps"])
        self.pad_token_id = int(meta["pad_token_id"])
        self.hidden_dropout_prob = float(meta["dropout"])
        self.attention_probs_dropout_prob = float(meta["attention_dropout"])


class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings,
                                                config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids",
                             torch.arange(config.max_position_embeddings).expand((1, -1)))

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_length]
        inputs_embeds = self.word_embeddings(input_ids)
        token_type_embeddings = self.token_type_embeddings(token_type_ids)
        embeddings = inputs_embeds + token_type_embeddings
        position_embeddings = self.position_embeddings(position_ids)
        embeddings += position_embeddings
        embeddings = self.LayerNorm(embeddings)
        embeddings = self.dropout(embeddings)
        return embeddings


class BertSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        mixed_query_layer = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query_layer)
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        attention_scores = attention_scores + attention_mask
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        attention_probs = self.dropout(attention_probs)
        context_layer = torch.matmul(attention_probs, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
        context_layer = context_layer.view(new_context_layer_shape)
        return context_layer


class BertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class BertAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden_states, attention_mask):
        self_outputs = self.self(hidden_states, attention_mask)
        attention_output = self.output(self_outputs, hidden_states)
        return attention_output


class BertIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = nn.GELU()  # transformers' GELUActivation: exact (erf)

    def forward(self, hidden_states):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.intermediate_act_fn(hidden_states)
        return hidden_states


class BertOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class BertLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states, attention_mask):
        attention_output = self.attention(hidden_states, attention_mask)
        intermediate_output = self.intermediate(attention_output)
        layer_output = self.output(intermediate_output, attention_output)
        return layer_output


class BertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states, attention_mask):
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        first_token_tensor = hidden_states[:, 0]
        pooled_output = self.dense(first_token_tensor)
        pooled_output = self.activation(pooled_output)
        return pooled_output


class BertModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)

    def get_extended_attention_mask(self, attention_mask, dtype):
        extended_attention_mask = attention_mask[:, None, None, :]
        extended_attention_mask = extended_attention_mask.to(dtype=dtype)
        return (1.0 - extended_attention_mask) * torch.finfo(dtype).min

    def forward(self, input_ids, attention_mask, token_type_ids):
        embedding_output = self.embeddings(input_ids, token_type_ids)
        extended_attention_mask = self.get_extended_attention_mask(attention_mask,
                                                                   embedding_output.dtype)
        sequence_output = self.encoder(embedding_output, extended_attention_mask)
        pooled_output = self.pooler(sequence_output)
        return sequence_output, pooled_output


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = nn.GELU()
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.transform_act_fn(hidden_states)
        hidden_states = self.LayerNorm(hidden_states)
        return hidden_states


class BertLMPredictionHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states):
        hidden_states = self.transform(hidden_states)
        hidden_states = self.decoder(hidden_states)
        return hidden_states


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


class BertForPreTraining(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        # transformers' tie_weights(): the decoder is the word-embedding matrix itself.
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight


# ------------------------------------------------------------------------------------------------


def load_model(tensors, meta, model):
    """`model` with the file's initial weights; checks that every parameter came from the file
    and that named_parameters() has nlpkit's names in the file's (nlpkit's) order."""
    state = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    if set(missing) - tied or unexpected:
        sys.exit(f"bert_bench.py: state dict mismatch: missing {sorted(set(missing) - tied)}, "
                 f"unexpected {sorted(unexpected)}")
    names = [name for name, _ in model.named_parameters()]
    file_order = [name for name in state if name in set(names)]
    if names != file_order:
        print("bert_bench.py: warning: parameter order differs from nlpkit's (the gradient "
              "norm sums in another order)", file=sys.stderr)
    return model


def bert_loss(model, b, vocab_size):
    """nlpkit's masked_lm losses(): MLM at the masked positions only, plus NSP."""
    sequence_output, pooled_output = model.bert(b["input_ids"], b["attention_mask"],
                                                b["token_type_ids"])
    picked = b["labels"] != IGNORE                          # (B, T)
    targets = b["labels"][picked]                           # (N)
    prediction_scores = model.cls.predictions(sequence_output[picked])  # (N, V)
    seq_relationship_score = model.cls.seq_relationship(pooled_output)  # (B, 2)
    masked_lm_loss = F.cross_entropy(prediction_scores.view(-1, vocab_size), targets)
    next_sentence_loss = F.cross_entropy(seq_relationship_score.view(-1, 2),
                                         b["next_sentence_label"].view(-1))
    return masked_lm_loss + next_sentence_loss


def train(args):
    """Runs the benchmark and returns its JSON-ready result."""
    torch.set_num_threads(args.threads)
    tensors, meta = load_safetensors(args.data)
    if meta["bench"] != "bert":
        sys.exit(f"bert_bench.py: {args.data} was written for {meta['bench']}, not bert")
    model_type = meta.get("model", "bert")
    fields = ("input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label")
    batches = [{f: tensors[f"batch.{n}.{f}"] for f in fields}
               for n in range(int(meta["num_batches"]))]
    vocab_size = int(meta["vocab_size"])
    if model_type == "deberta":  # HuggingFace's DebertaV2ForMaskedLM, MLM loss only
        import deberta_model
        model, deberta_loss = deberta_model.build(meta)
        model = load_model(tensors, meta, model)
        loss_of = lambda b: deberta_loss(b, IGNORE)  # noqa: E731
    else:
        model = load_model(tensors, meta, BertForPreTraining(BertConfig(meta)))
        loss_of = lambda b: bert_loss(model, b, vocab_size)  # noqa: E731

    # nlpkit's make_optimizer: weights (dim >= 2) decay, the rest (biases, LayerNorm) does not.
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=float(meta["lr"]),
                                  weight_decay=float(meta["weight_decay"]))
    clip = float(meta["clip_grad_norm"])
    max_norm = clip if clip > 0 else float("inf")

    torch.manual_seed(int(meta["seed"]))  # the same dropout masks as the nlpkit side
    model.train()
    losses, step_ms = [], []
    phase_names = ("forward", "item", "backward", "clip", "optimizer")
    phase_ms = {name: [] for name in phase_names}
    profiler = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup and args.profile:
            profiler = torch.autograd.profiler.profile(use_kineto=False)
            profiler.__enter__()
        batch = batches[step % len(batches)]
        t = [time.perf_counter()]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(batch)
        t.append(time.perf_counter())
        losses.append(loss.item())
        t.append(time.perf_counter())
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        t.append(time.perf_counter())
        optimizer.step()
        t.append(time.perf_counter())
        if step >= args.warmup:
            step_ms.append(1000 * (t[-1] - t[0]))
            for i, name in enumerate(phase_names):
                phase_ms[name].append(1000 * (t[i + 1] - t[i]))
    if profiler is not None:
        profiler.__exit__(None, None, None)
        profiler.export_chrome_trace(args.profile)
        print_op_table(profiler, args.steps, args.profile)

    b, t = batches[0]["input_ids"].shape
    return {"bench": "bert", "model": model_type, "impl": "pytorch", "threads": args.threads,
            "warmup": args.warmup, "steps": args.steps,
            "shape": {"batch_size": b, "seq_len": t, "hidden_size": int(meta["hidden_size"]),
                      "num_layers": int(meta["num_layers"]), "num_heads": int(meta["num_heads"]),
                      "intermediate_size": int(meta["intermediate_size"]),
                      "vocab_size": vocab_size, "dropout": float(meta["dropout"]),
                      "attention_dropout": float(meta["attention_dropout"])},
            "tokens_per_s": 1000 * args.steps * b * t / sum(step_ms),
            "ms_per_step": sum(step_ms) / args.steps,
            "median_step_ms": statistics.median(step_ms),
            "phase_median_ms": {name: statistics.median(ms) for name, ms in phase_ms.items()},
            "losses": losses}


def print_op_table(profiler, steps, trace_path, rows=30):
    """The operators by self time, per step, in the layout of the nlpkit side's table."""
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    self_sum = sum(e.self_cpu_time_total for e in events)
    per_step = 1000.0 * steps  # us -> ms per step
    out = sys.stderr
    print(f"PyTorch operators by self time (ms per step, {steps} steps; trace {trace_path})",
          file=out)
    print(f"  {'name':<60} {'self':>9} {'total':>9} {'calls':>9} {'self%':>6}", file=out)
    for e in events[:rows]:
        print(f"  {e.key[:60]:<60} {e.self_cpu_time_total / per_step:>9.2f} "
              f"{e.cpu_time_total / per_step:>9.2f} {e.count / steps:>9.1f} "
              f"{100 * e.self_cpu_time_total / self_sum:>5.1f}%", file=out)
    print(f"  {'all operators':<60} {self_sum / per_step:>9.2f}", file=out)


def summarize(path):
    """Prints, for each model and shape in `path` (JSON result lines, one per run), the medians
    over runs, the ratio of nlpkit to PyTorch, the per-phase medians and how far the losses are
    apart; then, per sequence length, nlpkit DeBERTa's step time over nlpkit BERT's."""
    groups, pairs = {}, {}
    with open(path) as f:
        for line in f:
            if line.strip():
                result = json.loads(line)
                if result.get("bench") == "bert_pair":  # nlpkit_bench bert --paired
                    key = (tuple(result["models"]), result["seq_len"], result["batch_size"])
                    pairs.setdefault(key, []).extend(result["step_ratios"])
                if result.get("bench") == "bert":
                    shape = result["shape"]
                    key = (result.get("model", "bert"), shape["seq_len"], shape["batch_size"])
                    groups.setdefault(key, {}).setdefault(result["impl"], []).append(result)
    if not groups:
        sys.exit(f"bert_bench.py: no bert results in {path}")
    keys = ("tokens_per_s", "ms_per_step", "median_step_ms")
    step_ms = {}  # (model, seq_len, batch_size) -> nlpkit's median step ms
    for (model, seq_len, batch_size), impls in groups.items():
        shape = next(iter(impls.values()))[0]["shape"]
        name = "DebertaV2ForMaskedLM (MLM)" if model == "deberta" else "BertForPreTraining (MLM+NSP)"
        print(f"{model}: {name} training step, B={batch_size} T={seq_len} "
              f"hidden={shape['hidden_size']} layers={shape['num_layers']} "
              f"heads={shape['num_heads']} intermediate={shape['intermediate_size']} "
              f"vocab={shape['vocab_size']} dropout={shape['dropout']}/"
              f"{shape['attention_dropout']}; tokens = B x T per step")
        median = {impl: {key: statistics.median(r[key] for r in rs) for key in keys}
                  for impl, rs in impls.items()}
        print(f"  {'implementation':<15} {'tokens/s':>9} {'ms/step':>9} {'median step ms':>15}  runs")
        for impl, m in median.items():
            print(f"  {impl:<15} {m['tokens_per_s']:>9.1f} {m['ms_per_step']:>9.1f} "
                  f"{m['median_step_ms']:>15.1f}  {len(impls[impl])}")
        phases = ("forward", "item", "backward", "clip", "optimizer")
        print(f"  median ms per phase: {'':<8}" + "".join(f"{p:>10}" for p in phases))
        for impl, rs in impls.items():
            print(f"  {impl:<29}" + "".join(
                f"{statistics.median(r['phase_median_ms'][p] for r in rs):>10.2f}"
                for p in phases))
        if "nlpkit" in median:
            step_ms[(model, seq_len, batch_size)] = median["nlpkit"]["median_step_ms"]
        if "nlpkit" in median and "pytorch" in median:
            ours, theirs = median["nlpkit"], median["pytorch"]
            print(f"  nlpkit / pytorch: {ours['tokens_per_s'] / theirs['tokens_per_s']:.3f}x "
                  f"tokens/s ({theirs['median_step_ms'] / ours['median_step_ms']:.3f}x by median "
                  f"step)")
        if "nlpkit-torch-dropout" in median and "pytorch" in median:
            ours, theirs = median["nlpkit-torch-dropout"], median["pytorch"]
            print(f"  nlpkit-torch-dropout / pytorch: "
                  f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.3f}x tokens/s"
                  f" ({theirs['median_step_ms'] / ours['median_step_ms']:.3f}x by median step)")
        if "pytorch" in impls:
            # nlpkit-torch-dropout draws ATen's dropout masks: its losses should equal PyTorch's
            # bitwise. nlpkit's own masks differ, so its losses only agree statistically.
            reference = impls["pytorch"][0]["losses"]
            for impl, rs in impls.items():
                diff = max(abs(a - b) for r in rs for a, b in zip(r["losses"], reference))
                print(f"  max |loss({impl}) - loss(pytorch)| over {len(reference)} steps: "
                      f"{diff:.1e} (first {rs[0]['losses'][0]:.6f}, last {rs[0]['losses'][-1]:.6f})")
        print()
    for (model, seq_len, batch_size), ms in sorted(step_ms.items()):
        bert = step_ms.get(("bert", seq_len, batch_size))
        if model == "deberta" and bert:
            print(f"nlpkit DeBERTa / nlpkit BERT step time, B={batch_size} T={seq_len}: "
                  f"{ms / bert:.3f}x of the medians", end="")
            ratios = pairs.get((("bert", "deberta"), seq_len, batch_size))
            if ratios:  # the two trained in one process, a step of each in turn
                q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
                print(f"; {statistics.median(ratios):.3f}x the median of {len(ratios)} "
                      f"step-for-step ratios (quartiles {q[0]:.3f}-{q[2]:.3f})", end="")
            print(" (goal <= 1.4x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="file written by nlpkit_bench bert --write-data")
    parser.add_argument("--summarize", metavar="RESULTS.jsonl",
                        help="print medians and ratios of the result lines in this file, and exit")
    parser.add_argument("--profile", metavar="TRACE.json",
                        help="write a chrome://tracing profile of the timed steps here (and a "
                             "table of the operators' self times to stderr)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return 0
    if not args.data:
        parser.error("--data is required (write it with nlpkit_bench bert --write-data FILE)")
    if args.threads < 1 or args.warmup < 0 or args.steps < 1:
        parser.error("--threads and --steps must be positive, --warmup not negative")
    print(json.dumps(train(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
