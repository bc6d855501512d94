#include "modules/bert.h"

#include <cmath>
#include <limits>

namespace nlpkit {

torch::Tensor bert_activation(const torch::Tensor& x, const std::string& name) {
  if (name == "gelu") return torch::gelu(x);  // exact: x * Phi(x), with erf
  if (name == "gelu_new") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  if (name == "tanh") return torch::tanh(x);
  TORCH_CHECK(false, "BERT: unknown activation '", name,
              "' (expected gelu, gelu_new, relu or tanh)");
}

torch::Tensor bert_additive_mask(const torch::Tensor& attention_mask, torch::ScalarType dtype) {
  TORCH_CHECK(attention_mask.dim() == 2, "BERT: attention_mask must be (B, T), got ",
              attention_mask.sizes());
  // HuggingFace: (1 - mask) * finfo(dtype).min, broadcast over heads and queries.
  const double lowest = dtype == torch::kFloat64   ? std::numeric_limits<double>::lowest()
                        : dtype == torch::kFloat16 ? -65504.0
                        : dtype == torch::kBFloat16
                            ? -3.38953139e38
                            : static_cast<double>(std::numeric_limits<float>::lowest());
  return (1.0 - attention_mask.to(dtype)).mul(lowest).unsqueeze(1).unsqueeze(2);  // (B, 1, 1, T)
}

namespace {

void check_options(const BertOptions& o) {
  TORCH_CHECK(o.vocab_size() > 0, "BERT: vocab_size must be positive, got ", o.vocab_size());
  TORCH_CHECK(o.hidden_size() > 0 && o.num_heads() > 0 && o.hidden_size() % o.num_heads() == 0,
              "BERT: hidden_size (", o.hidden_size(), ") must be divisible by num_heads (",
              o.num_heads(), ")");
  TORCH_CHECK(o.num_layers() >= 0, "BERT: num_layers must be >= 0, got ", o.num_layers());
  TORCH_CHECK(o.intermediate_size() > 0, "BERT: intermediate_size must be positive");
  TORCH_CHECK(o.max_position_embeddings() > 0, "BERT: max_position_embeddings must be positive");
  TORCH_CHECK(o.type_vocab_size() > 0, "BERT: type_vocab_size must be positive");
  TORCH_CHECK(o.dropout() >= 0 && o.dropout() < 1, "BERT: dropout must be in [0, 1)");
  TORCH_CHECK(o.attention_dropout() >= 0 && o.attention_dropout() < 1,
              "BERT: attention_dropout must be in [0, 1)");
  TORCH_CHECK(o.pad_id() >= 0 && o.pad_id() < o.vocab_size(), "BERT: pad_id (", o.pad_id(),
              ") must be in [0, vocab_size)");
  bert_activation(torch::zeros({1}), o.hidden_act());  // rejects unknown names early
}

torch::nn::LayerNorm make_layer_norm(const BertOptions& o) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps()));
}

/// HuggingFace's _init_weights for one Linear, Embedding or LayerNorm (others are left alone).
void init_bert_module(torch::nn::Module& m, double std) {
  if (auto* linear = m.as<LoRALinear>()) {
    linear->weight.normal_(0, std);
    if (linear->bias.defined()) linear->bias.zero_();
  } else if (auto* embedding = m.as<torch::nn::Embedding>()) {
    embedding->weight.normal_(0, std);
  } else if (auto* norm = m.as<torch::nn::LayerNorm>()) {
    norm->weight.fill_(1);
    norm->bias.zero_();
  }
}

/// init_bert_module on `module` and everything below it. (modules() cannot include the module
/// itself while it is being constructed, hence the two steps.)
void init_bert_weights(torch::nn::Module& module, double std, int64_t pad_id,
                       const torch::Tensor& word_embeddings) {
  torch::NoGradGuard no_grad;
  init_bert_module(module, std);
  for (auto& m : module.modules(/*include_self=*/false)) init_bert_module(*m, std);
  if (word_embeddings.defined()) word_embeddings[pad_id].zero_();
}

}  // namespace

