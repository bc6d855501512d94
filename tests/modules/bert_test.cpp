#include "modules/bert.h"

#include <gtest/gtest.h>

#include <sstream>

#include "tests/test_util.h"
#include "trainers/safetensors.h"

namespace nlpkit {
namespace {

BertOptions tiny() {
  return BertOptions()
      .vocab_size(30)
      .hidden_size(16)
      .num_layers(2)
      .num_heads(4)
      .intermediate_size(32)
      .max_position_embeddings(12)
      .dropout(0)
      .attention_dropout(0);
}

std::vector<std::string> names(const torch::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : module_state(m)) out.push_back(name);
  return out;
}

std::vector<std::string> layer_keys(const std::string& p) {
  std::vector<std::string> out;
  for (const char* k :
       {"attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
        "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
        "attention.output.dense.weight", "attention.output.dense.bias",
        "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
        "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
        "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"}) {
    out.push_back(p + k);
  }
  return out;
}

TEST(Bert, ShapesOfEveryOutput) {
  BertModel bert(tiny());
  auto ids = torch::randint(1, 30, {3, 7}, torch::kInt64);
  auto mask = torch::ones({3, 7}, torch::kInt64);
  mask[2].slice(0, 4).zero_();
  BertModelOutput out = bert->forward(ids, mask, torch::zeros_like(ids), true, true);
  EXPECT_EQ(out.last_hidden_state.sizes(), (std::vector<int64_t>{3, 7, 16}));
  EXPECT_EQ(out.pooler_output.sizes(), (std::vector<int64_t>{3, 16}));
  ASSERT_EQ(out.hidden_states.size(), 3u);
  ASSERT_EQ(out.attentions.size(), 2u);
  EXPECT_EQ(out.attentions[0].sizes(), (std::vector<int64_t>{3, 4, 7, 7}));
  // Padded keys get no attention; each row sums to 1.
  EXPECT_EQ(out.attentions[1][2].slice(2, 4).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(torch::allclose(out.attentions[0].sum(-1), torch::ones({3, 4, 7})));
  EXPECT_TRUE(out.hidden_states.back().equal(out.last_hidden_state));

  BertForPreTraining pre(tiny());
  BertPreTrainingOutput p = pre->forward(ids, mask);
  EXPECT_EQ(p.prediction_logits.sizes(), (std::vector<int64_t>{3, 7, 30}));
  EXPECT_EQ(p.seq_relationship_logits.sizes(), (std::vector<int64_t>{3, 2}));

  BertClassifier seq(tiny(), 5);
  EXPECT_EQ(seq->forward(ids, mask).sizes(), (std::vector<int64_t>{3, 5}));
  BertClassifier tok(tiny(), 5, /*per_token=*/true);
  EXPECT_EQ(tok->forward(ids, mask).sizes(), (std::vector<int64_t>{3, 7, 5}));
}

TEST(Bert, PaddingDoesNotChangeTheRealTokens) {
  torch::manual_seed(1);
  BertModel bert(tiny());
  bert->eval();
  auto ids = torch::randint(1, 30, {1, 5}, torch::kInt64);
  auto padded = torch::cat({ids, torch::zeros({1, 3}, torch::kInt64)}, 1);
  auto mask =
      torch::cat({torch::ones({1, 5}, torch::kInt64), torch::zeros({1, 3}, torch::kInt64)}, 1);
  auto a = bert->forward(ids).last_hidden_state;
  auto b = bert->forward(padded, mask).last_hidden_state.slice(1, 0, 5);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6));
}

TEST(Bert, StateDictKeysAreHuggingFaces) {
  BertOptions o = tiny().num_layers(1);
  std::vector<std::string> model = {"embeddings.position_ids",
                                    "embeddings.word_embeddings.weight",
                                    "embeddings.position_embeddings.weight",
                                    "embeddings.token_type_embeddings.weight",
                                    "embeddings.LayerNorm.weight",
                                    "embeddings.LayerNorm.bias"};
  for (const auto& k : layer_keys("encoder.layer.0.")) model.push_back(k);
  model.push_back("pooler.dense.weight");
  model.push_back("pooler.dense.bias");
  EXPECT_EQ(names(*BertModel(o)), model);

  std::vector<std::string> pre;
  for (const auto& k : model) pre.push_back("bert." + k);
  for (const char* k :
       {"cls.predictions.bias", "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias", "cls.seq_relationship.weight",
        "cls.seq_relationship.bias"}) {
    pre.push_back(k);
  }
  EXPECT_EQ(names(*BertForPreTraining(o)), pre);

  std::vector<std::string> cls;
  for (const auto& k : model) cls.push_back("bert." + k);
  cls.push_back("classifier.weight");
  cls.push_back("classifier.bias");
  EXPECT_EQ(names(*BertClassifier(o, 3)), cls);
}

