#include "modules/attention.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace nlpkit {

namespace {

/// A very negative finite value of the dtype: masked scores become it before the softmax, so
/// that a fully masked row gives a uniform (then zeroed) row instead of NaN, also in backward.
double lowest_score(torch::ScalarType dtype) { return dtype == torch::kHalf ? -65504.0 : -1e30; }

}  // namespace

const std::vector<std::string>& attention_score_names() {
  static const std::vector<std::string> names = {"dot",    "scaled_dot", "general",
                                                 "cosine", "concat",     "additive"};
  return names;
}

AttentionScore attention_score_from_name(const std::string& name) {
  const auto& names = attention_score_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<AttentionScore>(i);
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown attention score '" + name + "' (expected one of: " + list +
                              ")");
}

std::string attention_score_name(AttentionScore score) {
  return attention_score_names().at(static_cast<size_t>(score));
}

torch::Tensor masked_softmax(const torch::Tensor& scores, const torch::Tensor& mask) {
  if (!mask.defined()) return torch::softmax(scores, -1);
  const torch::Tensor masked = scores.masked_fill(~mask, lowest_score(scores.scalar_type()));
  return torch::softmax(masked, -1).masked_fill(~mask, 0.0);
}

torch::Tensor causal_mask(int64_t length, torch::Device device) {
  return torch::ones({length, length}, torch::TensorOptions().dtype(torch::kBool).device(device))
      .tril();
}

torch::Tensor lengths_to_mask(const torch::Tensor& lengths, int64_t max_length) {
  const torch::Tensor positions = torch::arange(max_length, lengths.options().dtype(torch::kLong));
  return positions.unsqueeze(0) < lengths.to(torch::kLong).unsqueeze(1);  // (B, S)
}

// ---------------------------------------------------------------------------------------------
// AttentionScorer

AttentionScorerImpl::AttentionScorerImpl(AttentionScorerOptions options_)
    : options(std::move(options_)) {
  reset();
}

void AttentionScorerImpl::reset() {
  TORCH_CHECK(options.query_size() > 0 && options.key_size() > 0,
              "AttentionScorer: query_size and key_size must be positive, got ",
              options.query_size(), " and ", options.key_size());
  try {
    score_ = attention_score_from_name(options.score());
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, "AttentionScorer: ", e.what());
  }
  const bool same_size = score_ == AttentionScore::kDot || score_ == AttentionScore::kScaledDot ||
                         score_ == AttentionScore::kCosine;
  TORCH_CHECK(!same_size || options.query_size() == options.key_size(), "AttentionScorer: score ",
              options.score(), " needs query_size == key_size, got ", options.query_size(), " and ",
              options.key_size());
  TORCH_CHECK(options.hidden_size() >= 0, "AttentionScorer: hidden_size must be >= 0, got ",
              options.hidden_size());
  const int64_t hidden = options.hidden_size() > 0 ? options.hidden_size() : options.key_size();
  switch (score_) {
    case AttentionScore::kGeneral:
      linear = register_module(
          "linear",
          torch::nn::Linear(
              torch::nn::LinearOptions(options.key_size(), options.query_size()).bias(false)));
      break;
    case AttentionScore::kConcat:
      linear = register_module(
          "linear", torch::nn::Linear(options.query_size() + options.key_size(), hidden));
      v = register_module("v", torch::nn::Linear(torch::nn::LinearOptions(hidden, 1).bias(false)));
      break;
    case AttentionScore::kAdditive:
      query_proj = register_module(
          "query_proj",
          torch::nn::Linear(torch::nn::LinearOptions(options.query_size(), hidden).bias(false)));
      key_proj = register_module("key_proj", torch::nn::Linear(options.key_size(), hidden));
      v = register_module("v", torch::nn::Linear(torch::nn::LinearOptions(hidden, 1).bias(false)));
      break;
    default:
      break;
  }
}

void AttentionScorerImpl::reset_parameters() {
  for (auto& child : children()) {
    if (auto* l = child->as<torch::nn::LinearImpl>()) l->reset_parameters();
  }
}