// ---------------------------------------------------------------- BertEmbeddings

BertEmbeddingsImpl::BertEmbeddingsImpl(BertOptions options_) : options(std::move(options_)) {
  reset();
}

void BertEmbeddingsImpl::reset() {
  check_options(options);
  const int64_t h = options.hidden_size();
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(
          torch::nn::EmbeddingOptions(options.vocab_size(), h).padding_idx(options.pad_id())));
  position_embeddings = register_module("position_embeddings",
                                        torch::nn::Embedding(options.max_position_embeddings(), h));
  token_type_embeddings =
      register_module("token_type_embeddings", torch::nn::Embedding(options.type_vocab_size(), h));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
  dropout = register_module("dropout", Dropout(options.dropout()));
  position_ids = register_buffer(
      "position_ids", torch::arange(options.max_position_embeddings()).unsqueeze(0));  // (1, P)
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                          const torch::Tensor& token_type_ids) {
  const int64_t t = input_ids.size(1);
  const torch::Tensor positions = position_ids.slice(1, 0, t);                    // (1, T)
  // HuggingFace's order of additions (word + token type, then + position): bitwise the same.
  torch::Tensor x = token_type_ids.defined()
                        ? word_embeddings(input_ids) + token_type_embeddings(token_type_ids)
                        : word_embeddings(input_ids) + token_type_embeddings->weight[0];
  x = x + position_embeddings(positions);  // (B, T, H)
  if (layer_norm_input_hook) x = layer_norm_input_hook(x);
  return dropout(layer_norm(x));
}

// ---------------------------------------------------------------- attention

BertSelfAttentionImpl::BertSelfAttentionImpl(BertOptions options_) : options(std::move(options_)) {
  reset();
}

void BertSelfAttentionImpl::reset() {
  check_options(options);
  const int64_t h = options.hidden_size();
  query = register_module("query", LoRALinear(h, h));
  key = register_module("key", LoRALinear(h, h));
  value = register_module("value", LoRALinear(h, h));
  dropout = register_module("dropout", Dropout(options.attention_dropout()));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& hidden,
                                             const torch::Tensor& additive_mask,
                                             torch::Tensor* probs) {
  const int64_t b = hidden.size(0), t = hidden.size(1);
  const int64_t heads = options.num_heads(), hd = options.hidden_size() / heads;
  auto split_heads = [&](const torch::Tensor& x) {
    return x.view({b, t, heads, hd}).transpose(1, 2);  // (B, heads, T, Hd)
  };
  const torch::Tensor q = split_heads(query(hidden));
  const torch::Tensor k = split_heads(key(hidden));
  const torch::Tensor v = split_heads(value(hidden));
  // scores = q k^T / sqrt(Hd) + mask; one fused baddbmm (scale and mask in the same pass).
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  torch::Tensor scores;
  if (additive_mask.defined()) {
    // (B*heads, 1, T), broadcast over the queries by baddbmm: no (B*heads, T, T) copy.
    const torch::Tensor mask = additive_mask.expand({b, heads, 1, t}).reshape({b * heads, 1, t});
    scores = torch::baddbmm(mask, q.reshape({b * heads, t, hd}),
                            k.reshape({b * heads, t, hd}).transpose(1, 2), 1.0, scale);
  } else {
    scores =
        torch::bmm(q.reshape({b * heads, t, hd}), k.reshape({b * heads, t, hd}).transpose(1, 2))
            .mul_(scale);
  }
  torch::Tensor p = torch::softmax(scores, -1);  // (B*heads, T, T)
  if (probs) *probs = p.view({b, heads, t, t});
  p = dropout(p);
  const torch::Tensor context = torch::bmm(p, v.reshape({b * heads, t, hd}));  // (B*heads, T, Hd)
  return context.view({b, heads, t, hd}).transpose(1, 2).reshape({b, t, heads * hd});  // (B, T, H)
}

