// BERT (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
// Understanding"). Numerics and parameter names match HuggingFace transformers' BertModel
// (modeling_bert.py): post-LN encoder layers, GELU in its exact erf form, LayerNorm eps from the
// config (1e-12), an additive attention mask of the dtype's lowest value on padded keys, and
// parameter names such as `embeddings.word_embeddings.weight` and
// `encoder.layer.0.attention.self.query.weight`, so that a HuggingFace checkpoint loads without
// conversion (trainers/huggingface.h) and our checkpoints load in Python.
//
// The heads follow HuggingFace's BertForPreTraining (MLM decoder tied to the word embeddings +
// NSP), BertForSequenceClassification and BertForTokenClassification, under the same names
// (`bert.`, `cls.predictions.*`, `cls.seq_relationship.*`, `classifier.*`).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "modules/lora.h"
#include "modules/regularization.h"

namespace nlpkit {

struct BertOptions {
  TORCH_ARG(int64_t, vocab_size) = 30522;
  TORCH_ARG(int64_t, hidden_size) = 768;
  /// HuggingFace: num_hidden_layers.
  TORCH_ARG(int64_t, num_layers) = 12;
  /// HuggingFace: num_attention_heads.
  TORCH_ARG(int64_t, num_heads) = 12;
  TORCH_ARG(int64_t, intermediate_size) = 3072;
  /// gelu (exact, erf), gelu_new (tanh approximation), relu.
  TORCH_ARG(std::string, hidden_act) = "gelu";
  /// HuggingFace: hidden_dropout_prob (embeddings, attention output, layer output).
  TORCH_ARG(double, dropout) = 0.1;
  /// HuggingFace: attention_probs_dropout_prob.
  TORCH_ARG(double, attention_dropout) = 0.1;
  TORCH_ARG(int64_t, max_position_embeddings) = 512;
  TORCH_ARG(int64_t, type_vocab_size) = 2;
  TORCH_ARG(double, layer_norm_eps) = 1e-12;
  TORCH_ARG(int64_t, pad_id) = 0;
  /// Builds the pooler (tanh(dense(h[:, 0]))); HuggingFace's add_pooling_layer.
  TORCH_ARG(bool, add_pooling_layer) = true;
};

/// Applies BERT's hidden activation by name (gelu = erf form).
torch::Tensor bert_activation(const torch::Tensor& x, const std::string& name);

/// (B, T) 1/0 attention mask -> (B, 1, 1, T) additive mask: 0 on tokens, the dtype's lowest
/// value on padding (HuggingFace's get_extended_attention_mask).
torch::Tensor bert_additive_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype);

// ---------------------------------------------------------------- blocks

class BertEmbeddingsImpl : public torch::nn::Cloneable<BertEmbeddingsImpl> {
 public:
  explicit BertEmbeddingsImpl(BertOptions options_);
  void reset() override;
  /// input_ids, token_type_ids (B, T) int64 (token types default to 0) -> (B, T, H):
  /// LayerNorm(word + position + token_type), then dropout. Positions are 0..T-1.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids = {});

  BertOptions options;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
  Dropout dropout{nullptr};
  torch::Tensor position_ids;  // buffer (1, max_position_embeddings), as HuggingFace 4.x saves it
  /// Applied to the LayerNorm's input (word + position + token type, (B, T, H)) when set: the
  /// site of SiFT's perturbation and of embedding-level Mixup (trainers/regularizers.h), as
  /// DeBERTa's forward pre-hook on embeddings.LayerNorm. Not part of the state.
  TensorHook layer_norm_input_hook;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(BertEmbeddings);

/// Multi-head scaled dot-product self-attention ("self": query, key, value).
class BertSelfAttentionImpl : public torch::nn::Cloneable<BertSelfAttentionImpl> {
 public:
  explicit BertSelfAttentionImpl(BertOptions options_);
  void reset() override;
  /// hidden (B, T, H), additive mask (B, 1, 1, T) or undefined -> context (B, T, H). With
  /// `probs` non-null, stores the attention probabilities (B, heads, T, T) there.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask,
                        torch::Tensor* probs = nullptr);

