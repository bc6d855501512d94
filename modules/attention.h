// Attention: score functions, soft (global), local-p and hard attention for recurrent
// encoder-decoders, and the multi-head attention of the Transformer.
//
// References:
// - Bahdanau, Cho & Bengio 2015 (additive score v^T tanh(W q + U k)).
// - Luong, Pham & Manning 2015: dot q.k, general q^T W k, concat v^T tanh(W [q; k]); global
//   attention over every source position, and local-p attention: an aligned position
//   p_t = (S_len - 1) * sigmoid(v_p^T tanh(W_p q)) (Luong scale by S_len; here by S_len - 1 so
//   that p_t is always a real position), softmax of the scores over the window
//   [round(p_t) - D, round(p_t) + D], multiplied by a Gaussian exp(-(s - p_t)^2 / (2 (D/2)^2)).
//   As in the paper, the weights are not renormalised after the Gaussian.
// - Vaswani et al. 2017: scaled dot q.k / sqrt(d); multi-head attention. Numerics match
//   torch::nn::MultiheadAttention (in_proj_weight split into q_proj, k_proj, v_proj).
// - Graves 2013 / Chen et al. 2016 (cosine similarity of q and k as a score).
// - Xu et al. 2015 (hard attention), trained here with the straight-through Gumbel-softmax of
//   Jang, Gu & Poole 2017: the forward pass uses a one-hot sample, the backward pass the
//   gradient of softmax((scores + Gumbel noise) / tau). In eval mode the argmax, no noise.
//
// Masks: every `mask` here is bool with true on positions that may be attended (real tokens),
// the opposite of torch::nn::MultiheadAttention's key_padding_mask. A query whose keys are all
// masked gets zero weights and a zero context, never NaN.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace nlpkit {

/// How a query and a key are compared.
enum class AttentionScore { kDot, kScaledDot, kGeneral, kCosine, kConcat, kAdditive };

/// "dot", "scaled_dot", "general", "cosine", "concat", "additive" -> AttentionScore; any other
/// name throws std::invalid_argument listing these.
AttentionScore attention_score_from_name(const std::string& name);
/// The inverse of attention_score_from_name.
std::string attention_score_name(AttentionScore score);
/// The names attention_score_from_name accepts, in the order above.
const std::vector<std::string>& attention_score_names();

// ---------------------------------------------------------------------------------------------
// Score functions

/// Options for `AttentionScorer`.
struct AttentionScorerOptions {
  AttentionScorerOptions(int64_t query_size, int64_t key_size)
      : query_size_(query_size), key_size_(key_size) {}
  TORCH_ARG(int64_t, query_size);
  TORCH_ARG(int64_t, key_size);
  /// A name from attention_score_names(). dot, scaled_dot and cosine need query_size == key_size.
  TORCH_ARG(std::string, score) = "dot";
  /// Width of the tanh layer of concat and additive; 0 = key_size.
  TORCH_ARG(int64_t, hidden_size) = 0;
};

/// score(q, k) for every query and key. Parameters by score: general `linear` (query_size,
/// key_size) without bias (q^T W k = q . (W k)); concat `linear` (hidden, query+key) with bias
/// and `v` (1, hidden); additive `query_proj` (hidden, query) without bias, `key_proj`
/// (hidden, key) with bias, `v` (1, hidden); dot, scaled_dot and cosine none.
///
/// Example:
/// ```
/// nlpkit::AttentionScorer scorer(nlpkit::AttentionScorerOptions(8, 6).score("additive"));
/// torch::Tensor s = scorer(torch::randn({2, 3, 8}), torch::randn({2, 5, 6}));  // (2, 3, 5)
/// ```
class AttentionScorerImpl : public torch::nn::Cloneable<AttentionScorerImpl> {
 public:
  explicit AttentionScorerImpl(AttentionScorerOptions options_);
  void reset() override;
  void reset_parameters();
  /// query (B, T, query_size), keys (B, S, key_size) -> scores (B, T, S).
  torch::Tensor forward(const torch::Tensor& query, const torch::Tensor& keys);
  /// Prints `AttentionScorer(query_size=8, key_size=6, score=additive, hidden_size=6)`.
  void pretty_print(std::ostream& stream) const override;

  AttentionScorerOptions options;
  torch::nn::Linear linear{nullptr};
  torch::nn::Linear query_proj{nullptr};
  torch::nn::Linear key_proj{nullptr};
  torch::nn::Linear v{nullptr};

 private:
  AttentionScore score_ = AttentionScore::kDot;
};

TORCH_MODULE(AttentionScorer);

// ---------------------------------------------------------------------------------------------
// Soft, local and hard attention over encoder states

