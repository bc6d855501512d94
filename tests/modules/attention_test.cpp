#include "modules/attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double atol = 1e-5) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(actual, expected, /*rtol=*/1e-4, atol))
      << "max abs difference " << (actual - expected).abs().max().item<double>();
}

/// Every parameter of `module` has a non-zero gradient after `loss.backward()`.
void expect_gradients(torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

// ---------------------------------------------------------------------------------------------
// Score functions

TEST(AttentionScorerTest, ShapesKeysAndPrintForEveryScore) {
  const std::vector<std::vector<std::string>> keys = {
      {},
      {},
      {"linear.weight"},
      {},
      {"linear.weight", "linear.bias", "v.weight"},
      {"query_proj.weight", "key_proj.weight", "key_proj.bias", "v.weight"}};
  for (size_t i = 0; i < attention_score_names().size(); ++i) {
    const std::string& name = attention_score_names()[i];
    AttentionScorer scorer(AttentionScorerOptions(6, 6).score(name));
    EXPECT_EQ(scorer(torch::randn({2, 3, 6}), torch::randn({2, 5, 6})).sizes(),
              (std::vector<int64_t>{2, 3, 5}))
        << name;
    EXPECT_EQ(parameter_keys(*scorer), keys[i]) << name;
    EXPECT_TRUE(Contains(printed(*scorer), "score=" + name));
  }
  EXPECT_EQ(printed(*AttentionScorer(AttentionScorerOptions(8, 6).score("additive"))),
            "AttentionScorer(query_size=8, key_size=6, score=additive, hidden_size=6)");
}

TEST(AttentionScorerTest, ScoresMatchTheirFormulas) {
  const torch::Tensor q = torch::randn({2, 3, 4});
  const torch::Tensor k = torch::randn({2, 5, 4});
  const auto score = [&](const std::string& name) {
    return AttentionScorer(AttentionScorerOptions(4, 4).score(name).hidden_size(7));
  };
  expect_close(score("dot")(q, k), torch::einsum("btd,bsd->bts", {q, k}));
  expect_close(score("scaled_dot")(q, k), torch::einsum("btd,bsd->bts", {q, k}) / 2.0);
  AttentionScorer general = score("general");
  expect_close(general(q, k), torch::einsum("btd,de,bse->bts", {q, general->linear->weight, k}));
  expect_close(score("cosine")(q, k),
               torch::cosine_similarity(q.unsqueeze(2), k.unsqueeze(1), /*dim=*/-1));
  AttentionScorer concat = score("concat");
  {  // v^T tanh(W [q; k] + b), one pair at a time
    const torch::Tensor qk = torch::cat({q[1][2], k[1][4]});
    const torch::Tensor expected =
        torch::dot(concat->v->weight[0],
                   torch::tanh(torch::mv(concat->linear->weight, qk) + concat->linear->bias));
    expect_close(concat(q, k)[1][2][4], expected);
  }
  AttentionScorer additive = score("additive");
  {
    const torch::Tensor expected = torch::dot(
        additive->v->weight[0],
        torch::tanh(torch::mv(additive->query_proj->weight, q[0][1]) +
                    torch::mv(additive->key_proj->weight, k[0][3]) + additive->key_proj->bias));
    expect_close(additive(q, k)[0][1][3], expected);
  }
}

TEST(AttentionScorerTest, BadOptionsAreClearErrors) {
  EXPECT_ERROR(AttentionScorer(AttentionScorerOptions(4, 4).score("dotty")),
               "unknown attention score 'dotty' (expected one of: dot, scaled_dot");
  EXPECT_ERROR(AttentionScorer(AttentionScorerOptions(4, 6).score("dot")),
               "score dot needs query_size == key_size, got 4 and 6");
  AttentionScorer scorer(AttentionScorerOptions(4, 4));
  EXPECT_ERROR(scorer(torch::randn({2, 3, 5}), torch::randn({2, 3, 4})), "query must be (B, T, 4)");
}

// ---------------------------------------------------------------------------------------------
// Soft, local, hard attention

TEST(AttentionTest, SoftAttentionMasksPaddingAndSumsToOne) {
  for (const std::string& score : attention_score_names()) {
    Attention attention(AttentionOptions(4, 4).score(score));
    const torch::Tensor keys = torch::randn({2, 5, 4});
    const torch::Tensor mask = lengths_to_mask(torch::tensor({5, 3}), 5);
    AttentionOutput out = attention(torch::randn({2, 4}), keys, torch::Tensor(), mask);
    ASSERT_EQ(out.context.sizes(), (std::vector<int64_t>{2, 4}));
    ASSERT_EQ(out.weights.sizes(), (std::vector<int64_t>{2, 5}));
    expect_close(out.weights.sum(-1), torch::ones({2}));
    EXPECT_EQ(out.weights[1].slice(0, 3).abs().sum().item<double>(), 0) << score;
    expect_close(out.context, torch::einsum("bs,bsd->bd", {out.weights, keys}));
    // Changing the padded keys changes nothing.
    torch::Tensor other = keys.clone();
    other[1].slice(0, 3).normal_();
    expect_close(attention(out.context.detach() * 0 + 1, keys, torch::Tensor(), mask).context[1],
                 attention(out.context.detach() * 0 + 1, other, torch::Tensor(), mask).context[1]);
  }
}

TEST(AttentionTest, FullyMaskedRowGivesZerosNotNaN) {
  Attention attention(AttentionOptions(3, 3));
  const torch::Tensor query = torch::randn({1, 2, 3}, torch::requires_grad());
  AttentionOutput out = attention(query, torch::randn({1, 4, 3}), torch::Tensor(),
                                  torch::zeros({1, 4}, torch::kBool));
  EXPECT_EQ(out.weights.abs().sum().item<double>(), 0);
  out.context.sum().backward();
  EXPECT_FALSE(query.grad().isnan().any().item<bool>());
}

TEST(AttentionTest, ValuesAndThreeDimensionalQueries) {
  Attention attention(AttentionOptions(4, 6).score("general"));
  AttentionOutput out =
      attention(torch::randn({2, 3, 4}), torch::randn({2, 5, 6}), torch::randn({2, 5, 9}));
  EXPECT_EQ(out.context.sizes(), (std::vector<int64_t>{2, 3, 9}));
  EXPECT_EQ(out.weights.sizes(), (std::vector<int64_t>{2, 3, 5}));
}

TEST(AttentionTest, LocalAttentionStaysInsideItsWindow) {
  torch::manual_seed(0);
  Attention attention(AttentionOptions(4, 4).mode("local").window(1));
  EXPECT_EQ(printed(*attention),
            "Attention(query_size=4, key_size=4, score=dot, mode=local, window=1)");
  EXPECT_EQ(parameter_keys(*attention),
            (std::vector<std::string>{"position_proj.weight", "position_v.weight"}));
  const torch::Tensor keys = torch::randn({3, 9, 4});
  const torch::Tensor mask = lengths_to_mask(torch::tensor({9, 6, 2}), 9);
  const torch::Tensor query = torch::randn({3, 4}, torch::requires_grad());
  AttentionOutput out = attention(query, keys, torch::Tensor(), mask);
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t nonzero = (out.weights[b] > 0).sum().item<int64_t>();
    EXPECT_GE(nonzero, 1);
    EXPECT_LE(nonzero, 3);  // 2D + 1
    EXPECT_EQ(out.weights[b].masked_select(~mask[b]).abs().sum().item<double>(), 0);
  }
  // The Gaussian keeps the weights at most the softmax's: they sum to at most 1.
  EXPECT_TRUE((out.weights.sum(-1) <= 1 + 1e-6).all().item<bool>());
  out.context.sum().backward();
  expect_gradients(*attention);
}

