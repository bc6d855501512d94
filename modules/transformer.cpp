#include "modules/transformer.h"

#include <cmath>
#include <utility>

namespace nlpkit {

torch::Tensor sinusoidal_positions(int64_t max_length, int64_t hidden_size) {
  const torch::Tensor position = torch::arange(max_length, torch::kFloat).unsqueeze(1);  // (L, 1)
  const torch::Tensor div = torch::exp(torch::arange(0, hidden_size, 2, torch::kFloat) *
                                       (-std::log(10000.0) / static_cast<double>(hidden_size)));
  torch::Tensor table = torch::zeros({max_length, hidden_size});
  table.slice(1, 0, hidden_size, 2).copy_(torch::sin(position * div));
  table.slice(1, 1, hidden_size, 2).copy_(torch::cos(position * div).slice(1, 0, hidden_size / 2));
  return table;  // (L, E)
}

namespace {

void check_layer_options(const TransformerLayerOptions& o, const char* name) {
  TORCH_CHECK(o.activation() == "relu" || o.activation() == "gelu", name,
              ": activation must be relu or gelu, got '", o.activation(), "'");
  TORCH_CHECK(o.intermediate_size() > 0, name, ": intermediate_size must be positive, got ",
              o.intermediate_size());
  TORCH_CHECK(o.dropout() >= 0 && o.dropout() < 1, name, ": dropout must be in [0, 1), got ",
              o.dropout());
}

torch::Tensor activate(const torch::Tensor& x, const std::string& activation) {
  return activation == "gelu" ? torch::gelu(x) : torch::relu(x);
}

torch::nn::LayerNorm layer_norm(const TransformerLayerOptions& o) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps()));
}

