#include "modules/deberta.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <tuple>

#include "tests/test_util.h"
#include "trainers/huggingface.h"
#include "trainers/safetensors.h"

namespace nlpkit {
namespace {

const std::string kGolden = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/golden/";

DebertaOptions tiny() {
  return DebertaOptions()
      .vocab_size(30)
      .hidden_size(16)
      .num_layers(2)
      .num_heads(4)
      .intermediate_size(32)
      .max_position_embeddings(16)
      .position_buckets(4)
      .max_relative_positions(8)
      .dropout(0)
      .attention_dropout(0);
}

/// Every optional part at once: token types, absolute positions, own position projections, no
/// relative LayerNorm, the nGiE convolution.
DebertaOptions tiny_v2() {
  return tiny()
      .type_vocab_size(2)
      .position_biased_input(true)
      .share_att_key(false)
      .norm_rel_ebd("none")
      .conv_kernel_size(3)
      .conv_act("gelu");
}

std::vector<std::string> names(const torch::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : module_state(m)) out.push_back(name);
  return out;
}

std::map<std::string, torch::Tensor> read_io(const std::string& fixture) {
  std::map<std::string, torch::Tensor> io;
  for (auto& [name, t] : load_safetensors(kGolden + fixture + "/io.safetensors").tensors) {
    io[name] = t;
  }
  return io;
}

/// |actual - expected| <= atol + rtol |expected| with the fixtures' atol 1e-5, rtol 1e-4.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double worst = (actual - expected).abs().sub(expected.abs().mul(1e-4)).max().item<double>();
  EXPECT_LE(worst, 1e-5) << what << ": max |diff| "
                         << (actual - expected).abs().max().item<double>();
}

// ---------------------------------------------------------------- relative positions

TEST(Deberta, RelativePositionsAreLogBucketed) {
  // The fixtures' examples: b = 256, M = 512 and b = 8, M = 32.
  const torch::Tensor big = deberta_relative_position(512, 1, 256, 512)[0].select(1, 0);
  for (const auto& [r, bucket] : std::vector<std::pair<int64_t, int64_t>>{
           {127, 127}, {128, 128}, {129, 129}, {130, 130}, {256, 192}, {384, 229}, {511, 255}}) {
    EXPECT_EQ(big[r].item<int64_t>(), bucket) << r;
  }
  const torch::Tensor small = deberta_relative_position(32, 1, 8, 32)[0].select(1, 0);
  for (const auto& [r, bucket] : std::vector<std::pair<int64_t, int64_t>>{
           {3, 3}, {4, 4}, {5, 5}, {6, 5}, {8, 6}, {12, 6}, {31, 7}}) {
    EXPECT_EQ(small[r].item<int64_t>(), bucket) << r;
  }
  // Odd in i - j; exact i - j without buckets.
  const torch::Tensor rel = deberta_relative_position(20, 20, 8, 32);
  EXPECT_EQ(rel.sizes(), (std::vector<int64_t>{1, 20, 20}));
  EXPECT_TRUE(rel.equal(-rel.transpose(1, 2)));
  const torch::Tensor exact = deberta_relative_position(3, 5, 0, 32);
  EXPECT_TRUE(exact[0].equal(torch::arange(3).unsqueeze(1) - torch::arange(5).unsqueeze(0)));
}

TEST(Deberta, PositionTermsAreParsed) {
  EXPECT_TRUE(deberta_position_terms("p2c|c2p").c2p);
  EXPECT_TRUE(deberta_position_terms("p2c|c2p").p2c);
  EXPECT_FALSE(deberta_position_terms("c2p").p2c);
  EXPECT_FALSE(deberta_position_terms("").c2p);
  EXPECT_THROW_WITH(deberta_position_terms("c2p|p2p"), "pos_att_type has an unknown term 'p2p'");
}

// ---------------------------------------------------------------- the model