TEST(AttentionTest, HardAttentionIsOneHotWithSoftGradients) {
  torch::manual_seed(1);
  Attention attention(AttentionOptions(4, 4).score("general").mode("hard").temperature(0.5));
  const torch::Tensor keys = torch::randn({2, 6, 4});
  const torch::Tensor mask = lengths_to_mask(torch::tensor({6, 3}), 6);
  AttentionOutput out = attention(torch::randn({2, 4}), keys, torch::Tensor(), mask);
  expect_close(out.weights.sum(-1), torch::ones({2}));
  EXPECT_EQ((out.weights > 0.5).sum().item<int64_t>(), 2);
  EXPECT_LT(out.weights[1].argmax().item<int64_t>(), 3);
  // The chosen key is the context, exactly.
  expect_close(out.context[0], keys[0][out.weights[0].argmax().item<int64_t>()]);
  out.context.pow(2).sum().backward();
  expect_gradients(*attention);
  // In eval mode: the argmax of the scores, deterministic.
  attention->eval();
  const torch::Tensor q = torch::randn({2, 4});
  EXPECT_TRUE(torch::equal(attention(q, keys, torch::Tensor(), mask).weights,
                           attention(q, keys, torch::Tensor(), mask).weights));
}

TEST(AttentionTest, GradientsReachEveryParameter) {
  for (const char* score : {"general", "concat", "additive"}) {
    Attention attention(AttentionOptions(4, 5).score(score).hidden_size(3));
    attention(torch::randn({2, 4}), torch::randn({2, 6, 5})).context.pow(2).sum().backward();
    expect_gradients(*attention);
  }
}

