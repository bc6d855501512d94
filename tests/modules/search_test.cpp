#include "modules/search.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

/// A decoder whose next-token distribution depends only on the previous token: a fixed table
/// of log-probabilities (V, V). Vocabulary: 0 = BOS, 1 = EOS, 2.. = tokens.
class TableDecoder : public StepDecoder {
 public:
  explicit TableDecoder(torch::Tensor probs, int64_t rows)
      : log_probs_(probs.log()), rows_(torch::arange(rows)) {}
  StepScores step(const torch::Tensor& tokens) override {
    ++steps;
    EXPECT_EQ(tokens.size(0), rows_.size(0));
    // The attention says which row it came from, so that reordering can be checked.
    const torch::Tensor attention = torch::one_hot(rows_, 8).to(torch::kFloat);
    return {log_probs_.index_select(0, tokens), attention};
  }
  void select(const torch::Tensor& index) override { rows_ = rows_.index_select(0, index); }
  int steps = 0;

 private:
  torch::Tensor log_probs_;
  torch::Tensor rows_;
};

/// Greedy picks 2 (0.6) then has to choose among flat continuations; beam finds 3 -> EOS
/// (0.4 * 1.0) which beats 2 -> anything (0.6 * 0.34).
torch::Tensor trap_table() {
  return torch::tensor({{0.0, 0.0, 0.6, 0.4},     // after BOS
                        {1.0, 0.0, 0.0, 0.0},     // after EOS (unused)
                        {0.0, 0.34, 0.33, 0.33},  // after 2: flat
                        {0.0, 1.0, 0.0, 0.0}})    // after 3: EOS
      .clamp_min(1e-9);
}

TEST(SearchTest, GreedyTakesTheLocallyBestToken) {
  TableDecoder decoder(trap_table(), 2);
  const auto out = greedy_search(decoder, 2, SearchOptions(0, 1).max_length(5));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].tokens, (std::vector<int64_t>{2}));
  EXPECT_NEAR(out[0].score, std::log(0.6) + std::log(0.34), 1e-5);
  EXPECT_EQ(out[0].attention.sizes(), (std::vector<int64_t>{2, 8}));
}

TEST(SearchTest, BeamSearchFindsTheBetterSequence) {
  TableDecoder decoder(trap_table(), 2);
  const auto out = beam_search(decoder, 2, SearchOptions(0, 1).beam_size(2).max_length(5));
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[1].size(), 2u);
  EXPECT_EQ(out[1][0].tokens, (std::vector<int64_t>{3}));
  EXPECT_NEAR(out[1][0].score, std::log(0.4), 1e-5);
  EXPECT_EQ(out[1][1].tokens, (std::vector<int64_t>{2}));
  EXPECT_GE(out[1][0].score, out[1][1].score);
  // The attention of each example's hypotheses comes from that example's (expanded) rows.
  EXPECT_EQ(out[1][0].attention.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_TRUE(out[1][0].attention.argmax(-1).eq(1).all().item<bool>());
  EXPECT_TRUE(out[0][1].attention.argmax(-1).eq(0).all().item<bool>());
}

TEST(SearchTest, BeamOfOneIsGreedy) {
  torch::manual_seed(0);
  const torch::Tensor table = torch::softmax(torch::randn({6, 6}) * 3, -1);
  for (int64_t max_length : {1, 3, 8}) {
    TableDecoder a(table, 3), b(table, 3);
    const auto greedy = greedy_search(a, 3, SearchOptions(0, 1).max_length(max_length));
    const auto beam = beam_search(b, 3, SearchOptions(0, 1).beam_size(1).max_length(max_length));
    for (int64_t i = 0; i < 3; ++i) {
      ASSERT_EQ(beam[i].size(), 1u);
      EXPECT_EQ(beam[i][0].tokens, greedy[i].tokens);
      EXPECT_NEAR(beam[i][0].score, greedy[i].score, 1e-5);
    }
  }
}

TEST(SearchTest, LengthPenaltyAndMaxLength) {
  EXPECT_DOUBLE_EQ(length_penalty(7, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(length_penalty(1, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(length_penalty(7, 1.0), 2.0);
  // A table that never emits EOS: hypotheses stop at max_length, max_length tokens long.
  const torch::Tensor table =
      torch::tensor(
          {{0.0, 0.0, 0.5, 0.5}, {0.0, 0.0, 0.5, 0.5}, {0.0, 0.0, 0.5, 0.5}, {0.0, 0.0, 0.5, 0.5}})
          .clamp_min(1e-9);
  TableDecoder decoder(table, 1);
  const auto out = beam_search(decoder, 1, SearchOptions(0, 1).beam_size(3).max_length(4));
  ASSERT_EQ(out[0].size(), 3u);
  for (const auto& h : out[0]) EXPECT_EQ(h.tokens.size(), 4u);
  EXPECT_EQ(decoder.steps, 4);
}

TEST(SearchTest, BeamSizeZeroIsAClearError) {
  TableDecoder decoder(trap_table(), 1);
  EXPECT_ERROR(beam_search(decoder, 1, SearchOptions(0, 1).beam_size(0)),
               "search: beam_size must be >= 1, got 0");
  EXPECT_ERROR(greedy_search(decoder, 1, SearchOptions(0, 1).max_length(0)),
               "search: max_length must be >= 1, got 0");
}

}  // namespace
}  // namespace nlpkit