TEST(Deberta, ShapesOfEveryOutput) {
  for (const DebertaOptions& o : {tiny(), tiny_v2()}) {
    DebertaForMaskedLM m(o);
    auto ids = torch::randint(1, 30, {3, 7}, torch::kInt64);
    auto mask = torch::ones({3, 7}, torch::kInt64);
    mask[2].slice(0, 4).zero_();
    DebertaMaskedLMOutput out = m->forward(ids, mask, {}, true, true);
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 7, 30}));
    EXPECT_EQ(out.deberta.last_hidden_state.sizes(), (std::vector<int64_t>{3, 7, 16}));
    ASSERT_EQ(out.deberta.hidden_states.size(), 3u);
    ASSERT_EQ(out.deberta.attentions.size(), 2u);
    EXPECT_EQ(out.deberta.relative_pos.sizes(), (std::vector<int64_t>{1, 7, 7}));
    const torch::Tensor p = out.deberta.attentions[1];
    EXPECT_EQ(p.sizes(), (std::vector<int64_t>{3, 4, 7, 7}));
    // Padded keys get nothing; padded query rows are all zero; other rows sum to 1.
    EXPECT_EQ(p[2].slice(2, 4).abs().max().item<float>(), 0.0f);
    EXPECT_EQ(p[2].slice(1, 4).abs().max().item<float>(), 0.0f);
    EXPECT_TRUE(torch::allclose(p[0].sum(-1), torch::ones({4, 7})));
    // Padded positions of the embedding output are zero.
    EXPECT_EQ(out.deberta.hidden_states[0][2].slice(0, 4).abs().max().item<float>(), 0.0f);
    EXPECT_TRUE(out.deberta.hidden_states.back().equal(out.deberta.last_hidden_state));
  }
}

TEST(Deberta, PaddingDoesNotChangeTheRealTokens) {
  torch::manual_seed(1);
  for (const DebertaOptions& o : {tiny(), tiny_v2()}) {
    DebertaModel m(o);
    m->eval();
    auto ids = torch::randint(1, 30, {1, 5}, torch::kInt64);
    auto padded = torch::cat({ids, torch::zeros({1, 3}, torch::kInt64)}, 1);
    auto mask =
        torch::cat({torch::ones({1, 5}, torch::kInt64), torch::zeros({1, 3}, torch::kInt64)}, 1);
    auto a = m->forward(ids, torch::ones_like(ids)).last_hidden_state;
    auto b = m->forward(padded, mask).last_hidden_state.slice(1, 0, 5);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6));
  }
}

TEST(Deberta, StateDictKeysAreHuggingFaces) {
  std::vector<std::string> expected = {"embeddings.position_ids",
                                       "embeddings.word_embeddings.weight",
                                       "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"};
  const std::string p = "encoder.layer.0.";
  for (const char* k :
       {"attention.self.query_proj.weight", "attention.self.query_proj.bias",
        "attention.self.key_proj.weight", "attention.self.key_proj.bias",
        "attention.self.value_proj.weight", "attention.self.value_proj.bias",
        "attention.output.dense.weight", "attention.output.dense.bias",
        "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
        "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
        "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"}) {
    expected.push_back(p + k);
  }
  expected.push_back("encoder.rel_embeddings.weight");
  expected.push_back("encoder.LayerNorm.weight");
  expected.push_back("encoder.LayerNorm.bias");
  EXPECT_EQ(names(*DebertaModel(tiny().num_layers(1))), expected);
  EXPECT_EQ(DebertaModel(tiny())->encoder->rel_embeddings->weight.size(0), 8);  // 2 * buckets
}

/// Our key list for a fixture's config is the fixture's, less the tied decoder copies.
void expect_fixture_keys(const std::string& fixture) {
  const std::string dir = kGolden + fixture;
  DebertaForMaskedLM m(read_hf_deberta_config(dir).options);
  std::vector<std::string> reference;
  for (const auto& [name, t] : load_safetensors(dir + "/model.safetensors").tensors) {
    if (name != "cls.predictions.decoder.weight" && name != "cls.predictions.decoder.bias") {
      reference.push_back(name);
    }
  }
  EXPECT_EQ(names(*m), reference) << fixture;
}

TEST(Deberta, StateDictKeysMatchTheFixtures) {
  expect_fixture_keys("deberta_v3_tiny");
  expect_fixture_keys("deberta_v2_small_buckets");
  expect_fixture_keys("deberta_v2_conv_tiny");
}