// ---------------------------------------------------------------------------------------------
// Multi-head attention

/// Copies torch::nn::MultiheadAttention's weights into ours.
void copy_weights(const torch::nn::MultiheadAttention& reference, MultiHeadAttention& ours) {
  torch::NoGradGuard no_grad;
  const auto w = reference->in_proj_weight.chunk(3, 0);
  const auto b = reference->in_proj_bias.chunk(3, 0);
  ours->q_proj->weight.copy_(w[0]);
  ours->k_proj->weight.copy_(w[1]);
  ours->v_proj->weight.copy_(w[2]);
  ours->q_proj->bias.copy_(b[0]);
  ours->k_proj->bias.copy_(b[1]);
  ours->v_proj->bias.copy_(b[2]);
  ours->out_proj->weight.copy_(reference->out_proj->weight);
  ours->out_proj->bias.copy_(reference->out_proj->bias);
}

TEST(MultiHeadAttentionTest, ShapesKeysAndPrint) {
  MultiHeadAttention mha(MultiHeadAttentionOptions(8, 2).dropout(0.1));
  EXPECT_EQ(printed(*mha),
            "MultiHeadAttention(hidden_size=8, num_heads=2, dropout=0.1, bias=true, "
            "kernel=explicit)");
  EXPECT_EQ(parameter_keys(*mha),
            (std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight",
                                      "k_proj.bias", "v_proj.weight", "v_proj.bias",
                                      "out_proj.weight", "out_proj.bias"}));
  auto out = mha(torch::randn({3, 4, 8}), torch::randn({3, 6, 8}), torch::randn({3, 6, 8}));
  EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{3, 4, 8}));
  EXPECT_EQ(out.weights.sizes(), (std::vector<int64_t>{3, 2, 4, 6}));
  EXPECT_ERROR(MultiHeadAttention(MultiHeadAttentionOptions(10, 4)),
               "hidden_size (10) must be divisible by num_heads (4)");
}

TEST(MultiHeadAttentionTest, EqualsTorchMultiheadAttentionWithMasks) {
  torch::manual_seed(3);
  torch::nn::MultiheadAttention reference(torch::nn::MultiheadAttentionOptions(8, 2));
  MultiHeadAttention mha(MultiHeadAttentionOptions(8, 2));
  {
    torch::NoGradGuard no_grad;  // non-zero biases, so that they are tested too
    reference->in_proj_bias.normal_();
    reference->out_proj->bias.normal_();
  }
  copy_weights(reference, mha);
  const torch::Tensor q = torch::randn({3, 4, 8});
  const torch::Tensor kv = torch::randn({3, 5, 8});
  const torch::Tensor padding = lengths_to_mask(torch::tensor({5, 2, 4}), 5);
  const torch::Tensor allowed = torch::rand({4, 5}) > 0.3;
  allowed.select(1, 0).fill_(true);  // every query sees key 0, present in every sequence
  // torch's C++ module takes (T, B, E), a key_padding_mask with true = ignore, and adds
  // attn_mask to the scores (a float mask: -inf = forbidden).
  const torch::Tensor additive =
      torch::zeros({4, 5}).masked_fill(~allowed, -std::numeric_limits<float>::infinity());
  auto [ref_out, ref_weights] = reference(q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1),
                                          ~padding, /*need_weights=*/true, additive);
  auto out = mha(q, kv, kv, padding, allowed);
  expect_close(out.output, ref_out.transpose(0, 1));
  expect_close(out.weights.mean(1), ref_weights);  // torch averages the heads
}