void print_layer(std::ostream& stream, const char* name, const TransformerLayerOptions& o) {
  stream << name << "(hidden_size=" << o.hidden_size() << ", num_heads=" << o.num_heads()
         << ", intermediate_size=" << o.intermediate_size() << ", dropout=" << o.dropout()
         << ", activation=" << o.activation()
         << ", norm_first=" << (o.norm_first() ? "true" : "false") << ")";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Encoder layer

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(TransformerLayerOptions options_)
    : options(std::move(options_)) {
  reset();
}

void TransformerEncoderLayerImpl::reset() {
  check_layer_options(options, "TransformerEncoderLayer");
  self_attn = register_module(
      "self_attn",
      MultiHeadAttention(MultiHeadAttentionOptions(options.hidden_size(), options.num_heads())
                             .dropout(options.dropout())));
  linear1 = register_module("linear1",
                            torch::nn::Linear(options.hidden_size(), options.intermediate_size()));
  linear2 = register_module("linear2",
                            torch::nn::Linear(options.intermediate_size(), options.hidden_size()));
  norm1 = register_module("norm1", layer_norm(options));
  norm2 = register_module("norm2", layer_norm(options));
}

void TransformerEncoderLayerImpl::reset_parameters() {
  self_attn->reset_parameters();
  linear1->reset_parameters();
  linear2->reset_parameters();
  norm1->reset_parameters();
  norm2->reset_parameters();
}

torch::Tensor TransformerEncoderLayerImpl::forward(const torch::Tensor& x,
                                                   const torch::Tensor& mask) {
  const double p = is_training() ? options.dropout() : 0.0;
  const auto self_block = [&](const torch::Tensor& h) {
    return torch::dropout(self_attn(h, h, h, mask).output, p, is_training());
  };
  const auto ff_block = [&](const torch::Tensor& h) {
    const torch::Tensor inner =
        torch::dropout(activate(linear1(h), options.activation()), p, is_training());
    return torch::dropout(linear2(inner), p, is_training());
  };
  if (options.norm_first()) {
    torch::Tensor h = x + self_block(norm1(x));
    return h + ff_block(norm2(h));
  }
  torch::Tensor h = norm1(x + self_block(x));
  return norm2(h + ff_block(h));
}

void TransformerEncoderLayerImpl::pretty_print(std::ostream& stream) const {
  print_layer(stream, "TransformerEncoderLayer", options);
}

// ---------------------------------------------------------------------------------------------
// Decoder layer

TransformerDecoderLayerImpl::TransformerDecoderLayerImpl(TransformerLayerOptions options_)
    : options(std::move(options_)) {
  reset();
}

void TransformerDecoderLayerImpl::reset() {
  check_layer_options(options, "TransformerDecoderLayer");
  const auto attention = [&] {
    return MultiHeadAttention(MultiHeadAttentionOptions(options.hidden_size(), options.num_heads())
                                  .dropout(options.dropout()));
  };
  self_attn = register_module("self_attn", attention());
  multihead_attn = register_module("multihead_attn", attention());
  linear1 = register_module("linear1",
                            torch::nn::Linear(options.hidden_size(), options.intermediate_size()));
  linear2 = register_module("linear2",
                            torch::nn::Linear(options.intermediate_size(), options.hidden_size()));
  norm1 = register_module("norm1", layer_norm(options));
  norm2 = register_module("norm2", layer_norm(options));
  norm3 = register_module("norm3", layer_norm(options));
}

void TransformerDecoderLayerImpl::reset_parameters() {
  self_attn->reset_parameters();
  multihead_attn->reset_parameters();
  linear1->reset_parameters();
  linear2->reset_parameters();
  norm1->reset_parameters();
  norm2->reset_parameters();
  norm3->reset_parameters();
}

TransformerDecoderOutput TransformerDecoderLayerImpl::forward(const torch::Tensor& x,
                                                              const torch::Tensor& memory,
                                                              const torch::Tensor& memory_mask,
                                                              DecoderLayerCache* cache) {
  const double p = is_training() ? options.dropout() : 0.0;
  const int64_t new_positions = x.size(1);
  torch::Tensor cross_weights;
  const auto self_block = [&](const torch::Tensor& h) {
    KeyValue kv = self_attn->project_key_value(h, h);  // (B, H, t_new, Hd)
    int64_t past = 0;
    if (cache != nullptr) {
      if (cache->self.key.defined()) {
        past = cache->self.key.size(2);
        kv.key = torch::cat({cache->self.key, kv.key}, 2);
        kv.value = torch::cat({cache->self.value, kv.value}, 2);
      }
      cache->self = kv;
    }
    // New position i (absolute past + i) may attend to positions <= past + i.
    torch::Tensor allowed;
    if (new_positions > 1) {
      allowed = torch::ones({new_positions, past + new_positions},
                            torch::TensorOptions().dtype(torch::kBool).device(h.device()))
                    .tril(past);
    }
    return torch::dropout(self_attn->attend(h, kv, torch::Tensor(), allowed).output, p,
                          is_training());
  };
  const auto cross_block = [&](const torch::Tensor& h) {
    KeyValue kv;
    if (cache != nullptr && cache->cross.key.defined()) {
      kv = cache->cross;
    } else {
      kv = multihead_attn->project_key_value(memory, memory);
      if (cache != nullptr) cache->cross = kv;
    }
    MultiHeadAttentionOutput out = multihead_attn->attend(h, kv, memory_mask);
    if (out.weights.defined()) cross_weights = out.weights.mean(1);  // (B, T, S)
    return torch::dropout(out.output, p, is_training());
  };
  const auto ff_block = [&](const torch::Tensor& h) {
    const torch::Tensor inner =
        torch::dropout(activate(linear1(h), options.activation()), p, is_training());
    return torch::dropout(linear2(inner), p, is_training());
  };
  torch::Tensor h;
  if (options.norm_first()) {
    h = x + self_block(norm1(x));
    h = h + cross_block(norm2(h));
    h = h + ff_block(norm3(h));
  } else {
    h = norm1(x + self_block(x));
    h = norm2(h + cross_block(h));
    h = norm3(h + ff_block(h));
  }
  return {h, cross_weights};
}

void TransformerDecoderLayerImpl::pretty_print(std::ostream& stream) const {
  print_layer(stream, "TransformerDecoderLayer", options);
}

// ---------------------------------------------------------------------------------------------
// Stacks

TransformerEncoderImpl::TransformerEncoderImpl(TransformerLayerOptions layer, int64_t num_layers_)
    : layer_options(std::move(layer)), num_layers(num_layers_) {
  reset();
}

void TransformerEncoderImpl::reset() {
  TORCH_CHECK(num_layers >= 1, "TransformerEncoder: num_layers must be >= 1, got ", num_layers);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i)
    layers->push_back(TransformerEncoderLayer(layer_options));
  norm = register_module("norm", layer_norm(layer_options));
}

torch::Tensor TransformerEncoderImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  torch::Tensor h = x;
  for (const auto& layer : *layers) h = layer->as<TransformerEncoderLayerImpl>()->forward(h, mask);
  return norm(h);
}

void TransformerEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "TransformerEncoder(num_layers=" << num_layers << ")";
}

TransformerDecoderImpl::TransformerDecoderImpl(TransformerLayerOptions layer, int64_t num_layers_)
    : layer_options(std::move(layer)), num_layers(num_layers_) {
  reset();
}

void TransformerDecoderImpl::reset() {
  TORCH_CHECK(num_layers >= 1, "TransformerDecoder: num_layers must be >= 1, got ", num_layers);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i)
    layers->push_back(TransformerDecoderLayer(layer_options));
  norm = register_module("norm", layer_norm(layer_options));
}

