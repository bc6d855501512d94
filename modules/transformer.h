// Transformer encoder-decoder (Vaswani et al. 2017, "Attention Is All You Need").
//
//   src (B, S) -> embedding * sqrt(E) + positions -> dropout -> N x encoder layer -> norm = memory
//   tgt (B, T) -> embedding * sqrt(E) + positions -> dropout -> N x decoder layer -> norm -> logits
//
// Numerics of the layers match torch::nn::TransformerEncoderLayer / TransformerDecoderLayer and
// the stacks torch::nn::Transformer's encoder and decoder (post-LN, with the final LayerNorm
// torch.nn.Transformer adds to both stacks), as tests check with copied weights. norm_first
// gives the pre-LN variant (Xiong et al. 2020), which trains without warm-up more easily.
// Positions: the sinusoids of Vaswani et al. (sin on even, cos on odd dimensions) or learned
// (BERT-style). tie_embeddings: "none"; "decoder" = the output projection is the target
// embedding (Press & Wolf 2017); "all" = source, target and output share one matrix (needs one
// vocabulary).
//
// Incremental decoding keeps each decoder layer's projected self-attention keys/values (and
// the cross-attention's, computed once); a step then costs O(t) instead of O(t^2). Tests check
// it equals recomputing the whole prefix.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "modules/attention.h"
#include "modules/search.h"

namespace nlpkit {

/// (max_length, hidden_size): PE(p, 2i) = sin(p / 10000^(2i/E)), PE(p, 2i+1) = cos(same).
torch::Tensor sinusoidal_positions(int64_t max_length, int64_t hidden_size);

/// Options shared by `TransformerEncoderLayer` and `TransformerDecoderLayer`.
struct TransformerLayerOptions {
  TransformerLayerOptions(int64_t hidden_size, int64_t num_heads)
      : hidden_size_(hidden_size), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_heads);
  /// Feed-forward inner width.
  TORCH_ARG(int64_t, intermediate_size) = 2048;
  TORCH_ARG(double, dropout) = 0.1;
  /// "relu" or "gelu".
  TORCH_ARG(std::string, activation) = "relu";
  /// Pre-LN (LayerNorm before each sublayer) instead of the paper's post-LN.
  TORCH_ARG(bool, norm_first) = false;
  TORCH_ARG(double, layer_norm_eps) = 1e-5;
};

/// Self-attention and feed-forward sublayers. Submodules as torch::nn::TransformerEncoderLayer:
/// self_attn, linear1, linear2, norm1, norm2.
class TransformerEncoderLayerImpl : public torch::nn::Cloneable<TransformerEncoderLayerImpl> {
 public:
  explicit TransformerEncoderLayerImpl(TransformerLayerOptions options_);
  void reset() override;
  void reset_parameters();
  /// x (B, S, E); mask (B, S) bool, true on real tokens, or undefined. Returns (B, S, E).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  /// Prints `TransformerEncoderLayer(hidden_size=..., num_heads=..., intermediate_size=...,
  /// dropout=..., activation=relu, norm_first=false)`.
  void pretty_print(std::ostream& stream) const override;

  TransformerLayerOptions options;
  MultiHeadAttention self_attn{nullptr};
  torch::nn::Linear linear1{nullptr};
  torch::nn::Linear linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr};
  torch::nn::LayerNorm norm2{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
};

TORCH_MODULE(TransformerEncoderLayer);

/// What one decoder layer keeps between incremental steps.
struct DecoderLayerCache {
  /// Self-attention keys/values of every position decoded so far, (B, H, t, Hd).
  KeyValue self;
  /// Cross-attention keys/values of the memory, (B, H, S, Hd), computed at the first step.
  KeyValue cross;
};

/// Output of `TransformerDecoderLayer` and `TransformerDecoder`.
struct TransformerDecoderOutput {
  /// (B, T, E)
  torch::Tensor hidden;
  /// (B, T, S) cross-attention weights averaged over the heads (of the last layer for the
  /// stack); undefined with the fused attention kernel.
  torch::Tensor cross_attention;
};

/// Causal self-attention, cross-attention over the encoder memory, feed-forward. Submodules as
/// torch::nn::TransformerDecoderLayer: self_attn, multihead_attn, linear1, linear2, norm1..3.
class TransformerDecoderLayerImpl : public torch::nn::Cloneable<TransformerDecoderLayerImpl> {
 public:
  explicit TransformerDecoderLayerImpl(TransformerLayerOptions options_);
  void reset() override;
  void reset_parameters();
  /// x (B, T, E) target positions; memory (B, S, E); memory_mask (B, S) bool (true = real) or
  /// undefined. Attention among the targets is causal. With `cache`, x holds only the new
  /// positions, which follow the cached ones; the cache is extended.
  TransformerDecoderOutput forward(const torch::Tensor& x, const torch::Tensor& memory,
                                   const torch::Tensor& memory_mask = {},
                                   DecoderLayerCache* cache = nullptr);
  void pretty_print(std::ostream& stream) const override;

  TransformerLayerOptions options;
  MultiHeadAttention self_attn{nullptr};
  MultiHeadAttention multihead_attn{nullptr};
  torch::nn::Linear linear1{nullptr};
  torch::nn::Linear linear2{nullptr};
  torch::nn::LayerNorm norm1{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  torch::nn::LayerNorm norm3{nullptr};
};

TORCH_MODULE(TransformerDecoderLayer);

/// N encoder layers and a final LayerNorm (`layers`, `norm`), as torch.nn.TransformerEncoder
/// inside torch.nn.Transformer.
class TransformerEncoderImpl : public torch::nn::Cloneable<TransformerEncoderImpl> {
 public:
  TransformerEncoderImpl(TransformerLayerOptions layer, int64_t num_layers);
  void reset() override;
  /// x (B, S, E), mask (B, S) bool or undefined -> (B, S, E).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});
  void pretty_print(std::ostream& stream) const override;

