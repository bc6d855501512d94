#include "modules/transformer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
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

TransformerOptions tiny(int64_t src_vocab = 11, int64_t tgt_vocab = 13) {
  return TransformerOptions(src_vocab, tgt_vocab)
      .hidden_size(16)
      .num_heads(4)
      .num_encoder_layers(2)
      .num_decoder_layers(2)
      .intermediate_size(32)
      .dropout(0.0)
      .max_length(20);
}

TEST(TransformerTest, SinusoidalPositionsFollowThePaper) {
  const torch::Tensor table = sinusoidal_positions(10, 8);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{10, 8}));
  for (const int64_t p : {0, 3, 9}) {
    for (int64_t i = 0; i < 4; ++i) {
      const double angle = p / std::pow(10000.0, 2.0 * i / 8);
      EXPECT_NEAR(table[p][2 * i].item<double>(), std::sin(angle), 1e-5);
      EXPECT_NEAR(table[p][2 * i + 1].item<double>(), std::cos(angle), 1e-5);
    }
  }
}

TEST(TransformerTest, ShapesKeysAndPrint) {
  Transformer model(tiny().num_encoder_layers(1).num_decoder_layers(1));
  const torch::Tensor src = torch::randint(1, 11, {3, 7});
  const torch::Tensor tgt = torch::randint(1, 13, {3, 5});
  TransformerOutput out = model(src, lengths_to_mask(torch::tensor({7, 4, 2}), 7), tgt);
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 5, 13}));
  EXPECT_EQ(out.attention.sizes(), (std::vector<int64_t>{3, 5, 7}));
  const std::vector<std::string> keys = parameter_keys(*model);
  EXPECT_EQ(keys.front(), "src_embedding.weight");
  EXPECT_EQ(keys[1], "tgt_embedding.weight");
  EXPECT_EQ(keys[2], "encoder.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(keys.back(), "output_proj.bias");
  EXPECT_EQ(keys.size(), 2u + 16u + 2u + 26u + 2u + 2u);
  EXPECT_TRUE(Contains(printed(*model),
                       "Transformer(src_vocab_size=11, tgt_vocab_size=13, "
                       "hidden_size=16, num_heads=4"));
  // Padded source positions get no attention.
  EXPECT_EQ(out.attention[2].slice(1, 2).abs().sum().item<double>(), 0);
}

TEST(TransformerTest, TiedEmbeddingsAndLearnedPositions) {
  Transformer decoder_tied(tiny().tie_embeddings("decoder").positions("learned"));
  const std::vector<std::string> keys = parameter_keys(*decoder_tied);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "output_proj.weight"), 0);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "position_embedding.weight"), 1);
  Transformer all_tied(tiny(13, 13).tie_embeddings("all"));
  const std::vector<std::string> all_keys = parameter_keys(*all_tied);
  EXPECT_EQ(std::count(all_keys.begin(), all_keys.end(), "tgt_embedding.weight"), 0);
  EXPECT_ERROR(Transformer(tiny(11, 13).tie_embeddings("all")),
               "tie_embeddings 'all' needs one vocabulary, got src_vocab_size 11 and "
               "tgt_vocab_size 13");
  // The shared matrix gets the gradients of the source, target and output uses.
  TransformerOutput out =
      all_tied(torch::randint(1, 13, {2, 4}), torch::Tensor(), torch::randint(1, 13, {2, 3}));
  out.logits.pow(2).sum().backward();
  EXPECT_GT(all_tied->src_embedding->weight.grad().abs().sum().item<double>(), 0);
}

/// Copies torch::nn::Transformer's weights into our encoder and decoder stacks.
void copy_from_torch(torch::nn::Transformer& reference, TransformerEncoder& encoder,
                     TransformerDecoder& decoder) {
  torch::NoGradGuard no_grad;
  auto theirs = reference->named_parameters();
  const auto copy_stack = [&](torch::nn::Module& stack, const std::string& prefix) {
    for (auto& item : stack.named_parameters()) {
      std::string name = prefix + item.key();
      int64_t chunk = -1;
      for (const auto& [ours, index] : std::vector<std::pair<std::string, int64_t>>{
               {"q_proj", 0}, {"k_proj", 1}, {"v_proj", 2}}) {
        const size_t at = name.find(ours);
        if (at == std::string::npos) continue;
        const bool weight = name.find(".weight") != std::string::npos;
        name = name.substr(0, at) + (weight ? "in_proj_weight" : "in_proj_bias");
        chunk = index;
      }
      ASSERT_TRUE(theirs.contains(name)) << name;
      const torch::Tensor source = chunk < 0 ? theirs[name] : theirs[name].chunk(3, 0)[chunk];
      item.value().copy_(source);
    }
  };
  copy_stack(*encoder, "encoder.");
  copy_stack(*decoder, "decoder.");
}