TEST(MultiHeadAttentionTest, GradientsEqualTorchAndReachEveryParameter) {
  torch::nn::MultiheadAttention reference(torch::nn::MultiheadAttentionOptions(8, 4));
  MultiHeadAttention mha(MultiHeadAttentionOptions(8, 4));
  copy_weights(reference, mha);
  const torch::Tensor x = torch::randn({2, 5, 8});
  const torch::Tensor x_ref = x.clone().requires_grad_(true);
  const torch::Tensor x_ours = x.clone().requires_grad_(true);
  std::get<0>(reference(x_ref.transpose(0, 1), x_ref.transpose(0, 1), x_ref.transpose(0, 1)))
      .pow(2)
      .sum()
      .backward();
  mha(x_ours, x_ours, x_ours).output.pow(2).sum().backward();
  expect_close(x_ours.grad(), x_ref.grad());
  expect_close(mha->q_proj->weight.grad(), reference->in_proj_weight.grad().chunk(3, 0)[0]);
  expect_close(mha->out_proj->weight.grad(), reference->out_proj->weight.grad());
  expect_gradients(*mha);
}

TEST(MultiHeadAttentionTest, CausalMaskHidesTheFuture) {
  MultiHeadAttention mha(MultiHeadAttentionOptions(8, 2));
  const torch::Tensor x = torch::randn({1, 5, 8});
  const torch::Tensor full = mha(x, x, x, torch::Tensor(), causal_mask(5)).output;
  // The first three outputs do not depend on positions 3 and 4.
  const torch::Tensor prefix = x.slice(1, 0, 3);
  expect_close(mha(prefix, prefix, prefix, torch::Tensor(), causal_mask(3)).output,
               full.slice(1, 0, 3));
  EXPECT_EQ(causal_mask(3).sum().item<int64_t>(), 6);
}