TEST(Bert, PrettyPrintNamesTheOptions) {
  std::ostringstream s;
  BertModel(tiny())->pretty_print(s);
  EXPECT_EQ(s.str(),
            "BertModel(vocab_size=30, hidden_size=16, num_layers=2, num_heads=4, "
            "intermediate_size=32, hidden_act=gelu, dropout=0, attention_dropout=0, "
            "max_position_embeddings=12, type_vocab_size=2, layer_norm_eps=1e-12, pad_id=0)");
}

TEST(Bert, InitialisationFollowsHuggingFace) {
  torch::manual_seed(0);
  BertForPreTraining m(tiny().hidden_size(64).num_heads(4));
  for (const auto& [name, t] : module_state(*m)) {
    if (name.find("LayerNorm.weight") != std::string::npos) {
      EXPECT_TRUE(t.eq(1).all().item<bool>()) << name;
    } else if (name.find("bias") != std::string::npos) {
      EXPECT_TRUE(t.eq(0).all().item<bool>()) << name;
    } else if (name.find("weight") != std::string::npos && t.numel() > 500) {
      EXPECT_NEAR(t.std().item<double>(), 0.02, 0.004) << name;
    }
  }
  EXPECT_TRUE(m->bert->embeddings->word_embeddings->weight[0].eq(0).all().item<bool>());
}

TEST(Bert, GradientsReachEveryParameter) {
  torch::manual_seed(0);
  BertForPreTraining m(tiny());
  auto ids = torch::randint(1, 30, {2, 6}, torch::kInt64);
  auto out = m->forward(ids, torch::ones_like(ids), torch::randint(0, 2, {2, 6}, torch::kInt64));
  (out.prediction_logits.pow(2).mean() + out.seq_relationship_logits.pow(2).mean()).backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

TEST(Bert, MlmDecoderIsTheWordEmbeddingMatrix) {
  torch::manual_seed(0);
  BertForPreTraining m(tiny());
  auto h = torch::randn({2, 16});
  auto expected =
      torch::linear(m->cls->predictions->transform(h), m->bert->embeddings->word_embeddings->weight,
                    m->cls->predictions->bias);
  EXPECT_TRUE(torch::allclose(m->mlm_logits(h), expected));
  torch::NoGradGuard no_grad;
  m->bert->embeddings->word_embeddings->weight.add_(1);
  EXPECT_FALSE(torch::allclose(m->mlm_logits(h), expected));
}

TEST(Bert, OverfitsOneBatch) {
  torch::manual_seed(0);
  BertClassifier m(tiny(), 3);
  auto ids = torch::randint(1, 30, {6, 5}, torch::kInt64);
  auto labels = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  torch::optim::Adam opt(m->parameters(), 3e-3);
  double loss_value = 0;
  for (int step = 0; step < 150; ++step) {
    opt.zero_grad();
    auto loss = torch::cross_entropy_loss(m->forward(ids), labels);
    loss.backward();
    opt.step();
    loss_value = loss.item<double>();
  }
  EXPECT_LT(loss_value, 0.05);
}

TEST(Bert, BadInputIsNamed) {
  EXPECT_THROW_WITH(BertModel(tiny().hidden_size(18)),
                    "hidden_size (18) must be divisible by num_heads (4)");
  EXPECT_THROW_WITH(BertModel(tiny().hidden_act("swish")), "unknown activation 'swish'");
  BertModel bert(tiny());
  EXPECT_THROW_WITH(bert->forward(torch::full({1, 3}, 30, torch::kInt64)),
                    "token ids must be in [0, 30), got [30, 30]");
  EXPECT_THROW_WITH(bert->forward(torch::ones({1, 13}, torch::kInt64)),
                    "sequence length 13 exceeds max_position_embeddings (12)");
  EXPECT_THROW_WITH(bert->forward(torch::ones({1, 3}, torch::kInt64), torch::ones({1, 4})),
                    "attention_mask [1, 4] must match input_ids [1, 3]");
  EXPECT_THROW_WITH(
      bert->forward(torch::ones({1, 3}, torch::kInt64), {}, torch::full({1, 3}, 2, torch::kInt64)),
      "token_type_ids must be in [0, 2)");
  EXPECT_THROW_WITH(BertClassifier(tiny(), 0), "num_labels must be positive");
}

}  // namespace
}  // namespace nlpkit