TEST(Deberta, PrettyPrintNamesTheOptions) {
  std::ostringstream s;
  DebertaModel(tiny())->pretty_print(s);
  EXPECT_EQ(s.str(),
            "DebertaModel(vocab_size=30, hidden_size=16, num_layers=2, num_heads=4, "
            "intermediate_size=32, hidden_act=gelu, dropout=0, attention_dropout=0, "
            "max_position_embeddings=16, type_vocab_size=0, layer_norm_eps=1e-07, pad_id=0, "
            "relative_attention=true, max_relative_positions=8, position_buckets=4, "
            "pos_att_type=p2c|c2p, share_att_key=true, norm_rel_ebd=layer_norm, "
            "position_biased_input=false, conv_kernel_size=0)");
}

TEST(Deberta, InitialisationFollowsHuggingFace) {
  torch::manual_seed(0);
  DebertaForMaskedLM m(tiny().hidden_size(64));
  for (const auto& [name, t] : module_state(*m)) {
    if (name.find("LayerNorm.weight") != std::string::npos) {
      EXPECT_TRUE(t.eq(1).all().item<bool>()) << name;
    } else if (name.find("bias") != std::string::npos) {
      EXPECT_TRUE(t.eq(0).all().item<bool>()) << name;
    } else if (name.find("weight") != std::string::npos && t.numel() > 500) {
      EXPECT_NEAR(t.std().item<double>(), 0.02, 0.004) << name;
    }
  }
  EXPECT_TRUE(m->deberta->embeddings->word_embeddings->weight[0].eq(0).all().item<bool>());
}

TEST(Deberta, GradientsReachEveryParameter) {
  torch::manual_seed(0);
  for (const DebertaOptions& o : {tiny(), tiny_v2()}) {
    DebertaForMaskedLM m(o);
    auto ids = torch::randint(1, 30, {2, 6}, torch::kInt64);
    auto mask = torch::ones_like(ids);
    mask[1][5] = 0;
    auto types =
        o.type_vocab_size() > 0 ? torch::randint(0, 2, {2, 6}, torch::kInt64) : torch::Tensor();
    m->forward(ids, mask, types).logits.pow(2).mean().backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

/// Disentangled attention written out term by term (c2p and p2c gathered from all 2 x span
/// projected rows) for any relative_pos.
torch::Tensor naive_disentangled(DisentangledSelfAttention& a, const torch::Tensor& hidden,
                                 const torch::Tensor& rel_pos, const torch::Tensor& rel,
                                 const torch::Tensor& mask = {}) {
  const int64_t b = hidden.size(0), t = hidden.size(1), heads = a->options.num_heads();
  const int64_t hd = a->options.hidden_size() / heads, span = a->att_span;
  auto split = [&](const torch::Tensor& x) {
    return x.view({x.size(0), -1, heads, hd}).transpose(1, 2);
  };
  const torch::Tensor q = split(a->query_proj(hidden)), k = split(a->key_proj(hidden));
  const torch::Tensor v = split(a->value_proj(hidden));
  const torch::Tensor kr = split(a->key_proj(rel).unsqueeze(0))[0];    // (heads, 2S, Hd)
  const torch::Tensor qr = split(a->query_proj(rel).unsqueeze(0))[0];  // (heads, 2S, Hd)
  const torch::Tensor idx = torch::clamp(rel_pos[0] + span, 0, 2 * span - 1);  // (T, T)
  const torch::Tensor krg = kr.index({torch::indexing::Slice(), idx});  // (heads, T, T, Hd)
  const torch::Tensor qrg = qr.index({torch::indexing::Slice(), idx});
  const torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)) +
                               torch::einsum("bhid,hijd->bhij", {q, krg}) +
                               torch::einsum("bhjd,hijd->bhij", {k, qrg});
  torch::Tensor p;
  if (mask.defined()) {  // HuggingFace's XSoftmax
    const torch::Tensor masked = mask.logical_not();
    p = torch::softmax((scores / std::sqrt(3.0 * hd)).masked_fill(masked, -3.4028234663852886e38),
                       -1)
            .masked_fill(masked, 0);
  } else {
    p = torch::softmax(scores / std::sqrt(3.0 * hd), -1);
  }
  return torch::matmul(p, v).transpose(1, 2).reshape({b, t, heads * hd});
}