  TransformerLayerOptions layer_options;
  int64_t num_layers;
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
};

TORCH_MODULE(TransformerEncoder);

/// N decoder layers and a final LayerNorm (`layers`, `norm`).
class TransformerDecoderImpl : public torch::nn::Cloneable<TransformerDecoderImpl> {
 public:
  TransformerDecoderImpl(TransformerLayerOptions layer, int64_t num_layers);
  void reset() override;
  /// As TransformerDecoderLayer::forward; `cache` holds one entry per layer (resized here).
  TransformerDecoderOutput forward(const torch::Tensor& x, const torch::Tensor& memory,
                                   const torch::Tensor& memory_mask = {},
                                   std::vector<DecoderLayerCache>* cache = nullptr);
  void pretty_print(std::ostream& stream) const override;

  TransformerLayerOptions layer_options;
  int64_t num_layers;
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};

TORCH_MODULE(TransformerDecoder);

/// Options for `Transformer`.
struct TransformerOptions {
  TransformerOptions(int64_t src_vocab_size, int64_t tgt_vocab_size)
      : src_vocab_size_(src_vocab_size), tgt_vocab_size_(tgt_vocab_size) {}
  TORCH_ARG(int64_t, src_vocab_size);
  TORCH_ARG(int64_t, tgt_vocab_size);
  TORCH_ARG(int64_t, hidden_size) = 256;
  TORCH_ARG(int64_t, num_heads) = 4;
  TORCH_ARG(int64_t, num_encoder_layers) = 3;
  TORCH_ARG(int64_t, num_decoder_layers) = 3;
  TORCH_ARG(int64_t, intermediate_size) = 1024;
  TORCH_ARG(double, dropout) = 0.1;
  /// "relu" or "gelu".
  TORCH_ARG(std::string, activation) = "relu";
  TORCH_ARG(bool, norm_first) = false;
  /// "sinusoidal" or "learned".
  TORCH_ARG(std::string, positions) = "sinusoidal";
  /// Longest source or target sequence (positions table).
  TORCH_ARG(int64_t, max_length) = 256;
  /// "none", "decoder" (output projection = target embedding) or "all" (one matrix for source,
  /// target and output; src_vocab_size must equal tgt_vocab_size).
  TORCH_ARG(std::string, tie_embeddings) = "none";
  TORCH_ARG(int64_t, pad_id) = 0;
  TORCH_ARG(double, layer_norm_eps) = 1e-5;
};

/// Output of `Transformer::forward`.
struct TransformerOutput {
  /// (B, T, tgt_vocab_size)
  torch::Tensor logits;
  /// (B, T, S) last decoder layer's cross-attention averaged over heads.
  torch::Tensor attention;
};

/// Encoder-decoder Transformer for sequence-to-sequence tasks. Parameters: src_embedding,
/// tgt_embedding (absent with tie "all"), position_embedding (learned positions only; the
/// sinusoids are a buffer `position_table`), encoder.*, decoder.*, output_proj (absent when
/// tied).
///
/// Example:
/// ```
/// nlpkit::Transformer model(nlpkit::TransformerOptions(30, 40).hidden_size(64).num_heads(4));
/// auto out = model(src, src_mask, tgt_in);  // out.logits (B, T, 40)
/// auto decoder = model->step_decoder(src, src_mask);
/// auto best = nlpkit::beam_search(*decoder, src.size(0), nlpkit::SearchOptions(1, 2));
/// ```
class TransformerImpl : public torch::nn::Cloneable<TransformerImpl> {
 public:
  explicit TransformerImpl(TransformerOptions options_);
  void reset() override;
  void reset_parameters();
  /// src (B, S) int64, src_mask (B, S) bool (true = real; undefined = all), tgt_in (B, T) int64
  /// (BOS then the target shifted right).
  TransformerOutput forward(const torch::Tensor& src, const torch::Tensor& src_mask,
                            const torch::Tensor& tgt_in);
  /// (B, S) -> memory (B, S, E).
  torch::Tensor encode(const torch::Tensor& src, const torch::Tensor& src_mask);
  /// tgt (B, T) tokens at positions offset.. -> logits and attention; `cache` as in
  /// TransformerDecoder.
  TransformerOutput decode(const torch::Tensor& tgt, const torch::Tensor& memory,
                           const torch::Tensor& src_mask, int64_t offset = 0,
                           std::vector<DecoderLayerCache>* cache = nullptr);
  /// A decoder for greedy_search / beam_search over `src`. incremental = false recomputes the
  /// whole prefix at every step (the reference the cache is checked against).
  std::unique_ptr<StepDecoder> step_decoder(const torch::Tensor& src, const torch::Tensor& src_mask,
                                            bool incremental = true);
  void pretty_print(std::ostream& stream) const override;

  TransformerOptions options;
  torch::nn::Embedding src_embedding{nullptr};
  torch::nn::Embedding tgt_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
  TransformerEncoder encoder{nullptr};
  TransformerDecoder decoder{nullptr};
  torch::nn::Linear output_proj{nullptr};

 private:
  /// ids (B, T) -> embedding * sqrt(E) + positions offset.., dropout.
  torch::Tensor embed(torch::nn::Embedding table, const torch::Tensor& ids, int64_t offset);
  torch::Tensor position_table_;
};

TORCH_MODULE(Transformer);

}  // namespace nlpkit
