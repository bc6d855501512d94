#include "modules/deberta.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace nlpkit {
namespace {

torch::nn::LayerNorm make_layer_norm(const DebertaOptions& o) {
  return torch::nn::LayerNorm(
      torch::nn::LayerNormOptions({o.hidden_size()}).eps(o.layer_norm_eps()));
}

/// The lowest finite value of `dtype`: XSoftmax's fill for masked scores (finite, so that a
/// fully masked row gives no NaN before it is zeroed).
double lowest_of(torch::ScalarType dtype) {
  if (dtype == torch::kFloat64) return std::numeric_limits<double>::lowest();
  if (dtype == torch::kFloat16) return -65504.0;
  if (dtype == torch::kBFloat16) return -3.38953139e38;
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

/// Relative distances attended to on each side (HuggingFace's pos_ebd_size).
int64_t attention_span(const DebertaOptions& o) {
  if (o.position_buckets() > 0) return o.position_buckets();
  return o.max_relative_positions() < 1 ? o.max_position_embeddings() : o.max_relative_positions();
}

/// HuggingFace's make_log_bucket_position for one distance, in double precision as its numpy
/// code (float32 rounds differently at some bucket edges).
int64_t log_bucket(int64_t r, int64_t bucket_size, int64_t max_position) {
  const int64_t mid = bucket_size / 2;
  const int64_t a = r < 0 ? -r : r;
  if (a <= mid) return r;
  const double log_pos =
      std::ceil(std::log(static_cast<double>(a) / static_cast<double>(mid)) /
                std::log(static_cast<double>(max_position - 1) / static_cast<double>(mid)) *
                static_cast<double>(mid - 1)) +
      static_cast<double>(mid);
  const int64_t bucket = static_cast<int64_t>(log_pos);
  return r < 0 ? -bucket : bucket;
}

/// HuggingFace's _init_weights for one Linear or Embedding; LayerNorm 1 and 0.
void init_deberta_module(torch::nn::Module& m, double std) {
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

/// The query rows of a band product in blocks of at most `block` rows: block k covers rows
/// start .. start + n - 1 and reaches the L = n + Tb - 1 relative rows from s = Ta - start - n
/// (row i, column j uses relative row Ta - 1 - i + j, column n - 1 - (i - start) + j of the
/// window).
struct BandBlock {
  int64_t start, n;
};

std::vector<BandBlock> band_blocks(int64_t ta, int64_t block) {
  std::vector<BandBlock> blocks;
  for (int64_t start = 0; start < ta; start += block) {
    blocks.push_back({start, std::min(block, ta - start)});
  }
  return blocks;
}

/// The query rows of a (B, heads, Ta, Hd) grouped by block, as (heads, B Ta, Hd): block
/// (start, n) of head h is the (B n, Hd) matrix rows[h].narrow(0, B start, B n), its row b n + r
/// holding a[b, h, start + r]. (Rows of one batch entry adjacent: the strided band copies below
/// then reread the cache lines they just read.) Returns the matching views of `rows` and `a`:
/// the full blocks, then the partial last one if any.
std::vector<std::pair<torch::Tensor, torch::Tensor>> block_row_views(const torch::Tensor& rows,
                                                                     const torch::Tensor& a,
                                                                     int64_t block) {
  const int64_t batch = a.size(0), heads = a.size(1), ta = a.size(2), hd = a.size(3);
  const int64_t n = std::min(block, ta), full = ta / n * n, rest = ta - full;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> views{
      {rows.narrow(1, 0, batch * full).view({heads, full / n, batch, n, hd}),
       a.narrow(2, 0, full).view({batch, heads, full / n, n, hd}).permute({1, 2, 0, 3, 4})}};
  if (rest > 0) {
    views.emplace_back(rows.narrow(1, batch * full, batch * rest).view({heads, batch, rest, hd}),
                       a.narrow(2, full, rest).permute({1, 0, 2, 3}));
  }
  return views;
}

torch::Tensor to_block_rows(const torch::Tensor& a, int64_t block) {
  torch::Tensor rows = torch::empty({a.size(1), a.size(0) * a.size(2), a.size(3)}, a.options());
  for (auto& [blocked, natural] : block_row_views(rows, a, block)) blocked.copy_(natural);
  return rows;
}

/// The inverse of to_block_rows: (heads, B Ta, Hd) -> (B, heads, Ta, Hd).
torch::Tensor from_block_rows(const torch::Tensor& rows, int64_t batch, int64_t block) {
  torch::Tensor a =
      torch::empty({batch, rows.size(0), rows.size(1) / batch, rows.size(2)}, rows.options());
  for (auto& [blocked, natural] : block_row_views(rows, a, block)) natural.copy_(blocked);
  return a;
}

/// The band of one block's product p (B n, L), row b n + r = query row start + r of batch b,
/// as (B, n, Tb): [b, r, j] sits at p[b n + r, n - 1 - r + j] (no two elements shared).
torch::Tensor band_view(const torch::Tensor& p, int64_t batch, int64_t n, int64_t tb) {
  const int64_t l = p.size(1);
  return p.as_strided({batch, n, tb}, {n * l, l - 1, 1}, p.storage_offset() + n - 1);
}

/// Head h's block of scores (B, heads, Ta, Tb) as (B, n, Tb), or of the transposed scores
/// (B, heads, Tb, Ta).
torch::Tensor band_target(const torch::Tensor& scores, int64_t h, const BandBlock& blk,
                          bool transposed) {
  const torch::Tensor head = scores.select(1, h);
  return transposed ? head.narrow(2, blk.start, blk.n).transpose(1, 2)
                    : head.narrow(1, blk.start, blk.n);
}

/// band_target(scores, h, blk, /*transposed=*/true) += band_view(p) (add), or band_view(p) =
/// band_target(scores, ...) (!add), for contiguous float CPU tensors; false (nothing done)
/// otherwise. The target rows are the columns of p's band: done in 4 x 4 tiles transposed in
/// registers, 4-5x faster than TensorIterator's strided add (which reads p a float at a time
/// down its columns).
bool transposed_band_loop(const torch::Tensor& scores, const torch::Tensor& p, int64_t h,
                          const BandBlock& blk, int64_t batch, bool add) {
  if (scores.scalar_type() != torch::kFloat || p.scalar_type() != torch::kFloat ||
      !scores.is_contiguous() || !p.is_contiguous() || !scores.device().is_cpu()) {
    return false;
  }
  const int64_t heads = scores.size(1), tb = scores.size(2), ta = scores.size(3);
  const int64_t n = blk.n, step = p.size(1) - 1;  // p[r + 1, c - 1] is p[r, c] + step
  float* const s = scores.data_ptr<float>();
  float* const q = p.data_ptr<float>();
  // Element [b, r, x]: s_row(b, x)[r] and p_band(b, x)[r * step].
  auto one = [&](float* row, float* band, int64_t r) {
    if (add) {
      row[r] += band[r * step];
    } else {
      band[r * step] = row[r];
    }
  };
  const int64_t groups = (tb + 3) / 4;  // four target rows x at a time
  at::parallel_for(0, batch * groups, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / groups, x0 = bg % groups * 4, xs = std::min<int64_t>(4, tb - x0);
      float* const row = s + ((b * heads + h) * tb + x0) * ta + blk.start;  // [b, h, x0, start]
      float* const band = q + b * n * p.size(1) + n - 1 + x0;               // p[b n, n - 1 + x0]
      int64_t r = 0;
#if defined(__SSE2__)
      if (xs == 4) {
        for (; r + 4 <= n; r += 4) {
          float* const pr = band + r * step;
          float* const d = row + r;
          if (add) {
            __m128 a0 = _mm_loadu_ps(pr), a1 = _mm_loadu_ps(pr + step),
                   a2 = _mm_loadu_ps(pr + 2 * step), a3 = _mm_loadu_ps(pr + 3 * step);
            _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
            _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), a0));
            _mm_storeu_ps(d + ta, _mm_add_ps(_mm_loadu_ps(d + ta), a1));
            _mm_storeu_ps(d + 2 * ta, _mm_add_ps(_mm_loadu_ps(d + 2 * ta), a2));
            _mm_storeu_ps(d + 3 * ta, _mm_add_ps(_mm_loadu_ps(d + 3 * ta), a3));
          } else {
            __m128 a0 = _mm_loadu_ps(d), a1 = _mm_loadu_ps(d + ta), a2 = _mm_loadu_ps(d + 2 * ta),
                   a3 = _mm_loadu_ps(d + 3 * ta);
            _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
            _mm_storeu_ps(pr, a0);
            _mm_storeu_ps(pr + step, a1);
            _mm_storeu_ps(pr + 2 * step, a2);
            _mm_storeu_ps(pr + 3 * step, a3);
          }
        }
      }
#endif
      for (int64_t x = 0; x < xs; ++x) {
        for (int64_t rr = r; rr < n; ++rr) one(row + x * ta, band + x, rr);
      }
    }
  });
  return true;
}