torch::Tensor AttentionScorerImpl::forward(const torch::Tensor& query, const torch::Tensor& keys) {
  TORCH_CHECK(query.dim() == 3 && query.size(2) == options.query_size(),
              "AttentionScorer: query must be (B, T, ", options.query_size(), "), got ",
              query.sizes());
  TORCH_CHECK(
      keys.dim() == 3 && keys.size(2) == options.key_size() && keys.size(0) == query.size(0),
      "AttentionScorer: keys must be (", query.size(0), ", S, ", options.key_size(), "), got ",
      keys.sizes());
  switch (score_) {
    case AttentionScore::kDot:
      return torch::matmul(query, keys.transpose(1, 2));  // (B, T, S)
    case AttentionScore::kScaledDot:
      return torch::matmul(query, keys.transpose(1, 2)) /
             std::sqrt(static_cast<double>(options.key_size()));
    case AttentionScore::kGeneral:
      return torch::matmul(query, linear(keys).transpose(1, 2));  // q . (W k)
    case AttentionScore::kCosine: {
      const torch::Tensor q = torch::nn::functional::normalize(
          query, torch::nn::functional::NormalizeFuncOptions().dim(-1).eps(1e-8));
      const torch::Tensor k = torch::nn::functional::normalize(
          keys, torch::nn::functional::NormalizeFuncOptions().dim(-1).eps(1e-8));
      return torch::matmul(q, k.transpose(1, 2));
    }
    case AttentionScore::kConcat: {
      // W [q; k] = W_q q + W_k k: split the weight so as not to build (B, T, S, Q+K).
      const auto parts =
          linear->weight.split_with_sizes({options.query_size(), options.key_size()}, 1);
      const torch::Tensor wq = torch::nn::functional::linear(query, parts[0], linear->bias);
      const torch::Tensor wk = torch::nn::functional::linear(keys, parts[1]);
      const torch::Tensor hidden = torch::tanh(wq.unsqueeze(2) + wk.unsqueeze(1));  // (B,T,S,h)
      return v(hidden).squeeze(-1);                                                 // (B, T, S)
    }
    case AttentionScore::kAdditive: {
      const torch::Tensor hidden =
          torch::tanh(query_proj(query).unsqueeze(2) + key_proj(keys).unsqueeze(1));  // (B,T,S,h)
      return v(hidden).squeeze(-1);                                                   // (B, T, S)
    }
  }
  TORCH_CHECK(false, "AttentionScorer: unreachable");
}

void AttentionScorerImpl::pretty_print(std::ostream& stream) const {
  stream << "AttentionScorer(query_size=" << options.query_size()
         << ", key_size=" << options.key_size() << ", score=" << options.score();
  if (score_ == AttentionScore::kConcat || score_ == AttentionScore::kAdditive) {
    stream << ", hidden_size="
           << (options.hidden_size() > 0 ? options.hidden_size() : options.key_size());
  }
  stream << ")";
}

// ---------------------------------------------------------------------------------------------
// Attention

AttentionImpl::AttentionImpl(AttentionOptions options_) : options(std::move(options_)) { reset(); }

void AttentionImpl::reset() {
  const std::string& mode = options.mode();
  TORCH_CHECK(mode == "soft" || mode == "local" || mode == "hard",
              "Attention: mode must be soft, local or hard, got '", mode, "'");
  TORCH_CHECK(options.window() >= 0, "Attention: window must be >= 0, got ", options.window());
  TORCH_CHECK(options.temperature() > 0, "Attention: temperature must be > 0, got ",
              options.temperature());
  scorer = register_module(
      "scorer", AttentionScorer(AttentionScorerOptions(options.query_size(), options.key_size())
                                    .score(options.score())
                                    .hidden_size(options.hidden_size())));
  if (mode == "local") {
    const int64_t hidden = options.hidden_size() > 0 ? options.hidden_size() : options.key_size();
    position_proj = register_module(
        "position_proj",
        torch::nn::Linear(torch::nn::LinearOptions(options.query_size(), hidden).bias(false)));
    position_v = register_module(
        "position_v", torch::nn::Linear(torch::nn::LinearOptions(hidden, 1).bias(false)));
  }
}