BertResidualOutputImpl::BertResidualOutputImpl(BertOptions options_, int64_t in_features_)
    : options(std::move(options_)), in_features(in_features_) {
  reset();
}

void BertResidualOutputImpl::reset() {
  dense = register_module("dense", LoRALinear(in_features, options.hidden_size()));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
  dropout = register_module("dropout", Dropout(options.dropout()));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& residual) {
  return layer_norm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(BertOptions options_) : options(std::move(options_)) {
  reset();
}

void BertAttentionImpl::reset() {
  self_attention = register_module("self", BertSelfAttention(options));
  output = register_module("output", BertResidualOutput(options, options.hidden_size()));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& hidden,
                                         const torch::Tensor& additive_mask, torch::Tensor* probs) {
  return output(self_attention->forward(hidden, additive_mask, probs), hidden);
}

BertDenseImpl::BertDenseImpl(int64_t in_features_, int64_t out_features_, std::string activation_)
    : in_features(in_features_), out_features(out_features_), activation(std::move(activation_)) {
  reset();
}

void BertDenseImpl::reset() {
  bert_activation(torch::zeros({1}), activation);
  dense = register_module("dense", LoRALinear(in_features, out_features));
}

torch::Tensor BertDenseImpl::forward(const torch::Tensor& x) {
  return bert_activation(dense(x), activation);
}

BertLayerImpl::BertLayerImpl(BertOptions options_) : options(std::move(options_)) { reset(); }

void BertLayerImpl::reset() {
  attention = register_module("attention", BertAttention(options));
  intermediate = register_module(
      "intermediate",
      BertDense(options.hidden_size(), options.intermediate_size(), options.hidden_act()));
  output = register_module("output", BertResidualOutput(options, options.intermediate_size()));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& hidden,
                                     const torch::Tensor& additive_mask, torch::Tensor* probs) {
  const torch::Tensor a = attention->forward(hidden, additive_mask, probs);  // (B, T, H)
  return output(intermediate(a), a);
}

BertEncoderImpl::BertEncoderImpl(BertOptions options_) : options(std::move(options_)) { reset(); }

void BertEncoderImpl::reset() {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) layer->push_back(BertLayer(options));
}

// ---------------------------------------------------------------- BertModel

BertModelImpl::BertModelImpl(BertOptions options_) : options(std::move(options_)) { reset(); }

void BertModelImpl::reset() {
  check_options(options);
  embeddings = register_module("embeddings", BertEmbeddings(options));
  encoder = register_module("encoder", BertEncoder(options));
  if (options.add_pooling_layer()) {
    pooler =
        register_module("pooler", BertDense(options.hidden_size(), options.hidden_size(), "tanh"));
  }
  reset_parameters();
}

void BertModelImpl::reset_parameters(double initializer_range) {
  init_bert_weights(*this, initializer_range, options.pad_id(),
                    embeddings->word_embeddings->weight);
}