/// A product buffer (B n, L) per block height, reused across blocks and heads: small enough to
/// stay in cache between its product and its use (a (B, heads, Ta, L) buffer went through
/// memory three times more).
class BandBuffers {
 public:
  BandBuffers(int64_t batch, int64_t tb, torch::TensorOptions options, bool zeroed)
      : batch_(batch), tb_(tb), options_(options), zeroed_(zeroed) {}
  torch::Tensor& get(int64_t n) {
    auto it = buffers_.find(n);
    if (it == buffers_.end()) {
      const std::vector<int64_t> shape{batch_ * n, n + tb_ - 1};
      it = buffers_
               .emplace(n, zeroed_ ? torch::zeros(shape, options_) : torch::empty(shape, options_))
               .first;
    }
    return it->second;
  }

 private:
  int64_t batch_, tb_;
  torch::TensorOptions options_;
  bool zeroed_;
  std::map<int64_t, torch::Tensor> buffers_;
};

/// scores += the band product a . rel (relative_band_product), or its transpose (scores
/// (B, heads, Tb, Ta): the p2c term, computed as [j, i]), in place. Per head and block of
/// query rows (BandBlock): one product (B n, Hd) x (Hd, L) into a cached buffer, then one
/// strided add of its band.
class RelativeBandAdd : public torch::autograd::Function<RelativeBandAdd> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor scores,
                               const torch::Tensor& a, const torch::Tensor& rel, bool transposed,
                               int64_t block) {
    const int64_t batch = a.size(0), heads = a.size(1), ta = a.size(2);
    const int64_t tb = rel.size(1) - ta + 1;
    const torch::Tensor rows = to_block_rows(a, block);  // (heads, B Ta, Hd)
    BandBuffers buffers(batch, tb, a.options(), /*zeroed=*/false);
    for (int64_t h = 0; h < heads; ++h) {
      for (const BandBlock& blk : band_blocks(ta, block)) {
        torch::Tensor& p = buffers.get(blk.n);
        const torch::Tensor window = rel[h].narrow(0, ta - blk.start - blk.n, p.size(1));
        torch::mm_out(p, rows[h].narrow(0, batch * blk.start, batch * blk.n), window.t());
        if (!transposed || !transposed_band_loop(scores, p, h, blk, batch, /*add=*/true)) {
          band_target(scores, h, blk, transposed).add_(band_view(p, batch, blk.n, tb));
        }
      }
    }
    ctx->mark_dirty({scores});
    ctx->save_for_backward({rows, rel});
    ctx->saved_data["transposed"] = transposed;
    ctx->saved_data["block"] = block;
    ctx->saved_data["batch"] = batch;
    return scores;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& rows = saved[0];  // (heads, B Ta, Hd)
    const torch::Tensor& rel = saved[1];
    const bool transposed = ctx->saved_data["transposed"].toBool();
    const int64_t block = ctx->saved_data["block"].toInt();
    const torch::Tensor& grad = grads[0];
    const int64_t heads = rows.size(0), batch = ctx->saved_data["batch"].toInt();
    const int64_t ta = rows.size(1) / batch;
    const int64_t tb = rel.size(1) - ta + 1;
    torch::Tensor grad_rows = torch::empty_like(rows);
    torch::Tensor grad_rel = torch::zeros_like(rel, torch::MemoryFormat::Contiguous);
    // Off the band the buffers stay 0: only the band is ever written.
    BandBuffers buffers(batch, tb, rows.options(), /*zeroed=*/true);
    for (int64_t h = 0; h < heads; ++h) {
      for (const BandBlock& blk : band_blocks(ta, block)) {
        torch::Tensor& p = buffers.get(blk.n);
        if (!transposed || !transposed_band_loop(grad, p, h, blk, batch, /*add=*/false)) {
          band_view(p, batch, blk.n, tb).copy_(band_target(grad, h, blk, transposed));
        }
        const int64_t s = ta - blk.start - blk.n;
        const torch::Tensor block_rows = rows[h].narrow(0, batch * blk.start, batch * blk.n);
        torch::Tensor block_grad = grad_rows[h].narrow(0, batch * blk.start, batch * blk.n);
        torch::mm_out(block_grad, p, rel[h].narrow(0, s, p.size(1)));
        grad_rel[h].narrow(0, s, p.size(1)).addmm_(p.t(), block_rows);
      }
    }
    return {grad, from_block_rows(grad_rows, batch, block), grad_rel, torch::Tensor(),
            torch::Tensor()};
  }
};

