#include "modules/seq2seq.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

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

Seq2SeqOptions tiny() {
  return Seq2SeqOptions(10, 12).embedding_dim(8).hidden_size(16).dropout(0.0);
}

TEST(Seq2SeqTest, ReverseWithinLengthsLeavesPaddingInPlace) {
  const torch::Tensor src = torch::tensor({{1, 2, 3, 4}, {5, 6, 0, 0}});
  EXPECT_TRUE(torch::equal(reverse_within_lengths(src, torch::tensor({4, 2})),
                           torch::tensor({{4, 3, 2, 1}, {6, 5, 0, 0}})));
}

TEST(Seq2SeqTest, ShapesAndGradientsForEveryStyleCellAndMode) {
  for (const std::string cell : {"gru", "lstm"}) {
    for (const std::string style : {"bahdanau", "luong"}) {
      for (const std::string mode : {"soft", "local", "hard"}) {
        Seq2Seq model(tiny().cell(cell).attention_style(style).attention_mode(mode).num_layers(2));
        const torch::Tensor src = torch::randint(1, 10, {3, 6});
        const torch::Tensor lengths = torch::tensor({6, 2, 4});
        Seq2SeqOutput out = model(src, lengths, torch::randint(1, 12, {3, 5}));
        ASSERT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 5, 12})) << cell << style << mode;
        ASSERT_EQ(out.attention.sizes(), (std::vector<int64_t>{3, 5, 6}));
        EXPECT_EQ(out.attention[1].slice(1, 2).abs().sum().item<double>(), 0);
        out.logits.pow(2).sum().backward();
        for (const auto& p : model->named_parameters()) {
          ASSERT_TRUE(p.value().grad().defined()) << p.key() << " " << cell << style << mode;
          EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key() << cell << style;
        }
      }
    }
  }
}

TEST(Seq2SeqTest, KeysAndPrint) {
  Seq2Seq model(tiny().cell("gru").score("additive"));
  const std::vector<std::string> keys = parameter_keys(*model);
  const std::vector<std::string> expected = {"src_embedding.weight",
                                             "encoder.weight_ih_l0",
                                             "encoder.weight_hh_l0",
                                             "encoder.bias_ih_l0",
                                             "encoder.bias_hh_l0",
                                             "encoder.weight_ih_l0_reverse",
                                             "encoder.weight_hh_l0_reverse",
                                             "encoder.bias_ih_l0_reverse",
                                             "encoder.bias_hh_l0_reverse",
                                             "encoder_proj.weight",
                                             "bridge.weight",
                                             "bridge.bias",
                                             "tgt_embedding.weight",
                                             "decoder.weight_ih_l0",
                                             "decoder.weight_hh_l0",
                                             "decoder.bias_ih_l0",
                                             "decoder.bias_hh_l0",
                                             "attention.scorer.query_proj.weight",
                                             "attention.scorer.key_proj.weight",
                                             "attention.scorer.key_proj.bias",
                                             "attention.scorer.v.weight",
                                             "combine.weight",
                                             "combine.bias",
                                             "output_proj.weight",
                                             "output_proj.bias"};
  EXPECT_EQ(keys, expected);
  EXPECT_TRUE(Contains(printed(*model),
                       "Seq2Seq(src_vocab_size=10, tgt_vocab_size=12, "
                       "embedding_dim=8, hidden_size=16, num_layers=1, cell=gru"));
  EXPECT_ERROR(Seq2Seq(tiny().attention_style("vaswani")),
               "attention_style must be bahdanau or luong, got 'vaswani'");
}

TEST(Seq2SeqTest, SourcePaddingChangesNothing) {
  for (const bool reverse : {false, true}) {
    Seq2Seq model(tiny().reverse_source(reverse));
    model->eval();
    const torch::Tensor src = torch::randint(1, 10, {2, 4});
    const torch::Tensor padded = torch::cat({src, torch::zeros({2, 3}, torch::kLong)}, 1);
    const torch::Tensor lengths = torch::tensor({4, 4});
    const torch::Tensor tgt = torch::randint(1, 12, {2, 3});
    Seq2SeqOutput a = model(src, lengths, tgt);
    Seq2SeqOutput b = model(padded, lengths, tgt);
    expect_close(b.logits, a.logits);
    expect_close(b.attention.slice(2, 0, 4), a.attention);
  }
}

