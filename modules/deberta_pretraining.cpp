#include "modules/deberta_pretraining.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

namespace nlpkit {
namespace {

torch::nn::LayerNorm make_layer_norm(const DebertaOptions& o) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps()));
}

/// microsoft/DeBERTa's models always hold embeddings.position_embeddings (EMD reads it).
DebertaOptions with_positions(DebertaOptions o) { return o.absolute_position_embeddings(true); }

}  // namespace

// ---------------------------------------------------------------- MLM head

DebertaLMPredictionHeadImpl::DebertaLMPredictionHeadImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DebertaLMPredictionHeadImpl::reset() {
  // microsoft/DeBERTa registers `bias` first; the state-dict order follows.
  bias = register_parameter("bias", torch::zeros({options.vocab_size()}));
  dense = register_module("dense", LoRALinear(options.hidden_size(), options.hidden_size()));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
}

torch::Tensor DebertaLMPredictionHeadImpl::forward(const torch::Tensor& hidden,
                                                   const torch::Tensor& embedding_weight) {
  const torch::Tensor x = layer_norm(bert_activation(dense(hidden), options.hidden_act()));
  return torch::linear(x, embedding_weight, bias);  // (..., V)
}

// ---------------------------------------------------------------- Enhanced Mask Decoder

EnhancedMaskDecoderImpl::EnhancedMaskDecoderImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void EnhancedMaskDecoderImpl::reset() {
  lm_head = register_module("lm_head", DebertaLMPredictionHead(options));
}

torch::Tensor EnhancedMaskDecoderImpl::forward(DebertaModelImpl& deberta,
                                               const DebertaModelOutput& encoded,
                                               const torch::Tensor& attention_mask) {
  const auto& states = encoded.hidden_states;  // embedding output, then every layer's output
  TORCH_CHECK(states.size() >= 3,
              "EnhancedMaskDecoder: needs the hidden states of at least 2 layers, got ",
              states.size() == 0 ? 0 : states.size() - 1);
  if (deberta.options.position_biased_input()) return states.back();
  const torch::Tensor h = states[states.size() - 2];  // the second-to-last layer's output
  const int64_t t = h.size(1);
  // Absolute positions enter here, after the transformer layers (raw, not normalised).
  auto& emb = *deberta.embeddings;
  TORCH_CHECK(emb.position_embeddings, "EnhancedMaskDecoder: the model has no position_embeddings");
  torch::Tensor q = emb.position_embeddings(emb.position_ids.slice(1, 0, t)) + h;  // (B, T, H)
  const torch::Tensor mask =
      attention_mask.defined() ? deberta_attention_mask(attention_mask) : torch::Tensor();
  const torch::Tensor rel_embeddings = deberta.encoder->rel_embedding();
  auto last = deberta.encoder->layer->ptr<DebertaLayerImpl>(deberta.encoder->layer->size() - 1);
  for (int pass = 0; pass < 2; ++pass) {  // n = 2, shared weights; keys and values stay h
    q = last->forward(h, mask, q, encoded.relative_pos, rel_embeddings);
  }
  return q;
}

// ---------------------------------------------------------------- MaskedLanguageModel

DebertaMaskedLMWithEMDImpl::DebertaMaskedLMWithEMDImpl(DebertaOptions options_)
    : options(with_positions(std::move(options_))) {
  reset();
}

void DebertaMaskedLMWithEMDImpl::reset() {
  TORCH_CHECK(options.num_layers() >= 2,
              "DebertaMaskedLMWithEMD: the Enhanced Mask Decoder "
              "needs num_layers >= 2, got ",
              options.num_layers());
  deberta = register_module("deberta", DebertaModel(options));
  lm_predictions = register_module("lm_predictions", EnhancedMaskDecoder(options));
  reset_parameters();
}

void DebertaMaskedLMWithEMDImpl::reset_parameters(double initializer_range) {
  deberta->reset_parameters(initializer_range);
  deberta_init_weights(*lm_predictions, initializer_range);
  torch::NoGradGuard no_grad;
  lm_predictions->lm_head->bias.zero_();
}