TEST(TransformerTest, StacksEqualTorchTransformerPostLN) {
  torch::manual_seed(5);
  torch::nn::Transformer reference(torch::nn::TransformerOptions(16, 4, 2, 2)
                                       .dim_feedforward(32)
                                       .dropout(0.0)
                                       .activation(torch::kReLU));
  const TransformerLayerOptions layer =
      TransformerLayerOptions(16, 4).intermediate_size(32).dropout(0.0);
  TransformerEncoder encoder(layer, 2);
  TransformerDecoder decoder(layer, 2);
  {  // torch zeroes the attention biases; random ones test them too
    torch::NoGradGuard no_grad;
    for (auto& p : reference->parameters()) p.add_(torch::randn_like(p) * 0.1);
  }
  copy_from_torch(reference, encoder, decoder);
  const torch::Tensor src = torch::randn({3, 6, 16});
  const torch::Tensor tgt = torch::randn({3, 4, 16});
  const torch::Tensor src_mask = lengths_to_mask(torch::tensor({6, 3, 5}), 6);
  const torch::Tensor causal =
      torch::zeros({4, 4}).masked_fill(~causal_mask(4), -std::numeric_limits<float>::infinity());
  const torch::Tensor expected =
      reference
          ->forward(src.transpose(0, 1), tgt.transpose(0, 1), torch::Tensor(), causal,
                    torch::Tensor(), ~src_mask, torch::Tensor(), ~src_mask)
          .transpose(0, 1);
  const torch::Tensor memory = encoder(src, src_mask);
  expect_close(decoder(tgt, memory, src_mask).hidden, expected);
}

TEST(TransformerTest, DecoderIsCausal) {
  Transformer model(tiny());
  model->eval();
  const torch::Tensor src = torch::randint(1, 11, {2, 5});
  torch::Tensor tgt = torch::randint(1, 13, {2, 6});
  const torch::Tensor before = model(src, torch::Tensor(), tgt).logits;
  tgt.slice(1, 4).random_(1, 13);
  expect_close(model(src, torch::Tensor(), tgt).logits.slice(1, 0, 4), before.slice(1, 0, 4));
}

TEST(TransformerTest, IncrementalDecodingEqualsRecomputation) {
  for (const bool norm_first : {false, true}) {
    Transformer model(tiny().norm_first(norm_first));
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor src = torch::randint(1, 11, {3, 5});
    const torch::Tensor mask = lengths_to_mask(torch::tensor({5, 2, 4}), 5);
    const torch::Tensor tgt = torch::randint(1, 13, {3, 6});
    const torch::Tensor memory = model->encode(src, mask);
    const TransformerOutput full = model->decode(tgt, memory, mask);
    std::vector<DecoderLayerCache> cache;
    for (int64_t t = 0; t < 6; ++t) {
      const TransformerOutput step = model->decode(tgt.slice(1, t, t + 1), memory, mask, t, &cache);
      expect_close(step.logits.squeeze(1), full.logits.select(1, t), 1e-4);
      expect_close(step.attention.squeeze(1), full.attention.select(1, t), 1e-5);
    }
    // Two positions at a time too.
    cache.clear();
    const TransformerOutput first = model->decode(tgt.slice(1, 0, 2), memory, mask, 0, &cache);
    const TransformerOutput second = model->decode(tgt.slice(1, 2, 4), memory, mask, 2, &cache);
    expect_close(second.logits, full.logits.slice(1, 2, 4), 1e-4);
    // Beam search gives the same hypotheses either way.
    auto incremental = model->step_decoder(src, mask, true);
    auto recompute = model->step_decoder(src, mask, false);
    const SearchOptions search = SearchOptions(1, 2).beam_size(3).max_length(7);
    const auto a = beam_search(*incremental, 3, search);
    const auto b = beam_search(*recompute, 3, search);
    for (int64_t i = 0; i < 3; ++i) {
      ASSERT_EQ(a[i].size(), b[i].size());
      for (size_t k = 0; k < a[i].size(); ++k) {
        EXPECT_EQ(a[i][k].tokens, b[i][k].tokens);
        EXPECT_NEAR(a[i][k].score, b[i][k].score, 1e-4);
      }
    }
  }
}

TEST(TransformerTest, GradientsReachEveryParameterAndItOverfitsABatch) {
  torch::manual_seed(0);
  Transformer model(tiny().norm_first(true).positions("learned"));
  const torch::Tensor src = torch::randint(3, 11, {4, 5});
  const torch::Tensor tgt = torch::randint(3, 13, {4, 6});
  const torch::Tensor tgt_in =
      torch::cat({torch::ones({4, 1}, torch::kLong), tgt.slice(1, 0, 5)}, 1);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    optimizer.zero_grad();
    const torch::Tensor logits = model(src, torch::Tensor(), tgt_in).logits;
    const torch::Tensor loss = torch::cross_entropy_loss(logits.reshape({-1, 13}), tgt.reshape(-1));
    loss.backward();
    if (step == 0) {
      for (const auto& p : model->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
      }
      first = loss.item<double>();
    }
    optimizer.step();
    last = loss.item<double>();
  }
  EXPECT_LT(last, 0.05 * first);
}

TEST(TransformerTest, TooLongSequencesAreClearErrors) {
  Transformer model(tiny());
  EXPECT_ERROR(
      model(torch::randint(1, 11, {1, 21}), torch::Tensor(), torch::ones({1, 2}, torch::kLong)),
      "sequence of 21 positions is longer than max_length 20");
}

}  // namespace
}  // namespace nlpkit