TEST(Seq2SeqTest, GreedySearchFollowsTheModelsOwnArgmax) {
  torch::manual_seed(2);
  Seq2Seq model(tiny().attention_style("bahdanau"));
  model->eval();
  const torch::Tensor src = torch::randint(3, 10, {2, 5});
  const torch::Tensor lengths = torch::tensor({5, 3});
  auto decoder = model->step_decoder(src, lengths);
  const auto greedy = greedy_search(*decoder, 2, SearchOptions(1, 2).max_length(4));
  for (int64_t b = 0; b < 2; ++b) {
    // Feeding BOS + the greedy tokens reproduces each argmax.
    std::vector<int64_t> in = {1};
    in.insert(in.end(), greedy[b].tokens.begin(), greedy[b].tokens.end());
    const torch::Tensor tgt_in = torch::tensor(in).slice(0, 0, std::min<int64_t>(in.size(), 4));
    Seq2SeqOutput out = model(src[b].unsqueeze(0).slice(1, 0, lengths[b].item<int64_t>()),
                              lengths[b].unsqueeze(0), tgt_in.unsqueeze(0));
    const torch::Tensor argmax = out.logits[0].argmax(-1);
    for (size_t t = 0; t < greedy[b].tokens.size(); ++t) {
      EXPECT_EQ(argmax[t].item<int64_t>(), greedy[b].tokens[t]);
    }
    EXPECT_EQ(greedy[b].attention.size(1), 5);
  }
  // Beam search of width 1 is greedy search.
  auto again = model->step_decoder(src, lengths);
  const auto beam = beam_search(*again, 2, SearchOptions(1, 2).beam_size(1).max_length(4));
  for (int64_t b = 0; b < 2; ++b) EXPECT_EQ(beam[b][0].tokens, greedy[b].tokens);
}

TEST(Seq2SeqTest, TeacherForcingRatioFeedsOwnPredictions) {
  torch::manual_seed(4);
  Seq2Seq forced(tiny().teacher_forcing(1.0));
  Seq2Seq free_running(tiny().teacher_forcing(0.0));
  {
    torch::NoGradGuard no_grad;
    auto theirs = forced->named_parameters();
    for (auto& p : free_running->named_parameters()) p.value().copy_(theirs[p.key()]);
  }
  const torch::Tensor src = torch::randint(3, 10, {2, 5});
  const torch::Tensor tgt = torch::randint(3, 12, {2, 6});
  const torch::Tensor a = forced(src, torch::Tensor(), tgt).logits;
  const torch::Tensor b = free_running(src, torch::Tensor(), tgt).logits;
  expect_close(b.select(1, 0), a.select(1, 0));  // the first step reads BOS either way
  EXPECT_FALSE(torch::allclose(a, b));
  free_running->eval();  // evaluation always feeds the reference
  forced->eval();
  expect_close(free_running(src, torch::Tensor(), tgt).logits,
               forced(src, torch::Tensor(), tgt).logits);
}

TEST(Seq2SeqTest, LearnsToReverseASequence) {
  torch::manual_seed(0);
  Seq2Seq model(tiny().cell("gru").hidden_size(32).embedding_dim(16));
  // tokens 3..9, BOS 1, EOS 2: target = reversed source + EOS.
  const torch::Tensor src = torch::randint(3, 10, {16, 4});
  const torch::Tensor tgt = torch::cat({src.flip(1), torch::full({16, 1}, 2, torch::kLong)}, 1);
  const torch::Tensor tgt_in =
      torch::cat({torch::ones({16, 1}, torch::kLong), tgt.slice(1, 0, 4)}, 1);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 200; ++step) {
    optimizer.zero_grad();
    const torch::Tensor logits = model(src, torch::Tensor(), tgt_in).logits;
    torch::cross_entropy_loss(logits.reshape({-1, 12}), tgt.reshape(-1)).backward();
    optimizer.step();
  }
  model->eval();
  auto decoder = model->step_decoder(src, torch::Tensor());
  const auto beam = beam_search(*decoder, 16, SearchOptions(1, 2).beam_size(3).max_length(8));
  int correct = 0;
  for (int64_t b = 0; b < 16; ++b) {
    const torch::Tensor expected = src[b].flip(0);
    std::vector<int64_t> want(expected.data_ptr<int64_t>(), expected.data_ptr<int64_t>() + 4);
    correct += beam[b][0].tokens == want;
  }
  EXPECT_GE(correct, 15);
}

}  // namespace
}  // namespace nlpkit