DebertaMaskedLMWithEMDOutput DebertaMaskedLMWithEMDImpl::forward(
    const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
    const torch::Tensor& labels, const torch::Tensor& token_type_ids) {
  DebertaMaskedLMWithEMDOutput out;
  out.deberta = deberta->forward(input_ids, attention_mask, token_type_ids,
                                 /*output_hidden_states=*/true);
  torch::Tensor states = lm_predictions->forward(*deberta, out.deberta, attention_mask);
  const torch::Tensor& embedding_weight = deberta->embeddings->word_embeddings->weight;
  if (!labels.defined()) {
    out.logits = lm_predictions->lm_head(states, embedding_weight);  // (B, T, V)
    return out;
  }
  TORCH_CHECK(labels.sizes() == input_ids.sizes(), "DebertaMaskedLMWithEMD: labels ",
              labels.sizes(), " must match input_ids ", input_ids.sizes());
  const torch::Tensor flat = labels.reshape({-1}).to(torch::kInt64);
  const torch::Tensor targets = flat.gt(0).nonzero().view({-1});            // row-major (N)
  states = states.reshape({-1, states.size(-1)}).index_select(0, targets);  // (N, H)
  out.labels = flat.index_select(0, targets);
  out.logits = lm_predictions->lm_head(states, embedding_weight);  // (N, V)
  out.loss = torch::nn::functional::cross_entropy(
      out.logits, out.labels,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  return out;
}

void DebertaMaskedLMWithEMDImpl::pretty_print(std::ostream& stream) const {
  stream << "DebertaMaskedLMWithEMD(";
  deberta->pretty_print(stream);
  stream << ")";
}

// ---------------------------------------------------------------- discriminator

DebertaRTDHeadImpl::DebertaRTDHeadImpl(DebertaOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaRTDHeadImpl::reset() {
  dense = register_module("dense", LoRALinear(options.hidden_size(), options.hidden_size()));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
  classifier = register_module("classifier", LoRALinear(options.hidden_size(), 1));
}

torch::Tensor DebertaRTDHeadImpl::forward(const torch::Tensor& hidden) {
  // The first token's state joins every position, then LayerNorm, dense, activation.
  const torch::Tensor x = layer_norm(hidden + hidden.slice(1, 0, 1));              // (B, T, H)
  return classifier(bert_activation(dense(x), options.hidden_act())).squeeze(-1);  // (B, T)
}

DebertaReplacedTokenDetectionImpl::DebertaReplacedTokenDetectionImpl(DebertaOptions options_)
    : options(with_positions(std::move(options_))) {
  reset();
}

void DebertaReplacedTokenDetectionImpl::reset() {
  deberta = register_module("deberta", DebertaModel(options));
  mask_predictions = register_module("mask_predictions", DebertaRTDHead(options));
  reset_parameters();
}

void DebertaReplacedTokenDetectionImpl::reset_parameters(double initializer_range) {
  deberta->reset_parameters(initializer_range);
  deberta_init_weights(*mask_predictions, initializer_range);
}

torch::Tensor DebertaReplacedTokenDetectionImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask,
                                                         const torch::Tensor& token_type_ids,
                                                         const torch::Tensor& inputs_embeds) {
  deberta->check_inputs(input_ids, attention_mask, token_type_ids);
  const torch::Tensor h = deberta->embeddings->forward(input_ids, token_type_ids, attention_mask,
                                                       inputs_embeds);            // (B, T, H)
  return mask_predictions(deberta->encode(h, attention_mask).last_hidden_state);  // (B, T)
}

// ---------------------------------------------------------------- RTD

EmbeddingSharing parse_embedding_sharing(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (n == "none" || n == "nes") return EmbeddingSharing::kNone;
  if (n == "es") return EmbeddingSharing::kES;
  if (n == "gdes") return EmbeddingSharing::kGDES;
  TORCH_CHECK(false, "DeBERTa RTD: embedding_sharing must be none, es or gdes, got '", name, "'");
}

DebertaRTDImpl::DebertaRTDImpl(DebertaRTDOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaRTDImpl::reset() {
  sharing = parse_embedding_sharing(options.embedding_sharing());
  TORCH_CHECK(options.rtd_lambda() >= 0, "DeBERTa RTD: rtd_lambda must be >= 0, got ",
              options.rtd_lambda());
  TORCH_CHECK(options.temperature() > 0, "DeBERTa RTD: temperature must be positive, got ",
              options.temperature());
  const DebertaOptions& g = options.generator();
  const DebertaOptions& d = options.discriminator();
  TORCH_CHECK(g.vocab_size() == d.vocab_size(), "DeBERTa RTD: generator vocab_size (",
              g.vocab_size(), ") must equal the discriminator's (", d.vocab_size(), ")");
  if (sharing != EmbeddingSharing::kNone) {
    TORCH_CHECK(g.hidden_size() == d.hidden_size() &&
                    g.max_position_embeddings() == d.max_position_embeddings(),
                "DeBERTa RTD: embedding sharing '", options.embedding_sharing(),
                "' needs equal hidden_size and max_position_embeddings, got generator ",
                g.hidden_size(), "/", g.max_position_embeddings(), ", discriminator ",
                d.hidden_size(), "/", d.max_position_embeddings());
  }
  TORCH_CHECK(sharing != EmbeddingSharing::kGDES || !d.position_biased_input(),
              "DeBERTa RTD: gdes with position_biased_input is not supported (only the word "
              "embeddings are disentangled)");
  generator = register_module("generator", DebertaMaskedLMWithEMD(g));
  discriminator = register_module("discriminator", DebertaReplacedTokenDetection(d));
  if (sharing == EmbeddingSharing::kES) {
    // One module under two names: the discriminator's lookups and gradients are the generator's.
    auto& ge = *generator->deberta->embeddings;
    auto& de = *discriminator->deberta->embeddings;
    de.word_embeddings = de.replace_module("word_embeddings", ge.word_embeddings);
    de.position_embeddings = de.replace_module("position_embeddings", ge.position_embeddings);
  }
  reset_parameters();
}

void DebertaRTDImpl::reset_parameters(double initializer_range) {
  generator->reset_parameters(initializer_range);
  if (sharing == EmbeddingSharing::kES) {
    // The shared embeddings keep the generator's initialisation.
    auto& de = *discriminator->deberta->embeddings;
    const torch::Tensor word = de.word_embeddings->weight.detach().clone();
    const torch::Tensor position = de.position_embeddings->weight.detach().clone();
    discriminator->reset_parameters(initializer_range);
    torch::NoGradGuard no_grad;
    de.word_embeddings->weight.copy_(word);
    de.position_embeddings->weight.copy_(position);
  } else {
    discriminator->reset_parameters(initializer_range);
  }
  if (sharing == EmbeddingSharing::kGDES) {
    torch::NoGradGuard no_grad;
    discriminator->deberta->embeddings->word_embeddings->weight.zero_();  // E_delta
  }
}

DebertaRTDOutput DebertaRTDImpl::forward(const torch::Tensor& input_ids,
                                         const torch::Tensor& attention_mask,
                                         const torch::Tensor& labels,
                                         const torch::Tensor& replaced_ids) {
  TORCH_CHECK(labels.defined() && labels.sizes() == input_ids.sizes(), "DebertaRTD: labels ",
              labels.defined() ? labels.sizes() : torch::IntArrayRef{}, " must match input_ids ",
              input_ids.sizes());
  const torch::Tensor ids = input_ids.to(torch::kInt64);
  const torch::Tensor mask =
      attention_mask.defined() ? attention_mask.to(torch::kInt64) : torch::ones_like(ids);
  const torch::Tensor target_labels = labels.to(torch::kInt64);
  DebertaRTDOutput out;
  DebertaMaskedLMWithEMDOutput gen = generator->forward(ids, mask, target_labels);
  out.gen_logits = gen.logits;
  out.gen_loss = gen.loss;

  if (replaced_ids.defined()) {
    TORCH_CHECK(replaced_ids.sizes() == input_ids.sizes(), "DebertaRTD: replaced_ids ",
                replaced_ids.sizes(), " must match input_ids ", input_ids.sizes());
    out.replaced_ids = replaced_ids.to(torch::kInt64);
  } else {
    // One sample per target from the generator; the original token is not excluded.
    torch::NoGradGuard no_grad;
    out.replaced_ids = ids.clone();
    const torch::Tensor targets = target_labels.reshape({-1}).gt(0).nonzero().view({-1});
    if (targets.numel() > 0) {
      const torch::Tensor probs = torch::softmax(gen.logits.detach() / options.temperature(), -1);
      out.replaced_ids.view({-1}).index_put_({targets}, torch::multinomial(probs, 1).view({-1}));
    }
  }

  torch::Tensor inputs_embeds;
  if (sharing == EmbeddingSharing::kGDES) {
    // E_D = stop_gradient(E_G) + E_delta: the RTD loss trains E_delta only.
    const torch::Tensor weight = generator->deberta->embeddings->word_embeddings->weight.detach() +
                                 discriminator->deberta->embeddings->word_embeddings->weight;
    inputs_embeds = torch::embedding(weight, out.replaced_ids);  // (B, T, H)
  }
  out.disc_logits = discriminator->forward(out.replaced_ids, mask, {}, inputs_embeds);  // (B, T)

  const torch::Tensor keep = mask.reshape({-1}).gt(0).nonzero().view({-1});  // (M)
  const torch::Tensor replaced =
      target_labels.gt(0).logical_and(target_labels.ne(out.replaced_ids));  // (B, T)
  out.disc_labels = replaced.reshape({-1}).index_select(0, keep).to(out.disc_logits.scalar_type());
  out.disc_loss = torch::nn::functional::binary_cross_entropy_with_logits(
      out.disc_logits.reshape({-1}).index_select(0, keep), out.disc_labels,
      torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  const torch::Tensor gen_term =
      out.gen_loss.numel() > 0 ? out.gen_loss.mean() : out.disc_logits.new_zeros({});
  out.loss = gen_term + options.rtd_lambda() * out.disc_loss.mean();
  return out;
}

std::vector<torch::Tensor> DebertaRTDImpl::unique_parameters() const {
  std::vector<torch::Tensor> out;
  std::unordered_set<const void*> seen;
  for (const auto& p : parameters()) {
    if (seen.insert(p.unsafeGetTensorImpl()).second) out.push_back(p);
  }
  return out;
}

void DebertaRTDImpl::pretty_print(std::ostream& stream) const {
  stream << "DebertaRTD(embedding_sharing=" << options.embedding_sharing()
         << ", rtd_lambda=" << options.rtd_lambda() << ", temperature=" << options.temperature()
         << ", generator=";
  generator->deberta->pretty_print(stream);
  stream << ", discriminator=";
  discriminator->deberta->pretty_print(stream);
  stream << ")";
}

}  // namespace nlpkit