void AttentionImpl::reset_parameters() {
  scorer->reset_parameters();
  if (position_proj) {
    position_proj->reset_parameters();
    position_v->reset_parameters();
  }
}

AttentionOutput AttentionImpl::forward(const torch::Tensor& query, const torch::Tensor& keys,
                                       const torch::Tensor& values, const torch::Tensor& mask) {
  TORCH_CHECK(query.dim() == 2 || query.dim() == 3,
              "Attention: query must be (B, query_size) or (B, T, query_size), got ",
              query.sizes());
  const bool single = query.dim() == 2;
  const torch::Tensor q = single ? query.unsqueeze(1) : query;  // (B, T, Q)
  const torch::Tensor vals = values.defined() ? values : keys;
  TORCH_CHECK(vals.dim() == 3 && vals.size(0) == keys.size(0) && vals.size(1) == keys.size(1),
              "Attention: values must be (B, S, V) like keys ", keys.sizes(), ", got ",
              vals.sizes());
  const int64_t batch = keys.size(0);
  const int64_t source = keys.size(1);
  torch::Tensor allowed;  // (B, 1, S) bool or undefined
  if (mask.defined()) {
    TORCH_CHECK(mask.dim() == 2 && mask.size(0) == batch && mask.size(1) == source,
                "Attention: mask must be (", batch, ", ", source, "), got ", mask.sizes());
    allowed = mask.to(torch::kBool).unsqueeze(1);
  }
  torch::Tensor scores = scorer(q, keys);  // (B, T, S)
  torch::Tensor weights;
  if (options.mode() == "soft") {
    weights = masked_softmax(scores, allowed);
  } else if (options.mode() == "local") {
    const torch::Tensor lengths = allowed.defined()
                                      ? allowed.sum(-1, /*keepdim=*/true).to(scores.scalar_type())
                                      : torch::full({batch, 1, 1}, static_cast<double>(source),
                                                    scores.options());  // (B, 1, 1)
    const torch::Tensor p =
        (lengths - 1) * torch::sigmoid(position_v(torch::tanh(position_proj(q))));  // (B, T, 1)
    const torch::Tensor positions = torch::arange(source, scores.options()).view({1, 1, source});
    const double window = static_cast<double>(options.window());
    torch::Tensor in_window = (positions - p.round().detach()).abs() <= window;  // (B, T, S)
    if (allowed.defined()) in_window = in_window & allowed;
    const double sigma = std::max(window / 2.0, 0.5);  // D = 0 would divide by zero
    const torch::Tensor gaussian = torch::exp(-(positions - p).pow(2) / (2 * sigma * sigma));
    weights = masked_softmax(scores, in_window) * gaussian;
  } else {  // hard
    const torch::Tensor masked =
        allowed.defined() ? scores.masked_fill(~allowed, lowest_score(scores.scalar_type()))
                          : scores;
    torch::Tensor soft;
    if (is_training()) {
      // Gumbel(0, 1) noise, -log(-log(U)), as torch.nn.functional.gumbel_softmax draws it.
      const torch::Tensor gumbel = -torch::empty_like(masked).exponential_().log();
      soft = torch::softmax((masked + gumbel) / options.temperature(), -1);
    } else {
      soft = torch::softmax(masked / options.temperature(), -1);
    }
    const torch::Tensor hard =
        torch::zeros_like(soft).scatter_(-1, soft.argmax(-1, /*keepdim=*/true), 1.0);
    weights = hard - soft.detach() + soft;  // forward: one-hot; backward: softmax's gradient
    if (allowed.defined()) weights = weights.masked_fill(~allowed, 0.0);
  }
  torch::Tensor context = torch::matmul(weights, vals);  // (B, T, V)
  if (single) return {context.squeeze(1), weights.squeeze(1)};
  return {context, weights};
}

void AttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "Attention(query_size=" << options.query_size() << ", key_size=" << options.key_size()
         << ", score=" << options.score() << ", mode=" << options.mode();
  if (options.mode() == "local") stream << ", window=" << options.window();
  if (options.mode() == "hard") stream << ", temperature=" << options.temperature();
  stream << ")";
}

// ---------------------------------------------------------------------------------------------
// Scaled dot-product attention

bool fused_attention_available() {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

ScaledDotProductOutput scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                    const torch::Tensor& v,
                                                    const torch::Tensor& mask, double dropout,
                                                    bool training, bool need_weights,
                                                    AttentionKernel kernel) {
  if (kernel == AttentionKernel::kFused) {
    TORCH_CHECK(!need_weights,
                "scaled_dot_product_attention: the fused kernel does not return the weights");
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
    c10::optional<torch::Tensor> attn_mask;
    if (mask.defined()) attn_mask = mask;
    return {at::scaled_dot_product_attention(q, k, v, attn_mask, training ? dropout : 0.0, false),
            torch::Tensor()};
#else
    TORCH_CHECK(false,
                "scaled_dot_product_attention: the fused kernel needs LibTorch >= 2.0 (this is ",
                TORCH_VERSION, "); use kernel 'explicit'");
#endif
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const torch::Tensor scores = torch::matmul(q * scale, k.transpose(-2, -1));  // (B, H, T, S)
  const torch::Tensor probs = masked_softmax(scores, mask);
  const torch::Tensor dropped =
      dropout > 0 && training ? torch::dropout(probs, dropout, /*train=*/true) : probs;
  return {torch::matmul(dropped, v), need_weights ? probs : torch::Tensor()};  // (B, H, T, Hd)
}

// ---------------------------------------------------------------------------------------------
// MultiHeadAttention

MultiHeadAttentionImpl::MultiHeadAttentionImpl(MultiHeadAttentionOptions options_)
    : options(std::move(options_)) {
  reset();
}

void MultiHeadAttentionImpl::reset() {
  const int64_t e = options.hidden_size();
  const int64_t h = options.num_heads();
  TORCH_CHECK(e > 0 && h > 0,
              "MultiHeadAttention: hidden_size and num_heads must be positive, got ", e, " and ",
              h);
  TORCH_CHECK(e % h == 0, "MultiHeadAttention: hidden_size (", e,
              ") must be divisible by num_heads (", h, ")");
  TORCH_CHECK(options.dropout() >= 0 && options.dropout() < 1,
              "MultiHeadAttention: dropout must be in [0, 1), got ", options.dropout());
  TORCH_CHECK(options.kernel() == "explicit" || options.kernel() == "fused",
              "MultiHeadAttention: kernel must be explicit or fused, got '", options.kernel(), "'");
  kernel_ = options.kernel() == "fused" ? AttentionKernel::kFused : AttentionKernel::kExplicit;
  const auto linear = [&] { return torch::nn::LinearOptions(e, e).bias(options.bias()); };
  q_proj = register_module("q_proj", torch::nn::Linear(linear()));
  k_proj = register_module("k_proj", torch::nn::Linear(linear()));
  v_proj = register_module("v_proj", torch::nn::Linear(linear()));
  out_proj = register_module("out_proj", torch::nn::Linear(linear()));
  reset_parameters();
}

void MultiHeadAttentionImpl::reset_parameters() {
  // torch::nn::MultiheadAttention: xavier_uniform on the stacked (3E, E) in_proj_weight, zero
  // in_proj_bias and out_proj.bias; out_proj.weight keeps Linear's init.
  torch::NoGradGuard no_grad;
  const int64_t e = options.hidden_size();
  torch::Tensor stacked = torch::empty({3 * e, e});
  torch::nn::init::xavier_uniform_(stacked);
  q_proj->weight.copy_(stacked.slice(0, 0, e));
  k_proj->weight.copy_(stacked.slice(0, e, 2 * e));
  v_proj->weight.copy_(stacked.slice(0, 2 * e, 3 * e));
  if (options.bias()) {
    q_proj->bias.zero_();
    k_proj->bias.zero_();
    v_proj->bias.zero_();
    out_proj->bias.zero_();
  }
}

torch::Tensor MultiHeadAttentionImpl::split_heads(const torch::Tensor& x) const {
  const int64_t heads = options.num_heads();
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);  // (B,H,T,Hd)
}

