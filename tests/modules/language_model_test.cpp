#include "modules/language_model.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

TEST(RecurrentLanguageModel, ShapesAndCarriedState) {
  for (const char* cell : {"rnn", "lstm", "gru"}) {
    RecurrentLanguageModel lm(RecurrentLMOptions(11).cell(cell).embedding_dim(6).hidden_size(5));
    auto ids = torch::randint(0, 11, {3, 7}, torch::kInt64);
    LMOutput out = lm(ids);
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 7, 11})) << cell;
    EXPECT_EQ(out.h_n.sizes(), (std::vector<int64_t>{2, 3, 5})) << cell;
    EXPECT_EQ(out.c_n.defined(), std::string(cell) == "lstm");
    // Running the sequence in two windows with the carried state equals one run (eval mode).
    lm->eval();
    LMOutput whole = lm(ids);
    LMOutput first = lm(ids.narrow(1, 0, 4));
    LMOutput second = lm(ids.narrow(1, 4, 3), first.h_n, first.c_n);
    EXPECT_TRUE(torch::allclose(second.logits, whole.logits.narrow(1, 4, 3), 1e-5, 1e-6)) << cell;
  }
}

TEST(RecurrentLanguageModel, StateDictKeysFollowPyTorchsExample) {
  RecurrentLanguageModel lm(RecurrentLMOptions(10).num_layers(1).embedding_dim(4).hidden_size(4));
  EXPECT_EQ(state_keys(*lm), (std::vector<std::string>{"embedding.weight", "rnn.weight_ih_l0",
                                                 "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                                                 "rnn.bias_hh_l0", "decoder.weight",
                                                 "decoder.bias"}));
  RecurrentLanguageModel tied(
      RecurrentLMOptions(10).num_layers(1).embedding_dim(4).hidden_size(4).tie_embeddings(true));
  EXPECT_EQ(state_keys(*tied), (std::vector<std::string>{"output_bias", "embedding.weight",
                                                   "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                                                   "rnn.bias_ih_l0", "rnn.bias_hh_l0"}));
}

TEST(RecurrentLanguageModel, TiedOutputUsesTheEmbeddingMatrix) {
  torch::manual_seed(0);
  RecurrentLanguageModel lm(
      RecurrentLMOptions(9).embedding_dim(4).hidden_size(4).tie_embeddings(true).dropout(0));
  auto ids = torch::randint(0, 9, {2, 5}, torch::kInt64);
  LMOutput out = lm(ids);
  out.logits.sum().backward();
  // The embedding gets gradient both as input table and as output layer: rows never looked up
  // still receive gradient through the output layer.
  auto grad = lm->embedding->weight.grad();
  ASSERT_TRUE(grad.defined());
  for (int64_t row = 0; row < 9; ++row) EXPECT_GT(grad[row].abs().sum().item<double>(), 0) << row;
}

TEST(RecurrentLanguageModel, GradientsReachEveryParameter) {
  RecurrentLanguageModel lm(RecurrentLMOptions(8).cell("gru").embedding_dim(4).hidden_size(3));
  auto ids = torch::arange(8, torch::kInt64).view({2, 4});
  lm(ids).logits.pow(2).sum().backward();
  for (const auto& p : lm->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

TEST(RecurrentLanguageModel, OverfitsOneBatch) {
  torch::manual_seed(1);
  RecurrentLanguageModel lm(
      RecurrentLMOptions(6).embedding_dim(16).hidden_size(16).num_layers(1).dropout(0));
  auto seq = torch::tensor({0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}, torch::kInt64).view({1, -1});
  auto x = seq.narrow(1, 0, 11), y = seq.narrow(1, 1, 11);
  torch::optim::Adam opt(lm->parameters(), 0.05);
  double loss = 0;
  for (int i = 0; i < 100; ++i) {
    opt.zero_grad();
    auto l = torch::nn::functional::cross_entropy(lm(x).logits.view({-1, 6}), y.view({-1}));
    l.backward();
    opt.step();
    loss = l.item<double>();
  }
  EXPECT_LT(loss, 0.05);
}

TEST(RecurrentLanguageModel, PrettyPrintAndBadInput) {
  std::ostringstream os;
  RecurrentLanguageModel lm(RecurrentLMOptions(5).embedding_dim(2).hidden_size(2));
  lm->pretty_print(os);
  EXPECT_EQ(os.str(),
            "RecurrentLanguageModel(vocab_size=5, cell=lstm, embedding_dim=2, hidden_size=2, "
            "num_layers=2, dropout=0.2, tie_embeddings=false)");
  EXPECT_THROW_WITH(lm(torch::zeros({2, 3, 4}, torch::kInt64)),
                    "RecurrentLanguageModel: expected ids of shape (B, T), got [2, 3, 4]");
  EXPECT_THROW_WITH(lm(torch::zeros({2, 3})), "RecurrentLanguageModel: expected int64 ids");
  EXPECT_THROW_WITH(RecurrentLanguageModel(RecurrentLMOptions(5).cell("lstmm")),
                    "cell must be rnn, lstm or gru, got 'lstmm'");
  EXPECT_THROW_WITH(RecurrentLanguageModel(RecurrentLMOptions(5).tie_embeddings(true)),
                    "tie_embeddings needs embedding_dim (128) == hidden_size (256)");
  EXPECT_THROW_WITH(RecurrentLanguageModel(RecurrentLMOptions(0)), "vocab_size must be > 0");
}

}  // namespace
}  // namespace nlpkit