TEST(Deberta, DisentangledAttentionEqualsTheTermsWrittenOut) {
  // The strided product path (relative_pos a function of i - j, as the encoder builds it) and
  // the gather path (any other relative_pos), outputs and input gradients.
  torch::manual_seed(0);
  // t = 40 runs the band products in two blocks of query rows (one, t = 11, otherwise).
  for (const int64_t t : {11, 40}) {
  const DebertaOptions o = tiny().max_position_embeddings(64).position_buckets(6);
  DisentangledSelfAttention a(o);
  const torch::Tensor rel = torch::randn({2 * a->att_span, o.hidden_size()});
  const torch::Tensor standard =
      deberta_relative_position(t, t, o.position_buckets(), o.max_relative_positions());
  const int64_t lo = standard.min().item<int64_t>(), hi = standard.max().item<int64_t>();
  const torch::Tensor scrambled = torch::randint(lo, hi + 1, {1, t, t}, torch::kInt64);
  scrambled[0][t - 1][0] = hi;  // the extremes the rows are cut to
  scrambled[0][0][t - 1] = lo;
  // Without a mask, and with the second sequence's last 3 positions padded (XSoftmax).
  torch::Tensor attention_mask = torch::ones({2, t}, torch::kInt64);
  attention_mask[1].slice(0, t - 3).fill_(0);
  const torch::Tensor padding = deberta_attention_mask(attention_mask);
  ASSERT_TRUE(padding.defined());
  EXPECT_FALSE(deberta_attention_mask(torch::ones({2, t}, torch::kInt64)).defined());
  for (const torch::Tensor& mask : {torch::Tensor(), padding})
  for (const torch::Tensor& rel_pos : {standard, scrambled}) {
    const torch::Tensor x = torch::randn({2, t, o.hidden_size()}, torch::requires_grad());
    torch::Tensor probs;
    const torch::Tensor got = a->forward(x, mask, {}, rel_pos, rel, &probs);
    const torch::Tensor gx = torch::autograd::grad({got.pow(2).sum()}, {x})[0];
    const torch::Tensor want = naive_disentangled(a, x, rel_pos, rel, mask);
    if (mask.defined()) {  // padded query rows: probabilities and context all 0
      EXPECT_EQ(probs[1].slice(1, t - 3).abs().max().item<float>(), 0.0f);
      EXPECT_EQ(probs[1].slice(2, t - 3).abs().max().item<float>(), 0.0f);
      EXPECT_EQ(got[1].slice(0, t - 3).abs().max().item<float>(), 0.0f);
    }
    const torch::Tensor wx = torch::autograd::grad({want.pow(2).sum()}, {x})[0];
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max();
    EXPECT_TRUE(torch::allclose(gx, wx, 1e-4, 1e-5)) << (gx - wx).abs().max();
  }
  }
}

TEST(Deberta, RelativeBandProductEqualsTheProductReadOnItsDiagonals) {
  // out[b, h, i, j] = a[b, h, i] . rel[h, Ta - 1 - i + j], with one block, several blocks, a
  // partial last block and Ta != Tb, also transposed (the p2c layout, whose float add and copy
  // are hand-written in 4 x 4 tiles: sizes below and above 4, not multiples of it) and in
  // double precision (the strided-view path); values and both gradients against the full
  // product.
  torch::manual_seed(3);
  for (const bool transposed : {false, true}) {
    for (const auto& [ta, tb, block, dtype] :
         std::vector<std::tuple<int64_t, int64_t, int64_t, torch::Dtype>>{
             {7, 7, 32, torch::kFloat},
             {7, 7, 1, torch::kFloat},
             {10, 10, 4, torch::kFloat},
             {9, 5, 2, torch::kFloat},
             {4, 11, 3, torch::kFloat},
             {6, 6, 6, torch::kFloat},
             {37, 23, 16, torch::kFloat},
             {3, 2, 8, torch::kFloat},
             {9, 10, 4, torch::kDouble}}) {
      const auto options = torch::TensorOptions().dtype(dtype).requires_grad(true);
      const torch::Tensor a = torch::randn({2, 3, ta, 5}, options);
      const torch::Tensor rel = torch::randn({3, ta + tb - 1, 5}, options);
      const torch::Tensor got = relative_band_product(a, rel, block, transposed);
      const torch::Tensor full = torch::matmul(a, rel.unsqueeze(0).transpose(-1, -2));
      const torch::Tensor index =
          (ta - 1 - torch::arange(ta).unsqueeze(1) + torch::arange(tb).unsqueeze(0))
              .expand({2, 3, ta, tb});
      torch::Tensor want = torch::gather(full, -1, index);
      if (transposed) want = want.transpose(-1, -2);
      const std::string what = "Ta " + std::to_string(ta) + " Tb " + std::to_string(tb) +
                               " block " + std::to_string(block) +
                               (transposed ? " transposed" : "") +
                               (dtype == torch::kDouble ? " double" : "");
      ASSERT_EQ(got.sizes(), want.sizes()) << what;
      EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6)) << what;
      const torch::Tensor weight = torch::randn_like(want);
      // The backward zeroes its buffers' off-band part once: let the allocator hand out NaNs.
      for (int i = 0; i < 4; ++i) torch::full({2 * 3 * (ta + 8) * (ta + tb + 8)}, NAN);
      const auto g = torch::autograd::grad({(got * weight).sum()}, {a, rel});
      const auto w = torch::autograd::grad({(want * weight).sum()}, {a, rel});
      EXPECT_TRUE(torch::allclose(g[0], w[0], 1e-5, 1e-5)) << what << " grad a";
      EXPECT_TRUE(torch::allclose(g[1], w[1], 1e-5, 1e-5)) << what << " grad rel";
    }
  }
  const torch::Tensor a = torch::randn({1, 2, 4, 3});
  EXPECT_THROW(relative_band_product(a, torch::randn({2, 3, 3})), c10::Error);  // Tb < 1
  EXPECT_THROW(relative_band_product(a, torch::randn({2, 6, 3}), 0), c10::Error);
}

