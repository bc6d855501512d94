"""HuggingFace's DebertaV2ForMaskedLM (transformers 4.19, modeling_deberta_v2.py) written in plain
PyTorch eager Python, for the DeBERTa half of tools/bench/run_deberta.sh (imported by
bert_bench.py when the data file says model=deberta).

The modules keep HuggingFace's names, registration order and operations: DebertaV2Embeddings
(word embeddings, LayerNorm, * mask, dropout; no absolute positions and no token types, as
DeBERTa-v3), DisentangledSelfAttention (query_proj/key_proj/value_proj, heads folded into the
batch for torch.bmm, c2p and p2c through torch.gather over the log-bucketed relative positions,
share_att_key: the position projections are query_proj/key_proj applied to the relative
embeddings, one scale sqrt(d * 3)), XSoftmax (masked_fill with the dtype's lowest value,
softmax, masked_fill 0), the encoder's relative embeddings with their LayerNorm, and
DebertaV2OnlyMLMHead (BERT's prediction head, decoder tied to the word embeddings). StableDropout
is nn.Dropout in training. What is left out is what the benchmark step never runs (nGiE
convolution, absolute positions, token types, caches, outputs of every layer).
"""

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class DebertaConfig:
    def __init__(self, meta):
        self.vocab_size = int(meta["vocab_size"])
        self.hidden_size = int(meta["hidden_size"])
        self.num_hidden_layers = int(meta["num_layers"])
        self.num_attention_heads = int(meta["num_heads"])
        self.intermediate_size = int(meta["intermediate_size"])
        self.max_position_embeddings = int(meta["max_position_embeddings"])
        self.position_buckets = int(meta["position_buckets"])
        self.max_relative_positions = -1
        self.layer_norm_eps = float(meta["layer_norm_eps"])
        self.pad_token_id = int(meta["pad_token_id"])
        self.hidden_dropout_prob = float(meta["dropout"])
        self.attention_probs_dropout_prob = float(meta["attention_dropout"])


def make_log_bucket_position(relative_pos, bucket_size, max_position):
    """transformers 4.19's numpy version (float64)."""
    sign = np.sign(relative_pos)
    mid = bucket_size // 2
    abs_pos = np.where((relative_pos < mid) & (relative_pos > -mid), mid - 1, np.abs(relative_pos))
    log_pos = np.ceil(np.log(abs_pos / mid) / np.log((max_position - 1) / mid) * (mid - 1)) + mid
    return np.where(abs_pos <= mid, relative_pos, log_pos * sign).astype(int)


def build_relative_position(query_size, key_size, bucket_size=-1, max_position=-1):
    q_ids = np.arange(0, query_size)
    k_ids = np.arange(0, key_size)
    rel_pos_ids = q_ids[:, None] - np.tile(k_ids, (q_ids.shape[0], 1))
    if bucket_size > 0 and max_position > 0:
        rel_pos_ids = make_log_bucket_position(rel_pos_ids, bucket_size, max_position)
    rel_pos_ids = torch.tensor(rel_pos_ids, dtype=torch.long)
    return rel_pos_ids[:query_size, :].unsqueeze(0)


def x_softmax(scores, mask, dim):
    rmask = ~(mask.to(torch.bool))
    output = scores.masked_fill(rmask, torch.tensor(torch.finfo(scores.dtype).min))
    output = torch.softmax(output, dim)
    return output.masked_fill(rmask, 0)


class DebertaV2Embeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                            padding_idx=config.pad_token_id)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids",
                             torch.arange(config.max_position_embeddings).expand((1, -1)))

    def forward(self, input_ids, mask):
        embeddings = self.word_embeddings(input_ids)
        embeddings = self.LayerNorm(embeddings)
        embeddings = embeddings * mask.unsqueeze(2).to(embeddings.dtype)
        return self.dropout(embeddings)


class DisentangledSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query_proj = nn.Linear(config.hidden_size, self.all_head_size, bias=True)
        self.key_proj = nn.Linear(config.hidden_size, self.all_head_size, bias=True)
        self.value_proj = nn.Linear(config.hidden_size, self.all_head_size, bias=True)
        self.pos_att_type = ["p2c", "c2p"]
        self.position_buckets = config.position_buckets
        self.max_relative_positions = config.max_position_embeddings
        self.pos_ebd_size = (self.position_buckets if self.position_buckets > 0
                             else self.max_relative_positions)
        self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def transpose_for_scores(self, x, attention_heads):
        new_x_shape = x.size()[:-1] + (attention_heads, -1)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3).contiguous().view(-1, x.size(1), x.size(-1))

    def forward(self, hidden_states, attention_mask, relative_pos, rel_embeddings):
        query_layer = self.transpose_for_scores(self.query_proj(hidden_states),
                                                self.num_attention_heads)
        key_layer = self.transpose_for_scores(self.key_proj(hidden_states),
                                              self.num_attention_heads)
        value_layer = self.transpose_for_scores(self.value_proj(hidden_states),
                                                self.num_attention_heads)
        scale_factor = 1 + len(self.pos_att_type)
        scale = math.sqrt(query_layer.size(-1) * scale_factor)
        attention_scores = torch.bmm(query_layer, key_layer.transpose(-1, -2)) / scale
        rel_embeddings = self.pos_dropout(rel_embeddings)
        rel_att = self.disentangled_attention_bias(query_layer, key_layer, relative_pos,
                                                   rel_embeddings, scale_factor)
        attention_scores = attention_scores + rel_att
        attention_scores = attention_scores.view(-1, self.num_attention_heads,
                                                 attention_scores.size(-2),
                                                 attention_scores.size(-1))
        attention_probs = x_softmax(attention_scores, attention_mask, -1)
        attention_probs = self.dropout(attention_probs)
        context_layer = torch.bmm(
            attention_probs.view(-1, attention_probs.size(-2), attention_probs.size(-1)),
            value_layer)
        context_layer = (context_layer.view(-1, self.num_attention_heads,
                                            context_layer.size(-2), context_layer.size(-1))
                         .permute(0, 2, 1, 3).contiguous())
        return context_layer.view(context_layer.size()[:-2] + (-1,))

    def disentangled_attention_bias(self, query_layer, key_layer, relative_pos, rel_embeddings,
                                    scale_factor):
        relative_pos = relative_pos.unsqueeze(1)  # (1, 1, T, T)
        att_span = self.pos_ebd_size
        rel_embeddings = rel_embeddings[0:att_span * 2, :].unsqueeze(0)
        repeats = query_layer.size(0) // self.num_attention_heads
        pos_query_layer = self.transpose_for_scores(
            self.query_proj(rel_embeddings), self.num_attention_heads).repeat(repeats, 1, 1)
        pos_key_layer = self.transpose_for_scores(
            self.key_proj(rel_embeddings), self.num_attention_heads).repeat(repeats, 1, 1)
        score = 0
        # content -> position
        scale = math.sqrt(pos_key_layer.size(-1) * scale_factor)
        c2p_att = torch.bmm(query_layer, pos_key_layer.transpose(-1, -2))
        c2p_pos = torch.clamp(relative_pos + att_span, 0, att_span * 2 - 1)
        c2p_att = torch.gather(c2p_att, dim=-1, index=c2p_pos.squeeze(0).expand(
            [query_layer.size(0), query_layer.size(1), relative_pos.size(-1)]))
        score += c2p_att / scale
        # position -> content
        scale = math.sqrt(pos_query_layer.size(-1) * scale_factor)
        p2c_pos = torch.clamp(-relative_pos + att_span, 0, att_span * 2 - 1)
        p2c_att = torch.bmm(key_layer, pos_query_layer.transpose(-1, -2))
        p2c_att = torch.gather(p2c_att, dim=-1, index=p2c_pos.squeeze(0).expand(
            [query_layer.size(0), key_layer.size(-2), key_layer.size(-2)])).transpose(-1, -2)
        score += p2c_att / scale
        return score


class DebertaV2SelfOutput(nn.Module):
    def __init__(self, config, in_features):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        return self.LayerNorm(hidden_states + input_tensor)


class DebertaV2Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = DisentangledSelfAttention(config)
        self.output = DebertaV2SelfOutput(config, config.hidden_size)

    def forward(self, hidden_states, attention_mask, relative_pos, rel_embeddings):
        self_output = self.self(hidden_states, attention_mask, relative_pos, rel_embeddings)
        return self.output(self_output, hidden_states)


class DebertaV2Intermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden_states):
        return F.gelu(self.dense(hidden_states))


class DebertaV2Layer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = DebertaV2Attention(config)
        self.intermediate = DebertaV2Intermediate(config)
        self.output = DebertaV2SelfOutput(config, config.intermediate_size)

    def forward(self, hidden_states, attention_mask, relative_pos, rel_embeddings):
        attention_output = self.attention(hidden_states, attention_mask, relative_pos,
                                          rel_embeddings)
        intermediate_output = self.intermediate(attention_output)
        return self.output(intermediate_output, attention_output)


class DebertaV2Encoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList([DebertaV2Layer(config)
                                    for _ in range(config.num_hidden_layers)])
        self.position_buckets = config.position_buckets
        self.max_relative_positions = config.max_position_embeddings
        pos_ebd_size = (self.position_buckets if self.position_buckets > 0
                        else self.max_relative_positions) * 2
        self.rel_embeddings = nn.Embedding(pos_ebd_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, config.layer_norm_eps)

    def get_attention_mask(self, attention_mask):
        extended_attention_mask = attention_mask.unsqueeze(1).unsqueeze(2)
        attention_mask = extended_attention_mask * extended_attention_mask.squeeze(-2).unsqueeze(-1)
        return attention_mask.byte()

    def forward(self, hidden_states, attention_mask):
        attention_mask = self.get_attention_mask(attention_mask)
        t = hidden_states.size(-2)
        relative_pos = build_relative_position(t, t, self.position_buckets,
                                               self.max_relative_positions)
        rel_embeddings = self.LayerNorm(self.rel_embeddings.weight)
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask, relative_pos,
                                         rel_embeddings)
        return hidden_states


class DebertaV2Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = DebertaV2Embeddings(config)
        self.encoder = DebertaV2Encoder(config)

    def forward(self, input_ids, attention_mask):
        embedding_output = self.embeddings(input_ids, attention_mask)
        return self.encoder(embedding_output, attention_mask)


class PredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(F.gelu(self.dense(hidden_states)))


class LMPredictionHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transform = PredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class OnlyMLMHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = LMPredictionHead(config)


class DebertaV2ForMaskedLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.deberta = DebertaV2Model(config)
        self.cls = OnlyMLMHead(config)
        self.cls.predictions.decoder.weight = self.deberta.embeddings.word_embeddings.weight


def build(meta):
    """The model and the loss of one batch: MLM cross-entropy at the masked positions only, as
    nlpkit's masked_lm task computes it."""
    model = DebertaV2ForMaskedLM(DebertaConfig(meta))

    def loss_of(b, ignore):
        sequence_output = model.deberta(b["input_ids"], b["attention_mask"])
        picked = b["labels"] != ignore                                        # (B, T)
        logits = model.cls.predictions(sequence_output[picked])               # (N, V)
        return F.cross_entropy(logits, b["labels"][picked])

    return model, loss_of