TransformerDecoderOutput TransformerDecoderImpl::forward(const torch::Tensor& x,
                                                         const torch::Tensor& memory,
                                                         const torch::Tensor& memory_mask,
                                                         std::vector<DecoderLayerCache>* cache) {
  if (cache != nullptr) cache->resize(layers->size());
  TransformerDecoderOutput out{x, torch::Tensor()};
  for (size_t i = 0; i < layers->size(); ++i) {
    out = layers[i]->as<TransformerDecoderLayerImpl>()->forward(
        out.hidden, memory, memory_mask, cache != nullptr ? &(*cache)[i] : nullptr);
  }
  out.hidden = norm(out.hidden);
  return out;
}

void TransformerDecoderImpl::pretty_print(std::ostream& stream) const {
  stream << "TransformerDecoder(num_layers=" << num_layers << ")";
}

// ---------------------------------------------------------------------------------------------
// Transformer

TransformerImpl::TransformerImpl(TransformerOptions options_) : options(std::move(options_)) {
  reset();
}

void TransformerImpl::reset() {
  const TransformerOptions& o = options;
  TORCH_CHECK(o.src_vocab_size() > 0 && o.tgt_vocab_size() > 0,
              "Transformer: vocabulary sizes must be positive, got ", o.src_vocab_size(), " and ",
              o.tgt_vocab_size());
  TORCH_CHECK(o.positions() == "sinusoidal" || o.positions() == "learned",
              "Transformer: positions must be sinusoidal or learned, got '", o.positions(), "'");
  TORCH_CHECK(o.tie_embeddings() == "none" || o.tie_embeddings() == "decoder" ||
                  o.tie_embeddings() == "all",
              "Transformer: tie_embeddings must be none, decoder or all, got '", o.tie_embeddings(),
              "'");
  TORCH_CHECK(o.tie_embeddings() != "all" || o.src_vocab_size() == o.tgt_vocab_size(),
              "Transformer: tie_embeddings 'all' needs one vocabulary, got src_vocab_size ",
              o.src_vocab_size(), " and tgt_vocab_size ", o.tgt_vocab_size());
  TORCH_CHECK(o.max_length() >= 1, "Transformer: max_length must be >= 1, got ", o.max_length());
  TORCH_CHECK(o.hidden_size() % 2 == 0, "Transformer: hidden_size must be even, got ",
              o.hidden_size());
  const auto embedding = [&](int64_t vocab) {
    return torch::nn::Embedding(
        torch::nn::EmbeddingOptions(vocab, o.hidden_size()).padding_idx(o.pad_id()));
  };
  src_embedding = register_module("src_embedding", embedding(o.src_vocab_size()));
  if (o.tie_embeddings() != "all") {
    tgt_embedding = register_module("tgt_embedding", embedding(o.tgt_vocab_size()));
  } else {
    tgt_embedding = src_embedding;
  }
  if (o.positions() == "learned") {
    position_embedding = register_module("position_embedding",
                                         torch::nn::Embedding(o.max_length(), o.hidden_size()));
  } else {
    position_table_ =
        register_buffer("position_table", sinusoidal_positions(o.max_length(), o.hidden_size()));
  }
  const TransformerLayerOptions layer = TransformerLayerOptions(o.hidden_size(), o.num_heads())
                                            .intermediate_size(o.intermediate_size())
                                            .dropout(o.dropout())
                                            .activation(o.activation())
                                            .norm_first(o.norm_first())
                                            .layer_norm_eps(o.layer_norm_eps());
  encoder = register_module("encoder", TransformerEncoder(layer, o.num_encoder_layers()));
  decoder = register_module("decoder", TransformerDecoder(layer, o.num_decoder_layers()));
  if (o.tie_embeddings() == "none") {
    output_proj =
        register_module("output_proj", torch::nn::Linear(o.hidden_size(), o.tgt_vocab_size()));
  }
  reset_parameters();
}

void TransformerImpl::reset_parameters() {
  // Embeddings N(0, E^-1/2), so that embedding * sqrt(E) has unit variance (Vaswani et al.;
  // fairseq's transformer init), which also suits a tied output projection.
  torch::NoGradGuard no_grad;
  const double std = 1.0 / std::sqrt(static_cast<double>(options.hidden_size()));
  src_embedding->weight.normal_(0, std);
  if (options.tie_embeddings() != "all") tgt_embedding->weight.normal_(0, std);
  for (auto* table : {&src_embedding, &tgt_embedding}) {
    (*table)->weight[options.pad_id()].zero_();
  }
  if (position_embedding) position_embedding->weight.normal_(0, 0.02);
}

torch::Tensor TransformerImpl::embed(torch::nn::Embedding table, const torch::Tensor& ids,
                                     int64_t offset) {
  const int64_t length = ids.size(1);
  TORCH_CHECK(offset + length <= options.max_length(), "Transformer: sequence of ", offset + length,
              " positions is longer than max_length ", options.max_length());
  torch::Tensor positions;
  if (position_embedding) {
    positions = position_embedding(torch::arange(offset, offset + length, ids.options()));
  } else {
    positions = position_table_.slice(0, offset, offset + length);  // (T, E)
  }
  const torch::Tensor x =
      table(ids) * std::sqrt(static_cast<double>(options.hidden_size())) + positions;  // (B, T, E)
  return torch::dropout(x, options.dropout(), is_training());
}