/// scores (B, heads, Ta, Tb) += relative_band_product(a, rel), or scores (B, heads, Tb, Ta) +=
/// its transpose; in place, returns scores.
torch::Tensor relative_band_add(torch::Tensor scores, const torch::Tensor& a,
                                const torch::Tensor& rel, bool transposed, int64_t block = 32) {
  return RelativeBandAdd::apply(std::move(scores), a, rel.contiguous(), transposed, block);
}

}  // namespace

void deberta_init_weights(torch::nn::Module& module, double std) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) init_deberta_module(*m, std);
}

void check_deberta_options(const DebertaOptions& o) {
  TORCH_CHECK(o.vocab_size() > 0, "DeBERTa: vocab_size must be positive, got ", o.vocab_size());
  TORCH_CHECK(o.hidden_size() > 0 && o.num_heads() > 0 && o.hidden_size() % o.num_heads() == 0,
              "DeBERTa: hidden_size (", o.hidden_size(), ") must be divisible by num_heads (",
              o.num_heads(), ")");
  TORCH_CHECK(o.num_layers() >= 0, "DeBERTa: num_layers must be >= 0, got ", o.num_layers());
  TORCH_CHECK(o.intermediate_size() > 0, "DeBERTa: intermediate_size must be positive");
  TORCH_CHECK(o.max_position_embeddings() > 0, "DeBERTa: max_position_embeddings must be positive");
  TORCH_CHECK(o.type_vocab_size() >= 0, "DeBERTa: type_vocab_size must be >= 0");
  TORCH_CHECK(o.dropout() >= 0 && o.dropout() < 1, "DeBERTa: dropout must be in [0, 1)");
  TORCH_CHECK(o.attention_dropout() >= 0 && o.attention_dropout() < 1,
              "DeBERTa: attention_dropout must be in [0, 1)");
  TORCH_CHECK(o.pad_id() >= 0 && o.pad_id() < o.vocab_size(), "DeBERTa: pad_id (", o.pad_id(),
              ") must be in [0, vocab_size)");
  bert_activation(torch::zeros({1}), o.hidden_act());  // rejects unknown names early
  deberta_position_terms(o.pos_att_type());
  TORCH_CHECK(o.norm_rel_ebd() == "layer_norm" || o.norm_rel_ebd() == "none",
              "DeBERTa: norm_rel_ebd must be layer_norm or none, got '", o.norm_rel_ebd(), "'");
  if (o.relative_attention() && o.position_buckets() > 0) {
    TORCH_CHECK(o.position_buckets() >= 2, "DeBERTa: position_buckets must be >= 2, got ",
                o.position_buckets());
    const int64_t max_relative =
        o.max_relative_positions() < 1 ? o.max_position_embeddings() : o.max_relative_positions();
    TORCH_CHECK(o.position_buckets() <= max_relative, "DeBERTa: position_buckets (",
                o.position_buckets(), ") must not exceed max_relative_positions (", max_relative,
                "; max_position_embeddings when < 1)");
  }
  TORCH_CHECK(o.conv_kernel_size() >= 0, "DeBERTa: conv_kernel_size must be >= 0, got ",
              o.conv_kernel_size());
  if (o.conv_kernel_size() > 0) {
    TORCH_CHECK(o.conv_kernel_size() % 2 == 1, "DeBERTa: conv_kernel_size must be odd, got ",
                o.conv_kernel_size());
    TORCH_CHECK(o.conv_groups() > 0 && o.hidden_size() % o.conv_groups() == 0,
                "DeBERTa: hidden_size (", o.hidden_size(), ") must be divisible by conv_groups (",
                o.conv_groups(), ")");
    bert_activation(torch::zeros({1}), o.conv_act());
  }
  bert_activation(torch::zeros({1}), o.pooler_hidden_act());
  TORCH_CHECK(o.pooler_dropout() >= 0 && o.pooler_dropout() < 1,
              "DeBERTa: pooler_dropout must be in [0, 1)");
}

