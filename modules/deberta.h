// DeBERTa (He et al. 2021, "DeBERTa: Decoding-enhanced BERT with Disentangled Attention"; He et
// al. 2021, "DeBERTaV3: Improving DeBERTa using ELECTRA-Style Pre-Training with
// Gradient-Disentangled Embedding Sharing"). Numerics and parameter names match HuggingFace
// transformers' DebertaV2Model (modeling_deberta_v2.py, 4.19) and microsoft/DeBERTa:
//
// - embeddings: LayerNorm(word [+ position] [+ token type]) multiplied by the attention mask;
// - disentangled attention: content-to-content + content-to-position (c2p) + position-to-content
//   (p2c) scores over log-bucketed relative positions, one scale sqrt(Hd * (1 + #terms));
// - nGiE: a convolution applied alongside the first layer's output (DeBERTa-v2);
// - masking as XSoftmax: masked scores excluded, padded query rows all zero.
//
// Parameter names are HuggingFace's (`deberta.embeddings.word_embeddings.weight`,
// `deberta.encoder.layer.0.attention.self.query_proj.weight`, `deberta.encoder.rel_embeddings`,
// `deberta.encoder.conv.conv.weight`, ...), so a HuggingFace DeBERTa-v2/v3 folder loads without
// conversion (trainers/huggingface.h).
//
//   DebertaForMaskedLM model(DebertaOptions().vocab_size(128100).num_layers(12));
//   DebertaMaskedLMOutput out = model->forward(ids, mask);  // out.logits (B, T, V)
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "modules/bert.h"
#include "modules/lora.h"

