#include "modules/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

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

// ---------------------------------------------------------------------------------------------
// Attention in per-(batch, head) loops (AttentionKernel::kLoops)

namespace {

/// a . b over n elements, in four running sums (which the compiler vectorises; one sum would
/// be a serial chain).
template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t d = 0;
  for (; d + 4 <= n; d += 4) {
    s0 += a[d] * b[d];
    s1 += a[d + 1] * b[d + 1];
    s2 += a[d + 2] * b[d + 2];
    s3 += a[d + 3] * b[d + 3];
  }
  for (; d < n; ++d) s0 += a[d] * b[d];
  return (s0 + s1) + (s2 + s3);
}

/// y += alpha x over n elements.
template <typename T>
void axpy(T alpha, const T* x, T* y, int64_t n) {
  for (int64_t d = 0; d < n; ++d) y[d] += alpha * x[d];
}

/// Strides of a (B, H, L, Hd) tensor whose last dimension is contiguous.
struct Strides4 {
  int64_t b, h, l;
  explicit Strides4(const torch::Tensor& t) : b(t.stride(0)), h(t.stride(1)), l(t.stride(2)) {}
  int64_t at(int64_t bi, int64_t hi, int64_t li) const { return bi * b + hi * h + li * l; }
};

torch::Tensor last_dim_contiguous(const torch::Tensor& t) {
  return t.stride(-1) == 1 ? t : t.contiguous();
}

/// The inputs LoopAttention takes no gradient for: the bool mask (broadcastable to (B, H, T,
/// S)) and the dropout noise (B, H, T, S), either undefined. (Undefined tensors cannot be
/// arguments of an autograd Function.)
struct LoopAttentionExtras {
  torch::Tensor mask, noise;
};