BertModelOutput BertModelImpl::forward(const torch::Tensor& input_ids,
                                       const torch::Tensor& attention_mask,
                                       const torch::Tensor& token_type_ids,
                                       bool output_hidden_states, bool output_attentions) {
  TORCH_CHECK(input_ids.dim() == 2, "BertModel: input_ids must be (B, T), got ", input_ids.sizes());
  const int64_t t = input_ids.size(1);
  TORCH_CHECK(t <= options.max_position_embeddings(), "BertModel: sequence length ", t,
              " exceeds max_position_embeddings (", options.max_position_embeddings(), ")");
  if (input_ids.numel() > 0) {
    const auto [lo, hi] = torch::aminmax(input_ids);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < options.vocab_size(),
                "BertModel: token ids must be in [0, ", options.vocab_size(), "), got [",
                lo.item<int64_t>(), ", ", hi.item<int64_t>(), "]");
  }
  if (token_type_ids.defined()) {
    TORCH_CHECK(token_type_ids.sizes() == input_ids.sizes(), "BertModel: token_type_ids ",
                token_type_ids.sizes(), " must match input_ids ", input_ids.sizes());
    if (token_type_ids.numel() > 0) {
      const auto [lo, hi] = torch::aminmax(token_type_ids);
      TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < options.type_vocab_size(),
                  "BertModel: token_type_ids must be in [0, ", options.type_vocab_size(),
                  "), got [", lo.item<int64_t>(), ", ", hi.item<int64_t>(), "]");
    }
  }
  torch::Tensor mask;
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "BertModel: attention_mask ",
                attention_mask.sizes(), " must match input_ids ", input_ids.sizes());
  }
  BertModelOutput out;
  torch::Tensor h = embeddings(input_ids, token_type_ids);  // (B, T, H)
  if (attention_mask.defined()) mask = bert_additive_mask(attention_mask, h.scalar_type());
  if (output_hidden_states) out.hidden_states.push_back(h);
  for (const auto& layer : *encoder->layer) {
    torch::Tensor probs;
    h = layer->as<BertLayer>()->forward(h, mask, output_attentions ? &probs : nullptr);
    if (output_hidden_states) out.hidden_states.push_back(h);
    if (output_attentions) out.attentions.push_back(probs);
  }
  out.last_hidden_state = h;
  if (pooler) out.pooler_output = pooler(h.select(1, 0));  // (B, H)
  return out;
}

void BertModelImpl::pretty_print(std::ostream& stream) const {
  stream << "BertModel(vocab_size=" << options.vocab_size()
         << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
         << ", num_heads=" << options.num_heads()
         << ", intermediate_size=" << options.intermediate_size()
         << ", hidden_act=" << options.hidden_act() << ", dropout=" << options.dropout()
         << ", attention_dropout=" << options.attention_dropout()
         << ", max_position_embeddings=" << options.max_position_embeddings()
         << ", type_vocab_size=" << options.type_vocab_size()
         << ", layer_norm_eps=" << options.layer_norm_eps() << ", pad_id=" << options.pad_id()
         << ")";
}

// ---------------------------------------------------------------- heads

BertHeadTransformImpl::BertHeadTransformImpl(BertOptions options_) : options(std::move(options_)) {
  reset();
}

void BertHeadTransformImpl::reset() {
  dense = register_module("dense", LoRALinear(options.hidden_size(), options.hidden_size()));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
}

torch::Tensor BertHeadTransformImpl::forward(const torch::Tensor& hidden) {
  torch::Tensor x = bert_activation(dense(hidden), options.hidden_act());
  // Under bf16/fp16 autocast `dense` gives bf16/fp16. CUDA autocast runs layer_norm in fp32;
  // LibTorch 1.13's CPU autocast leaves it alone and its kernel rejects a bf16 input with fp32
  // weights: cast as CUDA autocast would (a no-op in fp32).
  return layer_norm(x.to(layer_norm->weight.scalar_type()));
}

BertLMHeadImpl::BertLMHeadImpl(BertOptions options_) : options(std::move(options_)) { reset(); }

void BertLMHeadImpl::reset() {
  // HuggingFace registers `bias` before `transform`; state-dict order follows suit.
  bias = register_parameter("bias", torch::zeros({options.vocab_size()}));
  transform = register_module("transform", BertHeadTransform(options));
}

torch::Tensor BertLMHeadImpl::forward(const torch::Tensor& hidden,
                                      const torch::Tensor& decoder_weight) {
  return torch::linear(transform(hidden), decoder_weight, bias);
}

BertPreTrainingHeadsImpl::BertPreTrainingHeadsImpl(BertOptions options_)
    : options(std::move(options_)) {
  reset();
}

void BertPreTrainingHeadsImpl::reset() {
  predictions = register_module("predictions", BertLMHead(options));
  seq_relationship = register_module("seq_relationship", LoRALinear(options.hidden_size(), 2));
}