namespace nlpkit {

/// Defaults are DeBERTa-v3-base's (HuggingFace's DebertaV2Config defaults differ for keys a v3
/// config always sets: relative_attention, position_buckets, pos_att_type, ...).
struct DebertaOptions {
  TORCH_ARG(int64_t, vocab_size) = 128100;
  TORCH_ARG(int64_t, hidden_size) = 768;
  /// HuggingFace: num_hidden_layers.
  TORCH_ARG(int64_t, num_layers) = 12;
  /// HuggingFace: num_attention_heads.
  TORCH_ARG(int64_t, num_heads) = 12;
  TORCH_ARG(int64_t, intermediate_size) = 3072;
  /// gelu (exact, erf), gelu_new (tanh approximation), relu, tanh.
  TORCH_ARG(std::string, hidden_act) = "gelu";
  /// HuggingFace: hidden_dropout_prob.
  TORCH_ARG(double, dropout) = 0.1;
  /// HuggingFace: attention_probs_dropout_prob.
  TORCH_ARG(double, attention_dropout) = 0.1;
  TORCH_ARG(int64_t, max_position_embeddings) = 512;
  /// 0 = no token type embeddings (DeBERTa-v3).
  TORCH_ARG(int64_t, type_vocab_size) = 0;
  TORCH_ARG(double, layer_norm_eps) = 1e-7;
  TORCH_ARG(int64_t, pad_id) = 0;
  /// Disentangled attention over relative positions; false = plain content attention.
  TORCH_ARG(bool, relative_attention) = true;
  /// Largest relative distance; < 1 = max_position_embeddings.
  TORCH_ARG(int64_t, max_relative_positions) = -1;
  /// Log-bucketed relative positions with this many buckets; <= 0 = exact positions.
  TORCH_ARG(int64_t, position_buckets) = 256;
  /// Position terms, '|'-separated: c2p, p2c (HuggingFace's pos_att_type).
  TORCH_ARG(std::string, pos_att_type) = "p2c|c2p";
  /// Position projections shared with query_proj / key_proj; false = own pos_key_proj (c2p)
  /// and pos_query_proj (p2c).
  TORCH_ARG(bool, share_att_key) = true;
  /// "layer_norm" normalises the relative embeddings (encoder.LayerNorm); "none" does not.
  TORCH_ARG(std::string, norm_rel_ebd) = "layer_norm";
  /// Adds absolute position embeddings to the input (DeBERTa-v1/v2 style).
  TORCH_ARG(bool, position_biased_input) = false;
  /// Creates embeddings.position_embeddings even when position_biased_input is false
  /// (microsoft/DeBERTa always has it; the Enhanced Mask Decoder reads it).
  TORCH_ARG(bool, absolute_position_embeddings) = false;
  /// nGiE convolution kernel size; 0 = no convolution layer.
  TORCH_ARG(int64_t, conv_kernel_size) = 0;
  TORCH_ARG(std::string, conv_act) = "tanh";
  TORCH_ARG(int64_t, conv_groups) = 1;
  /// The sequence classifier's ContextPooler activation (HuggingFace: pooler_hidden_act).
  TORCH_ARG(std::string, pooler_hidden_act) = "gelu";
  /// Dropout on the token-0 state before the pooler's dense layer.
  TORCH_ARG(double, pooler_dropout) = 0;
};

/// Throws c10::Error naming the option when `options` is inconsistent.
void check_deberta_options(const DebertaOptions& options);

/// The position terms of pos_att_type: {c2p, p2c}. Throws on unknown terms.
struct DebertaPositionTerms {
  bool c2p = false;
  bool p2c = false;
};
DebertaPositionTerms deberta_position_terms(const std::string& pos_att_type);

/// Relative positions delta(i, j) = i - j of queries 0..query_size-1 and keys 0..key_size-1,
/// log-bucketed when bucket_size > 0 and max_position > 0 (exact within bucket_size / 2,
/// logarithmic beyond; evaluated in double precision as HuggingFace's numpy code). (1, Lq, Lk)
/// int64.
torch::Tensor deberta_relative_position(int64_t query_size, int64_t key_size, int64_t bucket_size,
                                        int64_t max_position, torch::Device device = torch::kCPU);

/// One relative-position term of disentangled attention for every (i, j), computed on the band
/// only: out[b, h, i, j] = a[b, h, i, :] . rel[h, Ta - 1 - i + j, :] for a (B, heads, Ta, Hd)
/// and rel (heads, Ta + Tb - 1, Hd) (the relative rows in distance order) -> (B, heads, Ta, Tb).
/// A single product a . rel^T would compute Ta x (Ta + Tb - 1) dot products per head of which
/// Ta x Tb are used; blocks of `block` query rows each multiply only the Tb + block - 1 rows
/// they reach, so the work is (Tb + block - 1) / Tb of the band's. Own backward (no (B, heads,
/// Ta, Ta + Tb - 1) gradient buffer). `transposed`: the same product as (B, heads, Tb, Ta),
/// out[b, h, j, i] (the layout in which the attention adds its p2c term).
torch::Tensor relative_band_product(const torch::Tensor& a, const torch::Tensor& rel,
                                    int64_t block = 32, bool transposed = false);

/// HuggingFace's _init_weights on every module below `module` (not itself): Linear and
/// Embedding weights N(0, std), Linear biases 0, LayerNorm 1 and 0; others (the nGiE Conv1d)
/// keep PyTorch's initialisation.
void deberta_init_weights(torch::nn::Module& module, double std);

/// (B, T) 1/0 mask -> (B, 1, T, T) bool mask m_i * m_j (HuggingFace's get_attention_mask), or
/// an undefined tensor when no position is masked: the attention then skips XSoftmax's two
/// fills, which change nothing on such a batch.
torch::Tensor deberta_attention_mask(const torch::Tensor& attention_mask);

// ---------------------------------------------------------------- blocks

/// LayerNorm(word + [position] + [token type]) * mask, then dropout.
class DebertaEmbeddingsImpl : public torch::nn::Cloneable<DebertaEmbeddingsImpl> {
 public:
  explicit DebertaEmbeddingsImpl(DebertaOptions options_);
  void reset() override;
  /// input_ids (B, T) int64; token_type_ids (B, T) or undefined (0); mask (B, T) 1/0 or
  /// undefined -> (B, T, H). inputs_embeds (B, T, H), when given, replaces the word-embedding
  /// lookup (HuggingFace's inputs_embeds; RTD's embedding sharing feeds the generator's).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids = {},
                        const torch::Tensor& mask = {}, const torch::Tensor& inputs_embeds = {});