TEST(Deberta, OverfitsOneBatch) {
  torch::manual_seed(0);
  DebertaForMaskedLM m(tiny_v2());
  auto ids = torch::randint(1, 30, {4, 6}, torch::kInt64);
  auto targets = torch::randint(1, 30, {4, 6}, torch::kInt64);
  torch::optim::Adam opt(m->parameters(), 3e-3);
  double loss_value = 0;
  for (int step = 0; step < 250; ++step) {
    opt.zero_grad();
    auto loss =
        torch::cross_entropy_loss(m->forward(ids).logits.reshape({-1, 30}), targets.reshape({-1}));
    loss.backward();
    opt.step();
    loss_value = loss.item<double>();
  }
  EXPECT_LT(loss_value, 0.05);
}

TEST(Deberta, BadOptionsAndInputsAreNamed) {
  EXPECT_THROW_WITH(DebertaModel(tiny().hidden_size(18)),
                    "hidden_size (18) must be divisible by num_heads (4)");
  EXPECT_THROW_WITH(DebertaModel(tiny().pos_att_type("c2p|p2x")),
                    "pos_att_type has an unknown term 'p2x'");
  EXPECT_THROW_WITH(DebertaModel(tiny().position_buckets(16)),
                    "position_buckets (16) must not exceed max_relative_positions (8");
  EXPECT_THROW_WITH(DebertaModel(tiny().norm_rel_ebd("rms")),
                    "norm_rel_ebd must be layer_norm or none, got 'rms'");
  EXPECT_THROW_WITH(DebertaModel(tiny().conv_kernel_size(2)), "conv_kernel_size must be odd");
  EXPECT_THROW_WITH(DebertaModel(tiny().conv_kernel_size(3).conv_groups(3)),
                    "must be divisible by conv_groups (3)");
  EXPECT_THROW_WITH(DebertaModel(tiny().hidden_act("swish")), "unknown activation 'swish'");
  DebertaModel m(tiny_v2());
  EXPECT_THROW_WITH(m->forward(torch::full({1, 3}, 30, torch::kInt64)),
                    "token ids must be in [0, 30), got [30, 30]");
  EXPECT_THROW_WITH(m->forward(torch::ones({1, 17}, torch::kInt64)),
                    "sequence length 17 exceeds max_position_embeddings (16)");
  EXPECT_THROW_WITH(m->forward(torch::ones({1, 3}, torch::kInt64), torch::ones({1, 4})),
                    "attention_mask [1, 4] must match input_ids [1, 3]");
  EXPECT_THROW_WITH(
      m->forward(torch::ones({1, 3}, torch::kInt64), {}, torch::full({1, 3}, 2, torch::kInt64)),
      "token_type_ids must be in [0, 2)");
}

// ---------------------------------------------------------------- parity (HuggingFace import)