/// Options for `Attention`.
struct AttentionOptions {
  AttentionOptions(int64_t query_size, int64_t key_size)
      : query_size_(query_size), key_size_(key_size) {}
  TORCH_ARG(int64_t, query_size);
  TORCH_ARG(int64_t, key_size);
  /// A name from attention_score_names().
  TORCH_ARG(std::string, score) = "dot";
  /// Width of the tanh layers (concat, additive scores; local's position predictor); 0 =
  /// key_size.
  TORCH_ARG(int64_t, hidden_size) = 0;
  /// "soft" (global), "local" (Luong local-p) or "hard" (straight-through Gumbel-softmax).
  TORCH_ARG(std::string, mode) = "soft";
  /// D of local attention: the window is 2D+1 positions wide.
  TORCH_ARG(int64_t, window) = 2;
  /// Gumbel-softmax temperature of hard attention.
  TORCH_ARG(double, temperature) = 1.0;
};

/// Output of `Attention`.
struct AttentionOutput {
  /// (B, T, value_size), or (B, value_size) for a 2-D query: the weighted sum of the values.
  torch::Tensor context;
  /// (B, T, S), or (B, S) for a 2-D query: the weights, zero on masked keys.
  torch::Tensor weights;
};

/// Attention of decoder states over encoder states. Submodules: `scorer`; local mode adds the
/// position predictor `position_proj` (hidden, query) and `position_v` (1, hidden).
///
/// Example:
/// ```
/// nlpkit::Attention attention(nlpkit::AttentionOptions(8, 8).score("general").mode("local"));
/// nlpkit::AttentionOutput out = attention(torch::randn({2, 8}), keys, keys, mask);
/// // out.context (2, 8), out.weights (2, S)
/// ```
class AttentionImpl : public torch::nn::Cloneable<AttentionImpl> {
 public:
  explicit AttentionImpl(AttentionOptions options_);
  void reset() override;
  void reset_parameters();
  /// query (B, T, query_size) or (B, query_size); keys (B, S, key_size); values (B, S, V),
  /// undefined = keys; mask (B, S) bool, true on real positions, undefined = all real.
  AttentionOutput forward(const torch::Tensor& query, const torch::Tensor& keys,
                          const torch::Tensor& values = {}, const torch::Tensor& mask = {});
  /// Prints `Attention(query_size=8, key_size=8, score=general, mode=local, window=2)`.
  void pretty_print(std::ostream& stream) const override;

  AttentionOptions options;
  AttentionScorer scorer{nullptr};
  torch::nn::Linear position_proj{nullptr};
  torch::nn::Linear position_v{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS({2, torch::nn::AnyValue(torch::Tensor())},
                           {3, torch::nn::AnyValue(torch::Tensor())})
};

TORCH_MODULE(Attention);

/// softmax over the last dimension of `scores` (..., S) restricted to `mask` (broadcastable,
/// true = allowed); rows without an allowed position become zeros instead of NaN.
torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask);

// ---------------------------------------------------------------------------------------------
// Multi-head attention

/// Which kernel computes softmax(q k^T / sqrt(d) + mask) v.
enum class AttentionKernel {
  /// matmul, masked softmax, dropout, matmul: any LibTorch, returns the weights.
  kExplicit,
  /// at::scaled_dot_product_attention (flash / memory-efficient kernels on GPU); LibTorch >= 2.0
  /// only, and it does not return the weights.
  kFused,
  /// The same computation as kExplicit (weights, dropout, gradients) in one loop per (batch,
  /// head), written for the CPU (float and double): at::bmm dispatches one small GEMM per
  /// (batch, head) matrix, whose overhead dominates short sequences. MultiHeadAttention's
  /// "explicit" kernel uses it where loop_attention_applies.
  kLoops,
};

/// Query and key lengths up to which MultiHeadAttention's "explicit" kernel runs as kLoops.
constexpr int64_t kLoopAttentionMaxLength = 128;

/// Whether kLoops stands in for kExplicit: q and k on the CPU, float or double, both lengths
/// at most kLoopAttentionMaxLength.
bool loop_attention_applies(const torch::Tensor& q, const torch::Tensor& k);

/// Output of `scaled_dot_product_attention`.
struct ScaledDotProductOutput {
  /// (B, H, T, Hd)
  torch::Tensor output;
  /// (B, H, T, S) probabilities before dropout; undefined unless asked for (kExplicit only).
  torch::Tensor weights;
};

/// softmax(q k^T / sqrt(Hd), masked) v. q (B, H, T, Hd), k and v (B, H, S, Hd); mask bool,
/// broadcastable to (B, H, T, S), true = may attend, undefined = all. `kernel` kFused throws on
/// LibTorch < 2.0, kLoops off the CPU or for other dtypes; the explicit kernel is the reference
/// the others are tested against (kLoops draws its dropout as kExplicit does: same seed, same
/// result).
ScaledDotProductOutput scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                    const torch::Tensor& v,
                                                    const torch::Tensor& mask, double dropout,
                                                    bool training, bool need_weights,
                                                    AttentionKernel kernel);