TEST(MultiHeadAttentionTest, LoopsKernelEqualsTheExplicitOne) {
  // Values, weights and the gradients of q, k and v (through the output and the weights), for
  // no mask, key padding with a batch entry whose keys are all masked (its rows are 0), a
  // causal mask, both, dropout drawn from the same seed, q as a strided view, and double.
  struct Case {
    const char* name;
    torch::Tensor mask;
    double dropout;
    torch::Dtype dtype;
  };
  const int64_t b = 3, h = 2, t = 5, s = 7, d = 6;
  torch::Tensor padding = torch::ones({b, 1, 1, s}, torch::kBool);
  padding[0].slice(-1, 4).fill_(false);
  padding[2].fill_(false);
  const torch::Tensor causal = torch::ones({t, s}, torch::kBool).tril(2);
  const std::vector<Case> cases = {{"no mask", torch::Tensor(), 0.0, torch::kFloat},
                                   {"padding", padding, 0.0, torch::kFloat},
                                   {"causal", causal, 0.0, torch::kFloat},
                                   {"both", padding & causal, 0.0, torch::kFloat},
                                   {"dropout", padding, 0.3, torch::kFloat},
                                   {"double", padding & causal, 0.2, torch::kDouble}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    torch::manual_seed(11);
    const auto options = torch::TensorOptions().dtype(c.dtype);
    const torch::Tensor q0 = torch::randn({b, t, h, d}, options).requires_grad_();
    const torch::Tensor k0 = torch::randn({b, h, s, d}, options).requires_grad_();
    const torch::Tensor v0 = torch::randn({b, h, s, d}, options).requires_grad_();
    const torch::Tensor weigh_out = torch::randn({b, h, t, d}, options);
    const torch::Tensor weigh_probs = torch::randn({b, h, t, s}, options);
    std::vector<std::vector<torch::Tensor>> results;
    for (const AttentionKernel kernel : {AttentionKernel::kExplicit, AttentionKernel::kLoops}) {
      torch::manual_seed(5);                       // the dropout draw
      const torch::Tensor q = q0.transpose(1, 2);  // (B, H, T, Hd), not contiguous
      ScaledDotProductOutput out =
          scaled_dot_product_attention(q, k0, v0, c.mask, c.dropout, true, true, kernel);
      const auto grads = torch::autograd::grad(
          {(out.output * weigh_out).sum() + (out.weights * weigh_probs).sum()}, {q0, k0, v0});
      results.push_back({out.output, out.weights, grads[0], grads[1], grads[2]});
    }
    const char* what[] = {"output", "weights", "grad q", "grad k", "grad v"};
    for (size_t i = 0; i < results[0].size(); ++i) {
      EXPECT_TRUE(torch::allclose(results[1][i], results[0][i], 1e-5, 1e-6))
          << what[i] << ": " << (results[1][i] - results[0][i]).abs().max();
    }
    if (c.mask.defined() && c.name == std::string("padding")) {  // batch entry 2: no key
      EXPECT_EQ(results[1][0][2].abs().max().item<double>(), 0.0);
      EXPECT_EQ(results[1][1][2].abs().max().item<double>(), 0.0);
    }
  }
  // Short CPU float inputs run as kLoops in MultiHeadAttention; other dtypes or long ones not.
  EXPECT_TRUE(loop_attention_applies(torch::randn({1, 1, 3, 2}), torch::randn({1, 1, 4, 2})));
  EXPECT_FALSE(loop_attention_applies(torch::randn({1, 1, kLoopAttentionMaxLength + 1, 2}),
                                      torch::randn({1, 1, 4, 2})));
  EXPECT_FALSE(loop_attention_applies(torch::randn({1, 1, 3, 2}, torch::kHalf),
                                      torch::randn({1, 1, 4, 2}, torch::kHalf)));
  EXPECT_ERROR(scaled_dot_product_attention(torch::ones({1, 1, 2, 2}, torch::kInt),
                                            torch::ones({1, 1, 2, 2}, torch::kInt),
                                            torch::ones({1, 1, 2, 2}, torch::kInt), torch::Tensor(),
                                            0.0, false, true, AttentionKernel::kLoops),
               "the loops kernel takes CPU float or double q, k and v");
  EXPECT_ERROR(scaled_dot_product_attention(torch::randn({1, 1, 2, 2}), torch::randn({1, 1, 3, 2}),
                                            torch::randn({1, 1, 4, 2}), torch::Tensor(), 0.0, false,
                                            true, AttentionKernel::kLoops),
               "q must be (B, H, T, Hd) and k, v (B, H, S, Hd)");
}

TEST(MultiHeadAttentionTest, FusedKernelIsClearAboutItsAvailability) {
  const torch::Tensor q = torch::randn({2, 2, 3, 4});
  const torch::Tensor k = torch::randn({2, 2, 5, 4});
  const torch::Tensor mask = torch::rand({2, 1, 3, 5}) > 0.2;
  mask.select(-1, 0).fill_(true);
  ScaledDotProductOutput explicit_out =
      scaled_dot_product_attention(q, k, k, mask, 0.0, false, true, AttentionKernel::kExplicit);
  if (fused_attention_available()) {
    ScaledDotProductOutput fused =
        scaled_dot_product_attention(q, k, k, mask, 0.0, false, false, AttentionKernel::kFused);
    expect_close(fused.output, explicit_out.output);
  } else {
    EXPECT_ERROR(
        scaled_dot_product_attention(q, k, k, mask, 0.0, false, false, AttentionKernel::kFused),
        "the fused kernel needs LibTorch >= 2.0");
  }
}

}  // namespace
}  // namespace nlpkit
