#!/usr/bin/python3
"""Cross-checks an nlpkit BERT export in Python: loads FOLDER/config.json and
FOLDER/model.safetensors into HuggingFace's BERT written in plain PyTorch (bert_bench.py's
modules, HuggingFace's names; transformers itself is not installed here), strictly (every
tensor used, none missing but the tied decoder), runs it in eval mode on the inputs of
INPUTS.safetensors, and compares with what `nlpkit forward` wrote for the same folder.

  build/nlpkit forward hf_spam --inputs in.safetensors --output nlpkit_out.safetensors
  /usr/bin/python3 tools/bench/check_hf_export.py hf_spam in.safetensors nlpkit_out.safetensors

Prints the largest difference per output and exits 1 if any exceeds 1e-5.
"""

import json
import sys

import torch
from torch import nn

from bert_bench import BertConfig, BertForPreTraining, BertModel
from safetensors_io import load_safetensors


def config_of(folder):
    c = json.load(open(f"{folder}/config.json"))
    meta = {"vocab_size": c["vocab_size"], "hidden_size": c["hidden_size"],
            "num_layers": c["num_hidden_layers"], "num_heads": c["num_attention_heads"],
            "intermediate_size": c["intermediate_size"],
            "max_position_embeddings": c["max_position_embeddings"],
            "type_vocab_size": c["type_vocab_size"], "layer_norm_eps": c["layer_norm_eps"],
            "pad_token_id": c.get("pad_token_id", 0), "dropout": 0.0, "attention_dropout": 0.0}
    return c, BertConfig(meta)


class BertForSequenceClassification(nn.Module):
    def __init__(self, config, num_labels):
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(0.0)
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids):
        _, pooled = self.bert(input_ids, attention_mask, token_type_ids)
        return self.classifier(self.dropout(pooled))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    folder, inputs_path, nlpkit_path = sys.argv[1:]
    raw, config = config_of(folder)
    arch = raw.get("architectures", ["BertModel"])[0]
    if arch == "BertForPreTraining":
        model = BertForPreTraining(config)
    elif arch == "BertForSequenceClassification":
        model = BertForSequenceClassification(config, len(raw.get("id2label", {})) or 2)
    else:
        sys.exit(f"check_hf_export.py: architecture {arch} is not covered")
    weights, _ = load_safetensors(f"{folder}/model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    if set(missing) - tied or [u for u in unexpected if u != "bert.embeddings.position_ids"]:
        sys.exit(f"state dict mismatch: missing {sorted(set(missing) - tied)}, "
                 f"unexpected {sorted(unexpected)}")
    model.eval()
    inputs, _ = load_safetensors(inputs_path)
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask", torch.ones_like(ids))
    types = inputs.get("token_type_ids", torch.zeros_like(ids))
    ours, _ = load_safetensors(nlpkit_path)
    with torch.no_grad():
        if arch == "BertForPreTraining":
            hidden, pooled = model.bert(ids, mask, types)
            python = {"last_hidden_state": hidden, "pooler_output": pooled,
                      "prediction_logits": model.cls.predictions(hidden),
                      "seq_relationship_logits": model.cls.seq_relationship(pooled)}
        else:
            hidden, pooled = model.bert(ids, mask, types)
            python = {"last_hidden_state": hidden, "pooler_output": pooled,
                      "logits": model(ids, mask, types)}
    worst = 0.0
    for name, value in python.items():
        diff = (value - ours[name]).abs().max().item()
        worst = max(worst, diff)
        print(f"{name:26s} {tuple(value.shape)!s:18s} max |python - nlpkit| {diff:.2e}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