DebertaPositionTerms deberta_position_terms(const std::string& pos_att_type) {
  DebertaPositionTerms terms;
  std::stringstream s(pos_att_type);
  std::string term;
  while (std::getline(s, term, '|')) {
    if (term == "c2p") {
      terms.c2p = true;
    } else if (term == "p2c") {
      terms.p2c = true;
    } else {
      TORCH_CHECK(term.empty(), "DeBERTa: pos_att_type has an unknown term '", term,
                  "' (expected c2p and/or p2c, e.g. 'p2c|c2p')");
    }
  }
  return terms;
}

torch::Tensor deberta_relative_position(int64_t query_size, int64_t key_size, int64_t bucket_size,
                                        int64_t max_position, torch::Device device) {
  // One bucket per distance -(Tk - 1) .. Tq - 1, then the (Tq, Tk) matrix by lookup.
  const bool bucketed = bucket_size > 0 && max_position > 0;
  std::vector<int64_t> table(std::max<int64_t>(query_size + key_size - 1, 0));
  for (int64_t r = -(key_size - 1); r < query_size; ++r) {
    table[r + key_size - 1] = bucketed ? log_bucket(r, bucket_size, max_position) : r;
  }
  torch::Tensor out = torch::empty({1, query_size, key_size}, torch::kInt64);
  auto a = out.accessor<int64_t, 3>();
  for (int64_t i = 0; i < query_size; ++i) {
    for (int64_t j = 0; j < key_size; ++j) a[0][i][j] = table[i - j + key_size - 1];
  }
  return out.to(device);
}

torch::Tensor deberta_attention_mask(const torch::Tensor& attention_mask) {
  TORCH_CHECK(attention_mask.dim() == 2, "DeBERTa: attention_mask must be (B, T), got ",
              attention_mask.sizes());
  const torch::Tensor m = attention_mask.ne(0);
  if (m.all().item<bool>()) return {};
  return (m.unsqueeze(2) & m.unsqueeze(1)).unsqueeze(1);  // (B, 1, T, T)
}

// ---------------------------------------------------------------- DebertaEmbeddings

DebertaEmbeddingsImpl::DebertaEmbeddingsImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DebertaEmbeddingsImpl::reset() {
  check_deberta_options(options);
  const int64_t h = options.hidden_size();
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(
          torch::nn::EmbeddingOptions(options.vocab_size(), h).padding_idx(options.pad_id())));
  if (options.position_biased_input() || options.absolute_position_embeddings()) {
    position_embeddings = register_module(
        "position_embeddings", torch::nn::Embedding(options.max_position_embeddings(), h));
  }
  if (options.type_vocab_size() > 0) {
    token_type_embeddings = register_module("token_type_embeddings",
                                            torch::nn::Embedding(options.type_vocab_size(), h));
  }
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
  dropout = register_module("dropout", Dropout(options.dropout()));
  position_ids = register_buffer(
      "position_ids", torch::arange(options.max_position_embeddings()).unsqueeze(0));  // (1, P)
}

torch::Tensor DebertaEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                             const torch::Tensor& token_type_ids,
                                             const torch::Tensor& mask,
                                             const torch::Tensor& inputs_embeds) {
  const int64_t t = input_ids.size(1);
  torch::Tensor x =
      inputs_embeds.defined() ? inputs_embeds : word_embeddings(input_ids);  // (B, T, H)
  if (options.position_biased_input()) {
    x = x + position_embeddings(position_ids.slice(1, 0, t));  // + (1, T, H)
  }
  if (token_type_embeddings) {
    x = token_type_ids.defined() ? x + token_type_embeddings(token_type_ids)
                                 : x + token_type_embeddings->weight[0];
  }
  if (layer_norm_input_hook) x = layer_norm_input_hook(x);
  x = layer_norm(x);
  if (mask.defined()) x = x * mask.unsqueeze(2).to(x.scalar_type());  // padded rows 0
  return dropout(x);
}

// ---------------------------------------------------------------- attention

torch::Tensor relative_band_product(const torch::Tensor& a, const torch::Tensor& rel, int64_t block,
                                    bool transposed) {
  TORCH_CHECK(a.dim() == 4, "relative_band_product: a must be (B, heads, Ta, Hd), got ", a.sizes());
  TORCH_CHECK(rel.dim() == 3 && rel.size(0) == a.size(1) && rel.size(2) == a.size(3) &&
                  rel.size(1) >= a.size(2),
              "relative_band_product: rel must be (", a.size(1), ", Ta + Tb - 1, ", a.size(3),
              ") with Tb >= 1, got ", rel.sizes());
  TORCH_CHECK(block > 0, "relative_band_product: block must be positive, got ", block);
  const int64_t ta = a.size(2), tb = rel.size(1) - ta + 1;
  const std::vector<int64_t> shape = transposed
                                         ? std::vector<int64_t>{a.size(0), a.size(1), tb, ta}
                                         : std::vector<int64_t>{a.size(0), a.size(1), ta, tb};
  return relative_band_add(torch::zeros(shape, a.options()), a, rel, transposed, block);
}

DisentangledSelfAttentionImpl::DisentangledSelfAttentionImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DisentangledSelfAttentionImpl::reset() {
  check_deberta_options(options);
  const int64_t h = options.hidden_size();
  terms = options.relative_attention() ? deberta_position_terms(options.pos_att_type())
                                       : DebertaPositionTerms{};
  att_span = attention_span(options);
  query_proj = register_module("query_proj", LoRALinear(h, h));
  key_proj = register_module("key_proj", LoRALinear(h, h));
  value_proj = register_module("value_proj", LoRALinear(h, h));
  if (options.relative_attention()) {
    pos_dropout = register_module("pos_dropout", Dropout(options.dropout()));
    if (!options.share_att_key()) {
      if (terms.c2p) pos_key_proj = register_module("pos_key_proj", LoRALinear(h, h));
      if (terms.p2c) pos_query_proj = register_module("pos_query_proj", LoRALinear(h, h));
    }
  }
  dropout = register_module("dropout", Dropout(options.attention_dropout()));
}