/// softmax(scale q k^T, masked) (dropped out by `noise`) v for every (batch, head) in a loop of
/// its own: at::bmm runs one dispatched GEMM per (batch, head) matrix, whose overhead is most of
/// the work for short sequences. Outputs the context (B, H, T, Hd) (a view of a (B, T, H, Hd)
/// buffer, so that merging the heads is free) and the probabilities (B, H, T, S); masked
/// probabilities are 0, rows with no allowed key all 0 (as masked_softmax).
class LoopAttention : public torch::autograd::Function<LoopAttention> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const torch::Tensor& q_in,
                                                const torch::Tensor& k_in,
                                                const torch::Tensor& v_in,
                                                const LoopAttentionExtras& extras, double scale) {
    const torch::Tensor &mask = extras.mask, &noise = extras.noise;
    const torch::Tensor q = last_dim_contiguous(q_in), k = last_dim_contiguous(k_in),
                        v = last_dim_contiguous(v_in);
    const int64_t batch = q.size(0), heads = q.size(1), t = q.size(2), hd = q.size(3),
                  s = k.size(2);
    torch::Tensor out = torch::empty({batch, t, heads, hd}, q.options());
    torch::Tensor probs = torch::empty({batch, heads, t, s}, q.options());
    const torch::Tensor allowed =
        mask.defined() ? mask.expand({batch, heads, t, s}) : torch::Tensor();
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "loop_attention_forward", [&] {
      const scalar_t* qp = q.data_ptr<scalar_t>();
      const scalar_t* kp = k.data_ptr<scalar_t>();
      const scalar_t* vp = v.data_ptr<scalar_t>();
      const scalar_t* np = noise.defined() ? noise.data_ptr<scalar_t>() : nullptr;
      const bool* mp = allowed.defined() ? allowed.data_ptr<bool>() : nullptr;
      scalar_t* op = out.data_ptr<scalar_t>();
      scalar_t* pp = probs.data_ptr<scalar_t>();
      const Strides4 qs(q), ks(k), vs(v);
      const int64_t m0 = mp ? allowed.stride(0) : 0, m1 = mp ? allowed.stride(1) : 0,
                    m2 = mp ? allowed.stride(2) : 0, m3 = mp ? allowed.stride(3) : 0;
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
        for (int64_t bh = begin; bh < end; ++bh) {
          const int64_t b = bh / heads, h = bh % heads;
          for (int64_t i = 0; i < t; ++i) {
            scalar_t* row = pp + (bh * t + i) * s;
            const scalar_t* qi = qp + qs.at(b, h, i);
            const bool* mi = mp ? mp + b * m0 + h * m1 + i * m2 : nullptr;
            scalar_t max = -std::numeric_limits<scalar_t>::infinity();
            for (int64_t j = 0; j < s; ++j) {
              if (mi && !mi[j * m3]) continue;
              row[j] = scale * dot(qi, kp + ks.at(b, h, j), hd);
              max = std::max(max, row[j]);
            }
            scalar_t* oi = op + ((b * t + i) * heads + h) * hd;
            std::fill(oi, oi + hd, scalar_t(0));
            if (max == -std::numeric_limits<scalar_t>::infinity()) {  // no allowed key
              std::fill(row, row + s, scalar_t(0));
              continue;
            }
            scalar_t sum = 0;
            for (int64_t j = 0; j < s; ++j) {
              row[j] = mi && !mi[j * m3] ? scalar_t(0) : std::exp(row[j] - max);
              sum += row[j];
            }
            const scalar_t* ni = np ? np + (bh * t + i) * s : nullptr;
            for (int64_t j = 0; j < s; ++j) {
              row[j] /= sum;
              const scalar_t w = ni ? row[j] * ni[j] : row[j];
              if (w != 0) axpy(w, vp + vs.at(b, h, j), oi, hd);
            }
          }
        }
      });
    });
    // An unused output (the weights, in training) passes an undefined gradient, not zeros.
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["noise"] = noise;
    ctx->saved_data["scale"] = scale;
    return {out.permute({0, 2, 1, 3}), probs};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const torch::Tensor noise = ctx->saved_data["noise"].toTensor();
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t batch = q.size(0), heads = q.size(1), t = q.size(2), hd = q.size(3),
                  s = k.size(2);
    if (!grads[0].defined() && !grads[1].defined()) {
      return {torch::zeros_like(q), torch::zeros_like(k), torch::zeros_like(v), torch::Tensor(),
              torch::Tensor()};
    }
    // Written (grad q) or zeroed then accumulated (grad k, v) per (batch, head) in the loop.
    torch::Tensor grad_q = torch::empty({batch, heads, t, hd}, q.options());
    torch::Tensor grad_k = torch::empty({batch, heads, s, hd}, q.options());
    torch::Tensor grad_v = torch::empty({batch, heads, s, hd}, q.options());
    const torch::Tensor grad_out = grads[0].defined() ? last_dim_contiguous(grads[0]) : grads[0];
    const torch::Tensor grad_probs = grads[1].defined() ? grads[1].contiguous() : grads[1];
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "loop_attention_backward", [&] {
      const scalar_t* qp = q.data_ptr<scalar_t>();
      const scalar_t* kp = k.data_ptr<scalar_t>();
      const scalar_t* vp = v.data_ptr<scalar_t>();
      const scalar_t* pp = probs.data_ptr<scalar_t>();
      const scalar_t* np = noise.defined() ? noise.data_ptr<scalar_t>() : nullptr;
      const scalar_t* gop = grad_out.defined() ? grad_out.data_ptr<scalar_t>() : nullptr;
      const scalar_t* gpp = grad_probs.defined() ? grad_probs.data_ptr<scalar_t>() : nullptr;
      scalar_t* gq = grad_q.data_ptr<scalar_t>();
      scalar_t* gk = grad_k.data_ptr<scalar_t>();
      scalar_t* gv = grad_v.data_ptr<scalar_t>();
      const Strides4 qs(q), ks(k), vs(v);
      const Strides4 gos = gop ? Strides4(grad_out) : Strides4(q);
      at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> ds(s);
        for (int64_t bh = begin; bh < end; ++bh) {
          const int64_t b = bh / heads, h = bh % heads;
          std::fill(gk + bh * s * hd, gk + (bh + 1) * s * hd, scalar_t(0));
          std::fill(gv + bh * s * hd, gv + (bh + 1) * s * hd, scalar_t(0));
          for (int64_t i = 0; i < t; ++i) {
            const scalar_t* pi = pp + (bh * t + i) * s;
            const scalar_t* ni = np ? np + (bh * t + i) * s : nullptr;
            const scalar_t* gpi = gpp ? gpp + (bh * t + i) * s : nullptr;
            const scalar_t* goi = gop ? gop + gos.at(b, h, i) : nullptr;
            // dP = noise (dO . v_j) + dP_weights; dV_j += P noise dO.
            scalar_t row_dot = 0;
            for (int64_t j = 0; j < s; ++j) {
              scalar_t dp = gpi ? gpi[j] : scalar_t(0);
              if (goi && pi[j] != 0) {
                const scalar_t keep = ni ? ni[j] : scalar_t(1);
                dp += keep * dot(goi, vp + vs.at(b, h, j), hd);
                axpy(pi[j] * keep, goi, gv + (bh * s + j) * hd, hd);
              }
              ds[j] = dp;
              row_dot += pi[j] * dp;
            }
            // dS = P (dP - sum_j P dP); dq_i = scale dS k, dk_j += scale dS q_i.
            const scalar_t* qi = qp + qs.at(b, h, i);
            scalar_t* gqi = gq + (bh * t + i) * hd;
            std::fill(gqi, gqi + hd, scalar_t(0));
            for (int64_t j = 0; j < s; ++j) {
              const scalar_t g = static_cast<scalar_t>(scale) * pi[j] * (ds[j] - row_dot);
              if (g == 0) continue;
              axpy(g, kp + ks.at(b, h, j), gqi, hd);
              axpy(g, qi, gk + (bh * s + j) * hd, hd);
            }
          }
        }
      });
    });
    return {grad_q, grad_k, grad_v, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

namespace {

/// Tensors the loops kernel can take: on the CPU, float or double.
bool loop_attention_supports(const torch::Tensor& t) {
  return t.device().is_cpu() &&
         (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble);
}

}  // namespace

bool loop_attention_applies(const torch::Tensor& q, const torch::Tensor& k) {
  return loop_attention_supports(q) && loop_attention_supports(k) &&
         q.size(2) <= kLoopAttentionMaxLength && k.size(2) <= kLoopAttentionMaxLength;
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
  if (kernel == AttentionKernel::kLoops) {
    TORCH_CHECK(loop_attention_supports(q) && loop_attention_supports(k) &&
                    loop_attention_supports(v) && k.scalar_type() == q.scalar_type() &&
                    v.scalar_type() == q.scalar_type(),
                "scaled_dot_product_attention: the loops kernel takes CPU float or double q, k "
                "and v, got ",
                q.device(), " ", q.scalar_type());
    TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes() && k.size(0) == q.size(0) &&
                    k.size(1) == q.size(1) && k.size(3) == q.size(3),
                "scaled_dot_product_attention: q must be (B, H, T, Hd) and k, v (B, H, S, Hd), "
                "got ",
                q.sizes(), ", ", k.sizes(), ", ", v.sizes());
    torch::Tensor noise;  // drawn as torch::dropout draws it on the (B, H, T, S) weights
    if (training && dropout > 0) {
      noise = torch::empty({q.size(0), q.size(1), q.size(2), k.size(2)}, q.options())
                  .bernoulli_(1 - dropout)
                  .div_(1 - dropout);
    }
    const torch::Tensor allowed = mask.defined() ? mask.to(torch::kBool) : mask;
    auto outputs = LoopAttention::apply(q, k, v, LoopAttentionExtras{allowed, noise}, scale);
    return {outputs[0], need_weights ? outputs[1] : torch::Tensor()};
  }
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
  const AttentionKernel kernel =
      kernel_ == AttentionKernel::kExplicit && loop_attention_applies(q, kv.key)
          ? AttentionKernel::kLoops
          : kernel_;
  ScaledDotProductOutput out = scaled_dot_product_attention(
      q, kv.key, kv.value, mask, options.dropout(), is_training(), !fused, kernel);
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