BertForPreTrainingImpl::BertForPreTrainingImpl(BertOptions options_)
    : options(std::move(options_)) {
  reset();
}

void BertForPreTrainingImpl::reset() {
  TORCH_CHECK(options.add_pooling_layer(), "BertForPreTraining: NSP needs the pooler");
  bert = register_module("bert", BertModel(options));
  cls = register_module("cls", BertPreTrainingHeads(options));
  reset_parameters();
}

void BertForPreTrainingImpl::reset_parameters(double initializer_range) {
  bert->reset_parameters(initializer_range);
  init_bert_weights(*cls, initializer_range, options.pad_id(), {});
  torch::NoGradGuard no_grad;
  cls->predictions->bias.zero_();
}

torch::Tensor BertForPreTrainingImpl::mlm_logits(const torch::Tensor& hidden) {
  return cls->predictions->forward(hidden, bert->embeddings->word_embeddings->weight);
}

BertPreTrainingOutput BertForPreTrainingImpl::forward(const torch::Tensor& input_ids,
                                                      const torch::Tensor& attention_mask,
                                                      const torch::Tensor& token_type_ids,
                                                      bool output_hidden_states,
                                                      bool output_attentions) {
  BertPreTrainingOutput out;
  out.bert = bert->forward(input_ids, attention_mask, token_type_ids, output_hidden_states,
                           output_attentions);
  out.prediction_logits = mlm_logits(out.bert.last_hidden_state);               // (B, T, V)
  out.seq_relationship_logits = cls->seq_relationship(out.bert.pooler_output);  // (B, 2)
  return out;
}

void BertForPreTrainingImpl::pretty_print(std::ostream& stream) const {
  stream << "BertForPreTraining(";
  bert->pretty_print(stream);
  stream << ")";
}

BertClassifierImpl::BertClassifierImpl(BertOptions options_, int64_t num_labels_, bool per_token_,
                                       double classifier_dropout_)
    : options(std::move(options_)),
      num_labels(num_labels_),
      per_token(per_token_),
      classifier_dropout(classifier_dropout_) {
  reset();
}

void BertClassifierImpl::reset() {
  TORCH_CHECK(num_labels > 0, "BertClassifier: num_labels must be positive, got ", num_labels);
  TORCH_CHECK(per_token || options.add_pooling_layer(),
              "BertClassifier: sequence classification needs the pooler");
  bert = register_module("bert", BertModel(options));
  dropout = register_module(
      "dropout",
      Dropout(classifier_dropout >= 0 ? classifier_dropout : options.dropout()));
  classifier = register_module("classifier", LoRALinear(options.hidden_size(), num_labels));
  reset_parameters();
}

void BertClassifierImpl::reset_parameters(double initializer_range) {
  bert->reset_parameters(initializer_range);
  init_bert_weights(*classifier, initializer_range, options.pad_id(), {});
}

torch::Tensor BertClassifierImpl::forward(const torch::Tensor& input_ids,
                                          const torch::Tensor& attention_mask,
                                          const torch::Tensor& token_type_ids, BertModelOutput* out,
                                          bool output_hidden_states, bool output_attentions) {
  BertModelOutput o = bert->forward(input_ids, attention_mask, token_type_ids, output_hidden_states,
                                    output_attentions);
  torch::Tensor features = per_token ? o.last_hidden_state : o.pooler_output;
  if (features_hook) features = features_hook(features);
  torch::Tensor logits = classifier(dropout(features));  // (B, labels) or (B, T, labels)
  if (out) *out = std::move(o);
  return logits;
}

void BertClassifierImpl::pretty_print(std::ostream& stream) const {
  stream << "BertClassifier(num_labels=" << num_labels << ", per_token=" << std::boolalpha
         << per_token << ", ";
  bert->pretty_print(stream);
  stream << ")";
}

}  // namespace nlpkit