/// Whether this LibTorch has at::scaled_dot_product_attention.
bool fused_attention_available();

/// Options for `MultiHeadAttention`.
struct MultiHeadAttentionOptions {
  MultiHeadAttentionOptions(int64_t hidden_size, int64_t num_heads)
      : hidden_size_(hidden_size), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_heads);
  /// Dropout on the attention probabilities, in training only.
  TORCH_ARG(double, dropout) = 0.0;
  /// Biases on the four projections.
  TORCH_ARG(bool, bias) = true;
  /// "explicit" or "fused" (LibTorch >= 2.0); the weights are only returned by "explicit",
  /// which runs as AttentionKernel::kLoops where loop_attention_applies (the CPU, short inputs).
  TORCH_ARG(std::string, kernel) = "explicit";
};

/// Keys and values already projected and split into heads: what incremental decoding caches.
struct KeyValue {
  /// (B, H, S, Hd)
  torch::Tensor key;
  /// (B, H, S, Hd)
  torch::Tensor value;
};

/// Output of `MultiHeadAttention`.
struct MultiHeadAttentionOutput {
  /// (B, T, hidden_size)
  torch::Tensor output;
  /// (B, H, T, S) attention probabilities (before dropout); undefined with the fused kernel.
  torch::Tensor weights;
};

/// Multi-head scaled dot-product attention (Vaswani et al. 2017). Parameters `q_proj`,
/// `k_proj`, `v_proj`, `out_proj` (Linear hidden -> hidden); torch::nn::MultiheadAttention's
/// in_proj_weight is q_proj, k_proj, v_proj stacked, and its initialisation is reproduced
/// (xavier_uniform on the stacked matrix, zero biases).
///
/// Example:
/// ```
/// nlpkit::MultiHeadAttention mha(nlpkit::MultiHeadAttentionOptions(16, 4));
/// auto out = mha(x, x, x, padding_mask);  // out.output (B, T, 16), out.weights (B, 4, T, T)
/// ```
class MultiHeadAttentionImpl : public torch::nn::Cloneable<MultiHeadAttentionImpl> {
 public:
  MultiHeadAttentionImpl(int64_t hidden_size, int64_t num_heads)
      : MultiHeadAttentionImpl(MultiHeadAttentionOptions(hidden_size, num_heads)) {}
  explicit MultiHeadAttentionImpl(MultiHeadAttentionOptions options_);
  void reset() override;
  void reset_parameters();
  /// query (B, T, hidden), key and value (B, S, hidden); key_padding_mask (B, S) bool, true on
  /// real keys; attn_mask (T, S) or (B, T, S) bool, true = may attend (e.g. causal_mask(T)).
  MultiHeadAttentionOutput forward(const torch::Tensor& query, const torch::Tensor& key,
                                   const torch::Tensor& value,
                                   const torch::Tensor& key_padding_mask = {},
                                   const torch::Tensor& attn_mask = {});
  /// key (B, S, hidden), value (B, S, hidden) -> projected heads (B, H, S, Hd).
  KeyValue project_key_value(const torch::Tensor& key, const torch::Tensor& value);
  /// Attention of query (B, T, hidden) over projected heads; masks as in forward.
  MultiHeadAttentionOutput attend(const torch::Tensor& query, const KeyValue& key_value,
                                  const torch::Tensor& key_padding_mask = {},
                                  const torch::Tensor& attn_mask = {});
  /// Prints `MultiHeadAttention(hidden_size=16, num_heads=4, dropout=0.1, bias=true)`.
  void pretty_print(std::ostream& stream) const override;

  MultiHeadAttentionOptions options;
  torch::nn::Linear q_proj{nullptr};
  torch::nn::Linear k_proj{nullptr};
  torch::nn::Linear v_proj{nullptr};
  torch::nn::Linear out_proj{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS({3, torch::nn::AnyValue(torch::Tensor())},
                           {4, torch::nn::AnyValue(torch::Tensor())})

 private:
  torch::Tensor split_heads(const torch::Tensor& x) const;  // (B, T, E) -> (B, H, T, Hd)
  AttentionKernel kernel_ = AttentionKernel::kExplicit;
};

TORCH_MODULE(MultiHeadAttention);

/// (T, T) bool, true on and below the diagonal: position t may attend to positions <= t.
torch::Tensor causal_mask(int64_t length, torch::Device device = torch::kCPU);

/// lengths (B) int64 -> (B, max_length) bool, true at positions < length.
torch::Tensor lengths_to_mask(const torch::Tensor& lengths, int64_t max_length);

}  // namespace nlpkit