  DebertaOptions options;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
  Dropout dropout{nullptr};
  torch::Tensor position_ids;  // buffer (1, max_position_embeddings)
  /// Applied to the LayerNorm's input (B, T, H) when set: microsoft/DeBERTa's SiFT forward
  /// pre-hook on embeddings.LayerNorm, and embedding-level Mixup (trainers/regularizers.h).
  /// Not part of the state.
  TensorHook layer_norm_input_hook;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(torch::Tensor())},
                           {3, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(DebertaEmbeddings);

/// HuggingFace's DisentangledSelfAttention ("attention.self").
class DisentangledSelfAttentionImpl : public torch::nn::Cloneable<DisentangledSelfAttentionImpl> {
 public:
  explicit DisentangledSelfAttentionImpl(DebertaOptions options_);
  void reset() override;
  /// hidden (B, Tk, H) gives keys and values; query_states (B, Tq, H) the queries (undefined =
  /// hidden); mask (B, 1, Tq, Tk) bool or undefined; relative_pos (1, Tq, Tk) bucketed i - j
  /// (deberta_relative_position for these options: the rows used are derived from them);
  /// rel_embeddings (2 * span, H), already normalised -> context (B, Tq, H). With `probs`
  /// non-null, stores the attention probabilities (B, heads, Tq, Tk) there.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                        const torch::Tensor& query_states, const torch::Tensor& relative_pos,
                        const torch::Tensor& rel_embeddings, torch::Tensor* probs = nullptr);

  DebertaOptions options;
  DebertaPositionTerms terms;
  /// Relative positions attended to on each side: position_buckets, else max_relative_positions.
  int64_t att_span = 0;
  LoRALinear query_proj{nullptr}, key_proj{nullptr}, value_proj{nullptr};
  LoRALinear pos_key_proj{nullptr}, pos_query_proj{nullptr};  // without share_att_key
  Dropout dropout{nullptr}, pos_dropout{nullptr};
};
TORCH_MODULE(DisentangledSelfAttention);

/// dense -> dropout -> LayerNorm(x + residual): HuggingFace's DebertaV2SelfOutput/Output.
class DebertaResidualOutputImpl : public torch::nn::Cloneable<DebertaResidualOutputImpl> {
 public:
  DebertaResidualOutputImpl(DebertaOptions options_, int64_t in_features);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  DebertaOptions options;
  int64_t in_features;
  LoRALinear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
  Dropout dropout{nullptr};
};
TORCH_MODULE(DebertaResidualOutput);

/// attention.self + attention.output; the residual is the query stream.
class DebertaAttentionImpl : public torch::nn::Cloneable<DebertaAttentionImpl> {
 public:
  explicit DebertaAttentionImpl(DebertaOptions options_);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                        const torch::Tensor& query_states, const torch::Tensor& relative_pos,
                        const torch::Tensor& rel_embeddings, torch::Tensor* probs = nullptr);

  DebertaOptions options;
  DisentangledSelfAttention self_attention{nullptr};  // "self"
  DebertaResidualOutput output{nullptr};
};
TORCH_MODULE(DebertaAttention);

/// "intermediate": act(dense(x)).
class DebertaIntermediateImpl : public torch::nn::Cloneable<DebertaIntermediateImpl> {
 public:
  explicit DebertaIntermediateImpl(DebertaOptions options_);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  DebertaOptions options;
  LoRALinear dense{nullptr};
};
TORCH_MODULE(DebertaIntermediate);