torch::Tensor DisentangledSelfAttentionImpl::forward(
    const torch::Tensor& hidden, const torch::Tensor& mask, const torch::Tensor& query_states,
    const torch::Tensor& relative_pos, const torch::Tensor& rel_embeddings, torch::Tensor* probs) {
  const torch::Tensor& queries = query_states.defined() ? query_states : hidden;
  const int64_t b = hidden.size(0), tk = hidden.size(1), tq = queries.size(1);
  const int64_t heads = options.num_heads(), hd = options.hidden_size() / heads;
  auto split_heads = [&](const torch::Tensor& x) {
    return x.view({x.size(0), x.size(1), heads, hd}).transpose(1, 2);  // (B, heads, T, Hd)
  };
  // One scale for all terms: sqrt(Hd * (1 + number of position terms)), applied to the queries
  // (q for c2p, Qr for p2c) rather than to the (B, heads, Tq, Tk) scores.
  const int64_t factor = 1 + static_cast<int64_t>(terms.c2p) + static_cast<int64_t>(terms.p2c);
  const double scale = std::sqrt(static_cast<double>(hd * factor));
  const torch::Tensor q = split_heads(query_proj(queries)).div(scale);  // (B, heads, Tq, Hd)
  const torch::Tensor k = split_heads(key_proj(hidden));                // (B, heads, Tk, Hd)
  const torch::Tensor v = split_heads(value_proj(hidden));              // (B, heads, Tk, Hd)
  // The position terms are added in place: one (B, heads, Tq, Tk) buffer.
  torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2));  // (B, heads, Tq, Tk)

  if ((terms.c2p || terms.p2c) && tq > 0 && tk > 0) {
    TORCH_CHECK(relative_pos.defined() && rel_embeddings.defined(),
                "DisentangledSelfAttention: relative attention needs relative_pos and "
                "rel_embeddings");
    TORCH_CHECK(relative_pos.dim() == 3 && relative_pos.size(1) == tq && relative_pos.size(2) == tk,
                "DisentangledSelfAttention: relative_pos must be (1, ", tq, ", ", tk, "), got ",
                relative_pos.sizes());
    TORCH_CHECK(rel_embeddings.size(0) >= 2 * att_span,
                "DisentangledSelfAttention: rel_embeddings has ", rel_embeddings.size(0),
                " rows, needs 2 * ", att_span);
    // Only rows lo..hi of the 2S relative embeddings are ever indexed (the bucket function is
    // monotonic: its extremes are at i - j = -(Tk - 1) and Tq - 1), so only those are
    // projected and multiplied: a short input touches few of the 2S rows. Projected once per
    // layer for the whole batch.
    const int64_t max_relative = options.max_relative_positions() < 1
                                     ? options.max_position_embeddings()
                                     : options.max_relative_positions();
    auto row = [&](int64_t r) {
      const int64_t bucket = options.position_buckets() > 0
                                 ? log_bucket(r, options.position_buckets(), max_relative)
                                 : r;
      return std::clamp<int64_t>(bucket + att_span, 0, 2 * att_span - 1);
    };
    const int64_t lo = row(-(tk - 1)), hi = row(tq - 1), rows = hi - lo + 1;
    const torch::Tensor r = pos_dropout(rel_embeddings.slice(0, lo, hi + 1));  // (R, H)
    auto split_positions = [&](const torch::Tensor& x) {
      return x.view({rows, heads, hd}).transpose(0, 1);  // (heads, R, Hd)
    };
    auto rows_of = [&](const torch::Tensor& bucketed) {
      return torch::clamp(bucketed + att_span, 0, 2 * att_span - 1).sub_(lo);
    };
    // relative_pos is a function of i - j (deberta_relative_position): then each term is a
    // band product with the relative rows in distance order (relative_band_product), in place
    // of a product with the R rows and a gather over (B, heads, Tq, Tk) (whose scatter-add
    // backward cost more than the products). Distances d = i - j run over [-(Tk - 1), Tq - 1].
    const torch::Tensor rel = relative_pos[0];  // (Tq, Tk)
    const torch::Tensor by_distance =           // bucket of d = n - (Tk - 1), n = 0..Tq+Tk-2
        torch::cat({rel[0].flip(0), rel.slice(0, 1).select(1, 0)});
    const torch::Tensor distance = torch::arange(tq, rel.options()).unsqueeze(1) -
                                   torch::arange(tk, rel.options()).unsqueeze(0) + (tk - 1);
    const bool toeplitz = torch::equal(by_distance.index({distance}), rel);
    if (terms.c2p) {
      const torch::Tensor kr =
          split_positions(options.share_att_key() ? key_proj(r) : pos_key_proj(r));
      if (toeplitz) {
        // Row m of the distance-ordered keys holds d = Tq - 1 - m: q_i . Kr[idx(i - j)] is
        // q_i . rows[Tq - 1 - i + j].
        scores = relative_band_add(scores, q, kr.index_select(1, rows_of(by_distance.flip(0))),
                                   /*transposed=*/false);
      } else {
        const torch::Tensor c2p = torch::matmul(q, kr.transpose(-1, -2));  // (B, heads, Tq, R)
        scores.add_(torch::gather(c2p, -1, rows_of(rel).expand({b, heads, tq, tk})));
      }
    }
    if (terms.p2c) {
      const torch::Tensor qr =
          split_positions(options.share_att_key() ? query_proj(r) : pos_query_proj(r)).div(scale);
      if (toeplitz) {
        // Row n holds d = n - (Tk - 1): k_j . Qr[idx(i - j)] is k_j . rows[Tk - 1 - j + i],
        // computed as [j, i] and added transposed.
        // Blocks of 128 keys: the transposed add reads and writes 512-byte runs of each score
        // row, where 32 (128 bytes) ran about 7% slower per step at T = 512 (the block products
        // then do 1.25x the band's work instead of 1.06x).
        scores = relative_band_add(scores, k, qr.index_select(1, rows_of(by_distance)),
                                   /*transposed=*/true, /*block=*/128);
      } else {
        const torch::Tensor p2c = torch::matmul(k, qr.transpose(-1, -2));  // (B, heads, Tk, R)
        // k_j . Qr[idx(i, j)], gathered as [j, i] then transposed.
        scores.add_(
            torch::gather(p2c, -1, rows_of(rel).t().expand({b, heads, tk, tq})).transpose(-1, -2));
      }
    }
  }

  // XSoftmax: masked scores excluded, then zeroed, so a padded query row is all 0. A masked
  // score's probability underflows to exactly 0 unless its whole row is masked, so only such
  // rows need zeroing: they are zeroed in the (B, heads, Tq, Hd) context, not in the
  // (B, heads, Tq, Tk) probabilities. The fill stays out of autograd: the softmax's gradient
  // is 0 where its output is, and a zeroed context row passes back none; the gradients are
  // those of the masked_fill / softmax / masked_fill chain.
  torch::Tensor masked, empty_rows;  // (B, 1, Tq, Tk), (B, 1, Tq, 1)
  if (mask.defined()) {
    masked = mask.logical_not();
    empty_rows = masked.all(-1, /*keepdim=*/true);
    torch::NoGradGuard no_grad;
    scores.masked_fill_(masked, lowest_of(scores.scalar_type()));
  }
  const torch::Tensor p = torch::softmax(scores, -1);  // (B, heads, Tq, Tk)
  if (probs) *probs = masked.defined() ? p.masked_fill(masked, 0) : p;
  torch::Tensor context = torch::matmul(dropout(p), v);  // (B, heads, Tq, Hd)
  if (empty_rows.defined()) context = context.masked_fill(empty_rows, 0);
  return context.transpose(1, 2).reshape({b, tq, heads * hd});  // (B, Tq, H)
}