/// Loads a fixture through the HuggingFace import and compares every output.
void expect_fixture_parity(const std::string& fixture, int64_t expected_loaded) {
  SCOPED_TRACE(fixture);
  const std::string dir = kGolden + fixture;
  HfDebertaConfig config = read_hf_deberta_config(dir);
  DebertaForMaskedLM m(config.options);
  HfLoadReport report = load_hf_weights(*m, read_hf_weights(dir), dir, "deberta");
  EXPECT_TRUE(report.initialized.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  EXPECT_EQ(static_cast<int64_t>(report.loaded.size()), expected_loaded);
  m->eval();
  auto io = read_io(fixture);
  torch::NoGradGuard no_grad;
  const torch::Tensor types =
      io.count("in/token_type_ids") ? io["in/token_type_ids"] : torch::Tensor();
  DebertaMaskedLMOutput out =
      m->forward(io["in/input_ids"], io["in/attention_mask"], types, true, true);
  EXPECT_TRUE(out.deberta.relative_pos.equal(io["out/relative_pos"]));
  ASSERT_EQ(out.deberta.hidden_states.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    expect_close(out.deberta.hidden_states[i], io["out/hidden_states_" + std::to_string(i)],
                 "hidden_states_" + std::to_string(i));
  }
  for (size_t i = 0; i < 2; ++i) {
    expect_close(out.deberta.attentions[i], io["out/attn_probs_" + std::to_string(i)],
                 "attn_probs_" + std::to_string(i));
  }
  expect_close(out.deberta.last_hidden_state, io["out/last_hidden_state"], "last_hidden_state");
  expect_close(out.logits, io["out/mlm_logits"], "mlm_logits");
}

// Loaded counts: the fixture's tensors less the two tied decoder copies.
TEST(DebertaParity, V3Tiny) { expect_fixture_parity("deberta_v3_tiny", 44); }
TEST(DebertaParity, V2SmallBuckets) { expect_fixture_parity("deberta_v2_small_buckets", 52); }
TEST(DebertaParity, V2ConvTiny) { expect_fixture_parity("deberta_v2_conv_tiny", 48); }

TEST(DebertaParity, ExportListsTheFixturesTensors) {
  // hf_export_tensors adds the tied decoder copies: the fixture's own key list comes back.
  const std::string dir = kGolden + "deberta_v2_conv_tiny";
  DebertaForMaskedLM m(read_hf_deberta_config(dir).options);
  std::vector<std::string> ours, reference;
  for (const auto& [name, t] : hf_export_tensors(*m)) ours.push_back(name);
  for (const auto& [name, t] : load_safetensors(dir + "/model.safetensors").tensors) {
    reference.push_back(name);
  }
  std::sort(ours.begin(), ours.end());
  std::sort(reference.begin(), reference.end());
  EXPECT_EQ(ours, reference);
}

TEST(DebertaParity, HfForwardNamesEveryOutput) {
  const std::string dir = kGolden + "deberta_v2_small_buckets";
  auto io = read_io("deberta_v2_small_buckets");
  NamedTensors out = hf_forward(dir, {{"input_ids", io["in/input_ids"]},
                                      {"attention_mask", io["in/attention_mask"]},
                                      {"token_type_ids", io["in/token_type_ids"]}});
  std::map<std::string, torch::Tensor> by_name(out.begin(), out.end());
  std::vector<std::string> keys;
  for (const auto& [name, t] : out) keys.push_back(name);
  EXPECT_EQ(keys, (std::vector<std::string>{"last_hidden_state", "hidden_states.0",
                                            "hidden_states.1", "hidden_states.2", "attentions.0",
                                            "attentions.1", "prediction_logits"}));
  expect_close(by_name["hidden_states.1"], io["out/hidden_states_1"], "hidden_states.1");
  expect_close(by_name["attentions.1"], io["out/attn_probs_1"], "attentions.1");
  expect_close(by_name["prediction_logits"], io["out/mlm_logits"], "prediction_logits");
}

// ---------------------------------------------------------------- config.json

class DebertaConfigFiles : public TempDirTest {};

TEST_F(DebertaConfigFiles, KeysMapToOptions) {
  HfDebertaConfig c = read_hf_deberta_config(kGolden + "deberta_v2_conv_tiny");
  const DebertaOptions& o = c.options;
  EXPECT_EQ(o.hidden_size(), 32);
  EXPECT_EQ(o.num_layers(), 2);
  EXPECT_EQ(o.num_heads(), 4);
  EXPECT_EQ(o.layer_norm_eps(), 1e-7);
  EXPECT_EQ(o.pos_att_type(), "p2c|c2p");  // from the list form
  EXPECT_EQ(o.position_buckets(), 256);
  EXPECT_EQ(o.conv_kernel_size(), 3);
  EXPECT_EQ(o.conv_act(), "gelu");
  EXPECT_EQ(o.norm_rel_ebd(), "layer_norm");
  EXPECT_TRUE(o.share_att_key());
  EXPECT_FALSE(o.position_biased_input());
  EXPECT_EQ(c.architectures, std::vector<std::string>{"DebertaV2ForMaskedLM"});
  // Absent keys take HuggingFace's DebertaV2Config defaults; the string form of pos_att_type.
  write("config.json",
        "{\"model_type\": \"deberta-v2\", \"hidden_size\": 32, \"num_attention_heads\": 4, "
        "\"pos_att_type\": \"C2P | p2c\"}");
  HfDebertaConfig d = read_hf_deberta_config(dir_.string());
  EXPECT_EQ(d.options.pos_att_type(), "c2p|p2c");
  EXPECT_FALSE(d.options.relative_attention());
  EXPECT_TRUE(d.options.position_biased_input());
  EXPECT_FALSE(d.options.share_att_key());
  EXPECT_EQ(d.options.position_buckets(), -1);
  EXPECT_EQ(d.options.norm_rel_ebd(), "none");
}

TEST_F(DebertaConfigFiles, BadConfigsNameTheKey) {
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()), "has no config.json");
  write("config.json", "{\"model_type\": \"bert\"}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()),
               "model_type is 'bert', expected 'deberta-v2'");
  write("config.json", "{\"model_type\": \"deberta\"}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()), "model_type 'deberta' (DeBERTa-v1");
  const std::string base =
      "{\"model_type\": \"deberta-v2\", \"hidden_size\": 32, \"num_attention_heads\": 4, "
      "\"relative_attention\": true, ";
  write("config.json", base + "\"pos_att_type\": \"p2c|c2c\"}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()),
               "config.json: pos_att_type: unknown term 'c2c' (supported: c2p, p2c)");
  write("config.json", base + "\"pos_att_type\": 3}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()),
               "config.json: pos_att_type: must be a string");
  write("config.json", base + "\"position_buckets\": 1024}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()),
               "config.json: position_buckets: must not exceed max_position_embeddings (512), got "
               "1024");
  write("config.json", base + "\"position_buckets\": 64, \"max_relative_positions\": 32}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()),
               "position_buckets: must not exceed max_relative_positions (32)");
  write("config.json", base + "\"norm_rel_ebd\": \"batch_norm\"}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()), "norm_rel_ebd: unknown value 'batch_norm'");
  write("config.json", base + "\"share_att_key\": \"yes\"}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()), "share_att_key: must be true or false");
  write("config.json", base + "\"conv_kernel_size\": 3, \"conv_act\": \"swish\"}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()), "conv_act: is not supported");
  write("config.json", base + "\"embedding_size\": 16}");
  EXPECT_ERROR(read_hf_deberta_config(dir_.string()), "embedding_size: must equal hidden_size");
  EXPECT_ERROR(deberta_options_from_json(nlohmann::json::parse("{\"hidden_size\": \"x\"}"),
                                         "rtd.json", "generator."),
               "rtd.json: generator.hidden_size: must be an integer, got \"x\"");
}

TEST_F(DebertaConfigFiles, RelEmbeddingsOfTheWrongSizeAreNamed) {
  // A config saying 128 buckets over a checkpoint holding 256 rows per side.
  const std::string src = kGolden + "deberta_v3_tiny";
  nlohmann::json j = read_hf_deberta_config(src).raw;
  j["position_buckets"] = 128;
  write("config.json", j.dump());
  DebertaForMaskedLM m(read_hf_deberta_config(dir_.string()).options);
  EXPECT_ERROR(load_hf_weights(*m, read_hf_weights(src), src, "deberta"),
               "deberta.encoder.rel_embeddings.weight: checkpoint [512, 32], model [256, 32]");
}

}  // namespace
}  // namespace nlpkit