/// One post-LN layer. With query_states, the queries (and the residual) come from
/// query_states and the keys and values from hidden: the Enhanced Mask Decoder's use.
class DebertaLayerImpl : public torch::nn::Cloneable<DebertaLayerImpl> {
 public:
  explicit DebertaLayerImpl(DebertaOptions options_);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                        const torch::Tensor& query_states, const torch::Tensor& relative_pos,
                        const torch::Tensor& rel_embeddings, torch::Tensor* probs = nullptr);

  DebertaOptions options;
  DebertaAttention attention{nullptr};
  DebertaIntermediate intermediate{nullptr};
  DebertaResidualOutput output{nullptr};
};
TORCH_MODULE(DebertaLayer);

/// nGiE ("encoder.conv"): LayerNorm(layer_output + act(conv1d(layer_input) masked)) * mask.
class DebertaConvLayerImpl : public torch::nn::Cloneable<DebertaConvLayerImpl> {
 public:
  explicit DebertaConvLayerImpl(DebertaOptions options_);
  void reset() override;
  /// input (B, T, H) (the first layer's input), residual (B, T, H) (its output), mask (B, T)
  /// 1/0 or undefined -> (B, T, H).
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& residual,
                        const torch::Tensor& mask);

  DebertaOptions options;
  torch::nn::Conv1d conv{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
  Dropout dropout{nullptr};
};
TORCH_MODULE(DebertaConvLayer);

/// The layer stack with the shared relative embeddings ("encoder").
class DebertaEncoderImpl : public torch::nn::Cloneable<DebertaEncoderImpl> {
 public:
  explicit DebertaEncoderImpl(DebertaOptions options_);
  void reset() override;
  /// rel_embeddings.weight, normalised when norm_rel_ebd is layer_norm; undefined without
  /// relative_attention.
  torch::Tensor rel_embedding();
  /// Bucketed relative positions (1, Tq, Tk) for this encoder's options.
  torch::Tensor relative_position(int64_t query_size, int64_t key_size, torch::Device device);

  DebertaOptions options;
  torch::nn::ModuleList layer{nullptr};
  torch::nn::Embedding rel_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm", with norm_rel_ebd layer_norm
  DebertaConvLayer conv{nullptr};            // with conv_kernel_size > 0
};
TORCH_MODULE(DebertaEncoder);

// ---------------------------------------------------------------- DebertaModel

struct DebertaModelOutput {
  torch::Tensor last_hidden_state;  // (B, T, H)
  /// With output_hidden_states: the embedding output, then every layer's output (L + 1).
  std::vector<torch::Tensor> hidden_states;
  /// With output_attentions: every layer's attention probabilities (B, heads, T, T).
  std::vector<torch::Tensor> attentions;
  /// The bucketed relative positions (1, T, T) the layers used; undefined without
  /// relative_attention.
  torch::Tensor relative_pos;
};

class DebertaModelImpl : public torch::nn::Cloneable<DebertaModelImpl> {
 public:
  explicit DebertaModelImpl(DebertaOptions options_);
  void reset() override;
  /// HuggingFace's _init_weights: Linear and Embedding weights N(0, initializer_range), Linear
  /// biases 0, LayerNorm 1 and 0, the padding row of the word embeddings 0 (the convolution
  /// keeps PyTorch's default initialisation, as in HuggingFace).
  void reset_parameters(double initializer_range = 0.02);
  /// input_ids (B, T) int64; attention_mask (B, T) 1 = token, 0 = padding (default all 1);
  /// token_type_ids (B, T) (default 0). Checks ids, token types and T.
  DebertaModelOutput forward(const torch::Tensor& input_ids,
                             const torch::Tensor& attention_mask = {},
                             const torch::Tensor& token_type_ids = {},
                             bool output_hidden_states = false, bool output_attentions = false);
  /// The encoder part of forward: embedding_output (B, T, H) (the embeddings' output) and
  /// attention_mask (B, T) or undefined. hidden_states (when asked) start with embedding_output.
  DebertaModelOutput encode(const torch::Tensor& embedding_output,
                            const torch::Tensor& attention_mask, bool output_hidden_states = false,
                            bool output_attentions = false);
  /// The checks forward applies to its inputs (ids in range, shapes, T).
  void check_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                    const torch::Tensor& token_type_ids) const;
  void pretty_print(std::ostream& stream) const override;

  DebertaOptions options;
  DebertaEmbeddings embeddings{nullptr};
  DebertaEncoder encoder{nullptr};
};
TORCH_MODULE(DebertaModel);