DebertaResidualOutputImpl::DebertaResidualOutputImpl(DebertaOptions options_, int64_t in_features_)
    : options(std::move(options_)), in_features(in_features_) {
  reset();
}

void DebertaResidualOutputImpl::reset() {
  dense = register_module("dense", LoRALinear(in_features, options.hidden_size()));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
  dropout = register_module("dropout", Dropout(options.dropout()));
}

torch::Tensor DebertaResidualOutputImpl::forward(const torch::Tensor& x,
                                                 const torch::Tensor& residual) {
  return layer_norm(dropout(dense(x)) + residual);
}

DebertaAttentionImpl::DebertaAttentionImpl(DebertaOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaAttentionImpl::reset() {
  self_attention = register_module("self", DisentangledSelfAttention(options));
  output = register_module("output", DebertaResidualOutput(options, options.hidden_size()));
}

torch::Tensor DebertaAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                                            const torch::Tensor& query_states,
                                            const torch::Tensor& relative_pos,
                                            const torch::Tensor& rel_embeddings,
                                            torch::Tensor* probs) {
  const torch::Tensor context =
      self_attention->forward(hidden, mask, query_states, relative_pos, rel_embeddings, probs);
  return output(context, query_states.defined() ? query_states : hidden);
}

DebertaIntermediateImpl::DebertaIntermediateImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DebertaIntermediateImpl::reset() {
  dense = register_module("dense", LoRALinear(options.hidden_size(), options.intermediate_size()));
}

torch::Tensor DebertaIntermediateImpl::forward(const torch::Tensor& x) {
  return bert_activation(dense(x), options.hidden_act());
}

DebertaLayerImpl::DebertaLayerImpl(DebertaOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaLayerImpl::reset() {
  attention = register_module("attention", DebertaAttention(options));
  intermediate = register_module("intermediate", DebertaIntermediate(options));
  output = register_module("output", DebertaResidualOutput(options, options.intermediate_size()));
}

torch::Tensor DebertaLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& mask,
                                        const torch::Tensor& query_states,
                                        const torch::Tensor& relative_pos,
                                        const torch::Tensor& rel_embeddings, torch::Tensor* probs) {
  const torch::Tensor a =
      attention->forward(hidden, mask, query_states, relative_pos, rel_embeddings, probs);
  return output(intermediate(a), a);  // (B, Tq, H)
}

// ---------------------------------------------------------------- nGiE