KeyValue MultiHeadAttentionImpl::project_key_value(const torch::Tensor& key,
                                                   const torch::Tensor& value) {
  TORCH_CHECK(key.dim() == 3 && key.size(2) == options.hidden_size(),
              "MultiHeadAttention: key must be (B, S, ", options.hidden_size(), "), got ",
              key.sizes());
  TORCH_CHECK(value.sizes() == key.sizes(), "MultiHeadAttention: value must be ", key.sizes(),
              " like key, got ", value.sizes());
  return {split_heads(k_proj(key)), split_heads(v_proj(value))};
}

MultiHeadAttentionOutput MultiHeadAttentionImpl::attend(const torch::Tensor& query,
                                                        const KeyValue& kv,
                                                        const torch::Tensor& key_padding_mask,
                                                        const torch::Tensor& attn_mask) {
  TORCH_CHECK(query.dim() == 3 && query.size(2) == options.hidden_size(),
              "MultiHeadAttention: query must be (B, T, ", options.hidden_size(), "), got ",
              query.sizes());
  const int64_t batch = query.size(0);
  const int64_t target = query.size(1);
  const int64_t source = kv.key.size(2);
  TORCH_CHECK(kv.key.size(0) == batch, "MultiHeadAttention: query batch ", batch, " but key batch ",
              kv.key.size(0));
  torch::Tensor mask;  // broadcastable to (B, H, T, S)
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.dim() == 2 && key_padding_mask.size(0) == batch &&
                    key_padding_mask.size(1) == source,
                "MultiHeadAttention: key_padding_mask must be (", batch, ", ", source, "), got ",
                key_padding_mask.sizes());
    mask = key_padding_mask.to(torch::kBool).view({batch, 1, 1, source});
  }
  if (attn_mask.defined()) {
    TORCH_CHECK((attn_mask.dim() == 2 || attn_mask.dim() == 3) && attn_mask.size(-2) == target &&
                    attn_mask.size(-1) == source,
                "MultiHeadAttention: attn_mask must be (", target, ", ", source, ") or (B, ",
                target, ", ", source, "), got ", attn_mask.sizes());
    torch::Tensor m = attn_mask.to(torch::kBool);
    m = m.dim() == 2 ? m.view({1, 1, target, source}) : m.unsqueeze(1);
    mask = mask.defined() ? (mask & m) : m;
  }
  const torch::Tensor q = split_heads(q_proj(query));  // (B, H, T, Hd)
  const bool fused = kernel_ == AttentionKernel::kFused;
  ScaledDotProductOutput out = scaled_dot_product_attention(
      q, kv.key, kv.value, mask, options.dropout(), is_training(), !fused, kernel_);
  const torch::Tensor merged =
      out.output.transpose(1, 2).reshape({batch, target, options.hidden_size()});  // (B, T, E)
  return {out_proj(merged), out.weights};
}

MultiHeadAttentionOutput MultiHeadAttentionImpl::forward(const torch::Tensor& query,
                                                         const torch::Tensor& key,
                                                         const torch::Tensor& value,
                                                         const torch::Tensor& key_padding_mask,
                                                         const torch::Tensor& attn_mask) {
  return attend(query, project_key_value(key, value), key_padding_mask, attn_mask);
}

void MultiHeadAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "MultiHeadAttention(hidden_size=" << options.hidden_size()
         << ", num_heads=" << options.num_heads() << ", dropout=" << options.dropout()
         << ", bias=" << (options.bias() ? "true" : "false") << ", kernel=" << options.kernel()
         << ")";
}

}  // namespace nlpkit