  BertOptions options;
  LoRALinear query{nullptr}, key{nullptr}, value{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertSelfAttention);

/// dense -> dropout -> LayerNorm(x + residual): HuggingFace's BertSelfOutput and BertOutput.
class BertResidualOutputImpl : public torch::nn::Cloneable<BertResidualOutputImpl> {
 public:
  BertResidualOutputImpl(BertOptions options_, int64_t in_features);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  BertOptions options;
  int64_t in_features;
  LoRALinear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

/// attention.self + attention.output.
class BertAttentionImpl : public torch::nn::Cloneable<BertAttentionImpl> {
 public:
  explicit BertAttentionImpl(BertOptions options_);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask,
                        torch::Tensor* probs = nullptr);

  BertOptions options;
  BertSelfAttention self_attention{nullptr};  // "self"
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

/// A module holding one Linear called `dense` and an activation: HuggingFace's BertIntermediate
/// (hidden_act) and BertPooler (tanh).
class BertDenseImpl : public torch::nn::Cloneable<BertDenseImpl> {
 public:
  BertDenseImpl(int64_t in_features, int64_t out_features, std::string activation);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features, out_features;
  std::string activation;  // gelu, gelu_new, relu or tanh
  LoRALinear dense{nullptr};
};
TORCH_MODULE(BertDense);

/// One post-LN encoder layer: attention, intermediate, output.
class BertLayerImpl : public torch::nn::Cloneable<BertLayerImpl> {
 public:
  explicit BertLayerImpl(BertOptions options_);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask,
                        torch::Tensor* probs = nullptr);

  BertOptions options;
  BertAttention attention{nullptr};
  BertDense intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

/// The layer stack ("encoder.layer.{i}").
class BertEncoderImpl : public torch::nn::Cloneable<BertEncoderImpl> {
 public:
  explicit BertEncoderImpl(BertOptions options_);
  void reset() override;

  BertOptions options;
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

// ---------------------------------------------------------------- BertModel

struct BertModelOutput {
  torch::Tensor last_hidden_state;  // (B, T, H)
  torch::Tensor pooler_output;      // (B, H); undefined without a pooler
  /// With output_hidden_states: the embedding output, then every layer's output (L + 1).
  std::vector<torch::Tensor> hidden_states;
  /// With output_attentions: every layer's attention probabilities (B, heads, T, T).
  std::vector<torch::Tensor> attentions;
};

class BertModelImpl : public torch::nn::Cloneable<BertModelImpl> {
 public:
  explicit BertModelImpl(BertOptions options_);
  void reset() override;
  /// HuggingFace's _init_weights: Linear and Embedding weights N(0, initializer_range), biases
  /// 0, LayerNorm 1 and 0, the padding row of the word embeddings 0.
  void reset_parameters(double initializer_range = 0.02);
  /// input_ids (B, T) int64; attention_mask (B, T) 1 = token, 0 = padding (default all 1);
  /// token_type_ids (B, T) (default 0). Checks ids against vocab_size, token types against
  /// type_vocab_size and T against max_position_embeddings.
  BertModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                          const torch::Tensor& token_type_ids = {},
                          bool output_hidden_states = false, bool output_attentions = false);
  void pretty_print(std::ostream& stream) const override;

  BertOptions options;
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertDense pooler{nullptr};  // absent without add_pooling_layer
};
TORCH_MODULE(BertModel);

// ---------------------------------------------------------------- heads

struct BertPreTrainingOutput {
  BertModelOutput bert;
  torch::Tensor prediction_logits;        // (B, T, V)
  torch::Tensor seq_relationship_logits;  // (B, 2)
};

/// HuggingFace's BertPredictionHeadTransform ("cls.predictions.transform"):
/// LayerNorm(act(dense(h))).
class BertHeadTransformImpl : public torch::nn::Cloneable<BertHeadTransformImpl> {
 public:
  explicit BertHeadTransformImpl(BertOptions options_);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& hidden);