DebertaConvLayerImpl::DebertaConvLayerImpl(DebertaOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaConvLayerImpl::reset() {
  const int64_t h = options.hidden_size(), k = options.conv_kernel_size();
  conv = register_module(
      "conv",
      torch::nn::Conv1d(
          torch::nn::Conv1dOptions(h, h, k).padding((k - 1) / 2).groups(options.conv_groups())));
  layer_norm = register_module("LayerNorm", make_layer_norm(options));
  dropout = register_module("dropout", Dropout(options.dropout()));
}

torch::Tensor DebertaConvLayerImpl::forward(const torch::Tensor& input,
                                            const torch::Tensor& residual,
                                            const torch::Tensor& mask) {
  torch::Tensor c = conv(input.transpose(1, 2)).transpose(1, 2);  // (B, T, H)
  if (mask.defined()) c = c.masked_fill(mask.eq(0).unsqueeze(2), 0);
  c = bert_activation(dropout(c), options.conv_act());
  torch::Tensor out = layer_norm(residual + c);
  if (mask.defined()) out = out * mask.unsqueeze(2).to(out.scalar_type());
  return out;
}

// ---------------------------------------------------------------- DebertaEncoder

DebertaEncoderImpl::DebertaEncoderImpl(DebertaOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaEncoderImpl::reset() {
  check_deberta_options(options);
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) layer->push_back(DebertaLayer(options));
  if (options.relative_attention()) {
    rel_embeddings = register_module(
        "rel_embeddings", torch::nn::Embedding(2 * attention_span(options), options.hidden_size()));
    if (options.norm_rel_ebd() == "layer_norm") {
      layer_norm = register_module("LayerNorm", make_layer_norm(options));
    }
  }
  if (options.conv_kernel_size() > 0) conv = register_module("conv", DebertaConvLayer(options));
}

torch::Tensor DebertaEncoderImpl::rel_embedding() {
  if (!rel_embeddings) return {};
  return layer_norm ? layer_norm(rel_embeddings->weight) : rel_embeddings->weight;  // (2S, H)
}

torch::Tensor DebertaEncoderImpl::relative_position(int64_t query_size, int64_t key_size,
                                                    torch::Device device) {
  const int64_t max_relative = options.max_relative_positions() < 1
                                   ? options.max_position_embeddings()
                                   : options.max_relative_positions();
  return deberta_relative_position(query_size, key_size, options.position_buckets(), max_relative,
                                   device);
}

// ---------------------------------------------------------------- DebertaModel

DebertaModelImpl::DebertaModelImpl(DebertaOptions options_) : options(std::move(options_)) {
  reset();
}

void DebertaModelImpl::reset() {
  check_deberta_options(options);
  embeddings = register_module("embeddings", DebertaEmbeddings(options));
  encoder = register_module("encoder", DebertaEncoder(options));
  reset_parameters();
}

void DebertaModelImpl::reset_parameters(double initializer_range) {
  deberta_init_weights(*this, initializer_range);
  torch::NoGradGuard no_grad;
  embeddings->word_embeddings->weight[options.pad_id()].zero_();
}

DebertaModelOutput DebertaModelImpl::forward(const torch::Tensor& input_ids,
                                             const torch::Tensor& attention_mask,
                                             const torch::Tensor& token_type_ids,
                                             bool output_hidden_states, bool output_attentions) {
  check_inputs(input_ids, attention_mask, token_type_ids);
  return encode(embeddings(input_ids, token_type_ids, attention_mask), attention_mask,
                output_hidden_states, output_attentions);
}

void DebertaModelImpl::check_inputs(const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask,
                                    const torch::Tensor& token_type_ids) const {
  TORCH_CHECK(input_ids.dim() == 2, "DebertaModel: input_ids must be (B, T), got ",
              input_ids.sizes());
  const int64_t t = input_ids.size(1);
  TORCH_CHECK(t <= options.max_position_embeddings(), "DebertaModel: sequence length ", t,
              " exceeds max_position_embeddings (", options.max_position_embeddings(), ")");
  if (input_ids.numel() > 0) {
    const auto [lo, hi] = torch::aminmax(input_ids);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < options.vocab_size(),
                "DebertaModel: token ids must be in [0, ", options.vocab_size(), "), got [",
                lo.item<int64_t>(), ", ", hi.item<int64_t>(), "]");
  }
  if (token_type_ids.defined()) {
    TORCH_CHECK(token_type_ids.sizes() == input_ids.sizes(), "DebertaModel: token_type_ids ",
                token_type_ids.sizes(), " must match input_ids ", input_ids.sizes());
    if (token_type_ids.numel() > 0 && options.type_vocab_size() > 0) {
      const auto [lo, hi] = torch::aminmax(token_type_ids);
      TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < options.type_vocab_size(),
                  "DebertaModel: token_type_ids must be in [0, ", options.type_vocab_size(),
                  "), got [", lo.item<int64_t>(), ", ", hi.item<int64_t>(), "]");
    }
  }
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "DebertaModel: attention_mask ",
                attention_mask.sizes(), " must match input_ids ", input_ids.sizes());
  }
}

DebertaModelOutput DebertaModelImpl::encode(const torch::Tensor& embedding_output,
                                            const torch::Tensor& attention_mask,
                                            bool output_hidden_states, bool output_attentions) {
  const int64_t t = embedding_output.size(1);
  DebertaModelOutput out;
  torch::Tensor h = embedding_output;  // (B, T, H)
  const torch::Tensor mask =
      attention_mask.defined() ? deberta_attention_mask(attention_mask) : torch::Tensor();
  const torch::Tensor rel_embeddings = encoder->rel_embedding();  // (2S, H) or undefined
  if (options.relative_attention()) {
    out.relative_pos = encoder->relative_position(t, t, h.device());  // (1, T, T)
  }
  if (output_hidden_states) out.hidden_states.push_back(h);
  const torch::Tensor first_input = h;
  int64_t i = 0;
  for (const auto& layer : *encoder->layer) {
    torch::Tensor probs;
    h = layer->as<DebertaLayer>()->forward(h, mask, {}, out.relative_pos, rel_embeddings,
                                           output_attentions ? &probs : nullptr);
    // nGiE: the convolution of the first layer's input joins its output.
    if (i++ == 0 && encoder->conv) h = encoder->conv(first_input, h, attention_mask);
    if (output_hidden_states) out.hidden_states.push_back(h);
    if (output_attentions) out.attentions.push_back(probs);
  }
  out.last_hidden_state = h;
  return out;
}