torch::Tensor TransformerImpl::encode(const torch::Tensor& src, const torch::Tensor& src_mask) {
  TORCH_CHECK(src.dim() == 2, "Transformer: src must be (B, S), got ", src.sizes());
  return encoder(embed(src_embedding, src, 0), src_mask);
}

TransformerOutput TransformerImpl::decode(const torch::Tensor& tgt, const torch::Tensor& memory,
                                          const torch::Tensor& src_mask, int64_t offset,
                                          std::vector<DecoderLayerCache>* cache) {
  TORCH_CHECK(tgt.dim() == 2, "Transformer: tgt must be (B, T), got ", tgt.sizes());
  TransformerDecoderOutput out =
      decoder->forward(embed(tgt_embedding, tgt, offset), memory, src_mask, cache);
  const torch::Tensor logits =
      output_proj ? output_proj(out.hidden) : torch::matmul(out.hidden, tgt_embedding->weight.t());
  return {logits, out.cross_attention};
}

TransformerOutput TransformerImpl::forward(const torch::Tensor& src, const torch::Tensor& src_mask,
                                           const torch::Tensor& tgt_in) {
  return decode(tgt_in, encode(src, src_mask), src_mask);
}

namespace {

/// Transformer decoding one token at a time, with the key/value cache or by recomputing the
/// prefix.
class TransformerStepDecoder : public StepDecoder {
 public:
  TransformerStepDecoder(TransformerImpl& model, torch::Tensor memory, torch::Tensor mask,
                         bool incremental)
      : model_(model),
        memory_(std::move(memory)),
        mask_(std::move(mask)),
        incremental_(incremental) {}

  StepScores step(const torch::Tensor& tokens) override {
    const torch::Tensor t = tokens.to(memory_.device()).view({-1, 1});
    TransformerOutput out;
    if (incremental_) {
      out = model_.decode(t, memory_, mask_, position_, &cache_);
    } else {
      prefix_ = prefix_.defined() ? torch::cat({prefix_, t}, 1) : t;
      out = model_.decode(prefix_, memory_, mask_);
    }
    ++position_;
    const torch::Tensor last = out.logits.select(1, out.logits.size(1) - 1);  // (N, V)
    torch::Tensor attention;
    if (out.attention.defined()) attention = out.attention.select(1, out.attention.size(1) - 1);
    return {torch::log_softmax(last.to(torch::kFloat), -1), attention};
  }

  void select(const torch::Tensor& index) override {
    const torch::Tensor i = index.to(memory_.device());
    memory_ = memory_.index_select(0, i);
    if (mask_.defined()) mask_ = mask_.index_select(0, i);
    if (prefix_.defined()) prefix_ = prefix_.index_select(0, i);
    for (auto& layer : cache_) {
      for (KeyValue* kv : {&layer.self, &layer.cross}) {
        if (!kv->key.defined()) continue;
        kv->key = kv->key.index_select(0, i);
        kv->value = kv->value.index_select(0, i);
      }
    }
  }

 private:
  TransformerImpl& model_;
  torch::Tensor memory_;
  torch::Tensor mask_;
  bool incremental_;
  int64_t position_ = 0;
  torch::Tensor prefix_;
  std::vector<DecoderLayerCache> cache_;
};

}  // namespace

std::unique_ptr<StepDecoder> TransformerImpl::step_decoder(const torch::Tensor& src,
                                                           const torch::Tensor& src_mask,
                                                           bool incremental) {
  torch::NoGradGuard no_grad;
  return std::make_unique<TransformerStepDecoder>(*this, encode(src, src_mask), src_mask,
                                                  incremental);
}

void TransformerImpl::pretty_print(std::ostream& stream) const {
  stream << "Transformer(src_vocab_size=" << options.src_vocab_size()
         << ", tgt_vocab_size=" << options.tgt_vocab_size()
         << ", hidden_size=" << options.hidden_size() << ", num_heads=" << options.num_heads()
         << ", num_encoder_layers=" << options.num_encoder_layers()
         << ", num_decoder_layers=" << options.num_decoder_layers()
         << ", intermediate_size=" << options.intermediate_size()
         << ", dropout=" << options.dropout() << ", activation=" << options.activation()
         << ", norm_first=" << (options.norm_first() ? "true" : "false")
         << ", positions=" << options.positions() << ", max_length=" << options.max_length()
         << ", tie_embeddings=" << options.tie_embeddings() << ")";
}

}  // namespace nlpkit