  BertOptions options;
  LoRALinear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
};
TORCH_MODULE(BertHeadTransform);

/// HuggingFace's BertLMPredictionHead ("cls.predictions"): transform, then the tied decoder (the
/// word-embedding matrix, passed in) plus `bias`.
class BertLMHeadImpl : public torch::nn::Cloneable<BertLMHeadImpl> {
 public:
  explicit BertLMHeadImpl(BertOptions options_);
  void reset() override;
  /// hidden (..., H), decoder weight (V, H) -> logits (..., V).
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& decoder_weight);

  BertOptions options;
  BertHeadTransform transform{nullptr};
  torch::Tensor bias;  // (V)
};
TORCH_MODULE(BertLMHead);

/// HuggingFace's BertPreTrainingHeads ("cls"): predictions (MLM) and seq_relationship (NSP).
class BertPreTrainingHeadsImpl : public torch::nn::Cloneable<BertPreTrainingHeadsImpl> {
 public:
  explicit BertPreTrainingHeadsImpl(BertOptions options_);
  void reset() override;

  BertOptions options;
  BertLMHead predictions{nullptr};
  LoRALinear seq_relationship{nullptr};
};
TORCH_MODULE(BertPreTrainingHeads);

/// BertForPreTraining: `bert`, `cls.predictions` and `cls.seq_relationship`. The MLM decoder is
/// the word-embedding matrix itself (tied, one tensor): it has no parameter of its own, and the
/// HuggingFace export writes it as `cls.predictions.decoder.weight` / `.bias`.
class BertForPreTrainingImpl : public torch::nn::Cloneable<BertForPreTrainingImpl> {
 public:
  explicit BertForPreTrainingImpl(BertOptions options_);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  BertPreTrainingOutput forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask = {},
                                const torch::Tensor& token_type_ids = {},
                                bool output_hidden_states = false, bool output_attentions = false);
  /// MLM logits (..., V) of hidden states (..., H). Applied to the masked positions only, it
  /// saves the (B, T, V) product in training.
  torch::Tensor mlm_logits(const torch::Tensor& hidden);
  void pretty_print(std::ostream& stream) const override;

  BertOptions options;
  BertModel bert{nullptr};
  BertPreTrainingHeads cls{nullptr};
};
TORCH_MODULE(BertForPreTraining);

/// BertForSequenceClassification (`per_token` false: logits (B, num_labels) from the pooled
/// output) and BertForTokenClassification (`per_token` true: logits (B, T, num_labels) from every
/// hidden state): `bert`, dropout, `classifier`.
class BertClassifierImpl : public torch::nn::Cloneable<BertClassifierImpl> {
 public:
  BertClassifierImpl(BertOptions options_, int64_t num_labels, bool per_token = false,
                     double classifier_dropout = -1);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  /// Logits; `out` (optional) receives the encoder's output.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {}, BertModelOutput* out = nullptr,
                        bool output_hidden_states = false, bool output_attentions = false);
  void pretty_print(std::ostream& stream) const override;

  BertOptions options;
  int64_t num_labels;
  bool per_token;
  /// HuggingFace's classifier_dropout; < 0 = the hidden dropout.
  double classifier_dropout;
  BertModel bert{nullptr};
  Dropout dropout{nullptr};
  LoRALinear classifier{nullptr};
  /// Applied to the classifier's input features (pooled (B, H) or (B, T, H)) before the dropout
  /// when set: the site of sentence-level Mixup. Not part of the state.
  TensorHook features_hook;
};
TORCH_MODULE(BertClassifier);

}  // namespace nlpkit