void DebertaModelImpl::pretty_print(std::ostream& stream) const {
  stream << "DebertaModel(vocab_size=" << options.vocab_size()
         << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
         << ", num_heads=" << options.num_heads()
         << ", intermediate_size=" << options.intermediate_size()
         << ", hidden_act=" << options.hidden_act() << ", dropout=" << options.dropout()
         << ", attention_dropout=" << options.attention_dropout()
         << ", max_position_embeddings=" << options.max_position_embeddings()
         << ", type_vocab_size=" << options.type_vocab_size()
         << ", layer_norm_eps=" << options.layer_norm_eps() << ", pad_id=" << options.pad_id()
         << ", relative_attention=" << std::boolalpha << options.relative_attention()
         << ", max_relative_positions=" << options.max_relative_positions()
         << ", position_buckets=" << options.position_buckets()
         << ", pos_att_type=" << options.pos_att_type()
         << ", share_att_key=" << options.share_att_key()
         << ", norm_rel_ebd=" << options.norm_rel_ebd()
         << ", position_biased_input=" << options.position_biased_input()
         << ", conv_kernel_size=" << options.conv_kernel_size();
  if (options.conv_kernel_size() > 0) {
    stream << ", conv_act=" << options.conv_act() << ", conv_groups=" << options.conv_groups();
  }
  stream << ")";
}

// ---------------------------------------------------------------- MLM head

BertOptions deberta_head_options(const DebertaOptions& o) {
  return BertOptions()
      .vocab_size(o.vocab_size())
      .hidden_size(o.hidden_size())
      .num_heads(1)
      .hidden_act(o.hidden_act())
      .layer_norm_eps(o.layer_norm_eps())
      .pad_id(o.pad_id());
}

DebertaOnlyMLMHeadImpl::DebertaOnlyMLMHeadImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DebertaOnlyMLMHeadImpl::reset() {
  predictions = register_module("predictions", BertLMHead(deberta_head_options(options)));
}

DebertaForMaskedLMImpl::DebertaForMaskedLMImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DebertaForMaskedLMImpl::reset() {
  deberta = register_module("deberta", DebertaModel(options));
  cls = register_module("cls", DebertaOnlyMLMHead(options));
  reset_parameters();
}

void DebertaForMaskedLMImpl::reset_parameters(double initializer_range) {
  deberta->reset_parameters(initializer_range);
  deberta_init_weights(*cls, initializer_range);
  torch::NoGradGuard no_grad;
  cls->predictions->bias.zero_();
}

torch::Tensor DebertaForMaskedLMImpl::mlm_logits(const torch::Tensor& hidden) {
  return cls->predictions->forward(hidden, deberta->embeddings->word_embeddings->weight);
}

DebertaMaskedLMOutput DebertaForMaskedLMImpl::forward(const torch::Tensor& input_ids,
                                                      const torch::Tensor& attention_mask,
                                                      const torch::Tensor& token_type_ids,
                                                      bool output_hidden_states,
                                                      bool output_attentions) {
  DebertaMaskedLMOutput out;
  out.deberta = deberta->forward(input_ids, attention_mask, token_type_ids, output_hidden_states,
                                 output_attentions);
  out.logits = mlm_logits(out.deberta.last_hidden_state);  // (B, T, V)
  return out;
}

void DebertaForMaskedLMImpl::pretty_print(std::ostream& stream) const {
  stream << "DebertaForMaskedLM(";
  deberta->pretty_print(stream);
  stream << ")";
}

// ---------------------------------------------------------------- sequence classification

DebertaContextPoolerImpl::DebertaContextPoolerImpl(DebertaOptions options_)
    : options(std::move(options_)) {
  reset();
}

void DebertaContextPoolerImpl::reset() {
  check_deberta_options(options);
  dense = register_module("dense", LoRALinear(options.hidden_size(), options.hidden_size()));
  dropout = register_module("dropout", Dropout(options.pooler_dropout()));
}

torch::Tensor DebertaContextPoolerImpl::forward(const torch::Tensor& hidden) {
  const torch::Tensor first = dropout(hidden.select(1, 0));  // (B, H)
  return bert_activation(dense(first), options.pooler_hidden_act());
}

DebertaClassifierImpl::DebertaClassifierImpl(DebertaOptions options_, int64_t num_labels_,
                                             double classifier_dropout_)
    : options(std::move(options_)),
      num_labels(num_labels_),
      classifier_dropout(classifier_dropout_) {
  reset();
}

void DebertaClassifierImpl::reset() {
  TORCH_CHECK(num_labels > 0, "DebertaClassifier: num_labels must be positive, got ", num_labels);
  deberta = register_module("deberta", DebertaModel(options));
  pooler = register_module("pooler", DebertaContextPooler(options));
  dropout = register_module(
      "dropout",
      Dropout(classifier_dropout >= 0 ? classifier_dropout : options.dropout()));
  classifier = register_module("classifier", LoRALinear(options.hidden_size(), num_labels));
  reset_parameters();
}

void DebertaClassifierImpl::reset_parameters(double initializer_range) {
  deberta->reset_parameters(initializer_range);
  deberta_init_weights(*pooler, initializer_range);
  torch::NoGradGuard no_grad;
  classifier->weight.normal_(0, initializer_range);
  classifier->bias.zero_();
}

torch::Tensor DebertaClassifierImpl::forward(const torch::Tensor& input_ids,
                                             const torch::Tensor& attention_mask,
                                             const torch::Tensor& token_type_ids,
                                             DebertaModelOutput* out, bool output_hidden_states,
                                             bool output_attentions) {
  DebertaModelOutput o = deberta->forward(input_ids, attention_mask, token_type_ids,
                                          output_hidden_states, output_attentions);
  torch::Tensor features = pooler(o.last_hidden_state);  // (B, H)
  if (features_hook) features = features_hook(features);
  torch::Tensor logits = classifier(dropout(features));  // (B, labels)
  if (out) *out = std::move(o);
  return logits;
}

void DebertaClassifierImpl::pretty_print(std::ostream& stream) const {
  stream << "DebertaClassifier(num_labels=" << num_labels
         << ", pooler_hidden_act=" << options.pooler_hidden_act()
         << ", pooler_dropout=" << options.pooler_dropout() << ", ";
  deberta->pretty_print(stream);
  stream << ")";
}

}  // namespace nlpkit