// ---------------------------------------------------------------- MLM head

/// BertOptions carrying what the BERT-layout MLM head reads (hidden_size, vocab_size,
/// hidden_act, layer_norm_eps): HuggingFace 4.19's DebertaV2 MLM head is BERT's.
BertOptions deberta_head_options(const DebertaOptions& options);

/// HuggingFace's DebertaV2OnlyMLMHead ("cls"): `predictions` (transform, tied decoder, bias).
class DebertaOnlyMLMHeadImpl : public torch::nn::Cloneable<DebertaOnlyMLMHeadImpl> {
 public:
  explicit DebertaOnlyMLMHeadImpl(DebertaOptions options_);
  void reset() override;

  DebertaOptions options;
  BertLMHead predictions{nullptr};
};
TORCH_MODULE(DebertaOnlyMLMHead);

struct DebertaMaskedLMOutput {
  DebertaModelOutput deberta;
  torch::Tensor logits;  // (B, T, V)
};

/// DebertaV2ForMaskedLM: `deberta` and `cls.predictions`, the decoder tied to the word
/// embeddings (exported as cls.predictions.decoder.weight / .bias).
class DebertaForMaskedLMImpl : public torch::nn::Cloneable<DebertaForMaskedLMImpl> {
 public:
  explicit DebertaForMaskedLMImpl(DebertaOptions options_);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  DebertaMaskedLMOutput forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask = {},
                                const torch::Tensor& token_type_ids = {},
                                bool output_hidden_states = false, bool output_attentions = false);
  /// MLM logits (..., V) of hidden states (..., H).
  torch::Tensor mlm_logits(const torch::Tensor& hidden);
  void pretty_print(std::ostream& stream) const override;

  DebertaOptions options;
  DebertaModel deberta{nullptr};
  DebertaOnlyMLMHead cls{nullptr};
};
TORCH_MODULE(DebertaForMaskedLM);

// ---------------------------------------------------------------- sequence classification

/// HuggingFace's ContextPooler ("pooler"): act(dense(dropout(h[:, 0]))), act =
/// pooler_hidden_act.
class DebertaContextPoolerImpl : public torch::nn::Cloneable<DebertaContextPoolerImpl> {
 public:
  explicit DebertaContextPoolerImpl(DebertaOptions options_);
  void reset() override;
  /// hidden (B, T, H) -> pooled (B, H).
  torch::Tensor forward(const torch::Tensor& hidden);

  DebertaOptions options;
  LoRALinear dense{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(DebertaContextPooler);

/// DebertaV2ForSequenceClassification: `deberta`, `pooler` (ContextPooler), dropout,
/// `classifier` -> logits (B, num_labels).
class DebertaClassifierImpl : public torch::nn::Cloneable<DebertaClassifierImpl> {
 public:
  DebertaClassifierImpl(DebertaOptions options_, int64_t num_labels,
                        double classifier_dropout = -1);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  /// Logits (B, num_labels); `out` (optional) receives the encoder's output.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {}, DebertaModelOutput* out = nullptr,
                        bool output_hidden_states = false, bool output_attentions = false);
  void pretty_print(std::ostream& stream) const override;

  DebertaOptions options;
  int64_t num_labels;
  /// HuggingFace's cls_dropout; < 0 = the hidden dropout.
  double classifier_dropout;
  DebertaModel deberta{nullptr};
  DebertaContextPooler pooler{nullptr};
  Dropout dropout{nullptr};
  LoRALinear classifier{nullptr};
  /// Applied to the pooled features (B, H) before the dropout when set: the site of
  /// sentence-level Mixup. Not part of the state.
  TensorHook features_hook;
};
TORCH_MODULE(DebertaClassifier);

}  // namespace nlpkit
