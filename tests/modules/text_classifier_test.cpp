#include "modules/text_classifier.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

using Document = std::vector<std::vector<int64_t>>;  // sentences of token ids

struct Batch {
  torch::Tensor ids, word_mask, sentence_mask;
};

// Pads documents to (B, D, S). Padded positions hold `pad_fill`, or random ids in
// [1, random_pad_vocab) when that is positive: masking, not the pad id, must hide them.
Batch make_batch(const std::vector<Document>& docs, int64_t d, int64_t s, int64_t pad_fill = 0,
                 int64_t random_pad_vocab = 0) {
  const int64_t b = static_cast<int64_t>(docs.size());
  Batch batch;
  batch.ids = random_pad_vocab > 0 ? torch::randint(1, random_pad_vocab, {b, d, s}, torch::kLong)
                                   : torch::full({b, d, s}, pad_fill, torch::kLong);
  batch.word_mask = torch::zeros({b, d, s}, torch::kBool);
  batch.sentence_mask = torch::zeros({b, d}, torch::kBool);
  for (int64_t i = 0; i < b; ++i) {
    for (size_t j = 0; j < docs[i].size(); ++j) {
      batch.sentence_mask[i][j] = true;
      for (size_t k = 0; k < docs[i][j].size(); ++k) {
        batch.ids[i][j][k] = docs[i][j][k];
        batch.word_mask[i][j][k] = true;
      }
    }
  }
  return batch;
}

TextClassifierOptions tiny_options() {
  return TextClassifierOptions(/*vocab_size=*/30, /*num_classes=*/3)
      .embedding_dim(8)
      .cnn_hidden_size(4)
      .kernel_sizes({2, 3, 4})
      .hidden_size(5)
      .num_layers(2)
      .dropout(0.1);
}

std::vector<Document> sample_docs() {
  return {
      {{1, 2, 3, 4, 5}, {6, 7}, {8}},  // three sentences, one shorter than every kernel
      {{9, 10, 11}},                   // one sentence
      {{12, 13}, {14, 15, 16, 17}},    // two sentences
  };
}

// ---------------------------------------------------------------------------------------------
// Shapes, attention, padding

TEST(TextClassifierTest, OutputShapes) {
  torch::manual_seed(0);
  TextClassifier model(tiny_options());
  const std::vector<std::vector<int64_t>> shapes = {{1, 1, 1}, {2, 3, 5}, {4, 2, 2}, {3, 5, 7}};
  for (const auto& shape : shapes) {
    const int64_t b = shape[0], d = shape[1], s = shape[2];
    torch::Tensor ids = torch::randint(1, 30, {b, d, s}, torch::kLong);
    torch::Tensor word_mask = torch::ones({b, d, s}, torch::kBool);
    torch::Tensor sentence_mask = torch::ones({b, d}, torch::kBool);
    if (d > 1) {  // the first document loses its last sentence
      sentence_mask[0][d - 1] = false;
      word_mask[0][d - 1] = false;
    }
    TextClassifierOutput out = model(ids, word_mask, sentence_mask);
    EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({b, 3}));
    EXPECT_EQ(out.attention.sizes(), torch::IntArrayRef({b, d}));
    EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
  }
}

TEST(TextClassifierTest, AttentionSumsToOneAndIgnoresPaddedSentences) {
  torch::manual_seed(1);
  TextClassifier model(tiny_options());
  model->eval();
  std::vector<Document> docs = sample_docs();
  docs.push_back({});  // an empty document
  Batch batch = make_batch(docs, /*d=*/4, /*s=*/6);
  TextClassifierOutput out = model(batch.ids, batch.word_mask, batch.sentence_mask);
  torch::Tensor sums = out.attention.sum(1);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(sums[i].item<double>(), 1.0, 1e-6);
  EXPECT_EQ(sums[3].item<double>(), 0.0);  // no sentences, no weights
  EXPECT_TRUE(
      torch::equal(out.attention.masked_select(~batch.sentence_mask), torch::zeros({16 - 6})));
  EXPECT_TRUE((out.attention.masked_select(batch.sentence_mask) > 0).all().item<bool>());
  // An empty document's document vector is zero: its logits are fc's bias.
  EXPECT_TRUE(torch::allclose(out.logits[3], model->fc->bias));
}

TEST(TextClassifierTest, PaddingDoesNotChangeLogits) {
  torch::manual_seed(2);
  TextClassifier model(tiny_options().use_pretrained(true));
  model->set_pretrained(torch::randn({30, 8}));  // a non-zero pretrained pad row too
  model->eval();
  const std::vector<Document> docs = sample_docs();
  Batch tight = make_batch(docs, 3, 5);
  // Two more sentences and three more words, padded with random (valid) ids.
  Batch loose = make_batch(docs, 5, 8, 0, /*random_pad_vocab=*/30);
  TextClassifierOutput a = model(tight.ids, tight.word_mask, tight.sentence_mask);
  TextClassifierOutput b = model(loose.ids, loose.word_mask, loose.sentence_mask);
  EXPECT_TRUE(torch::allclose(a.logits, b.logits, 1e-5, 1e-6)) << a.logits << "\n" << b.logits;
  EXPECT_TRUE(torch::allclose(a.attention, b.attention.narrow(1, 0, 3), 1e-5, 1e-6));
  // A document alone, padded only to its own longest sentence, gives the same logits as inside
  // a batch of longer documents.
  for (size_t i = 0; i < docs.size(); ++i) {
    size_t longest = 0;
    for (const auto& sentence : docs[i]) longest = std::max(longest, sentence.size());
    Batch alone =
        make_batch({docs[i]}, static_cast<int64_t>(docs[i].size()), static_cast<int64_t>(longest));
    TextClassifierOutput single = model(alone.ids, alone.word_mask, alone.sentence_mask);
    EXPECT_TRUE(torch::allclose(single.logits[0], a.logits[i], 1e-5, 1e-6)) << "document " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Blocks against their definitions

TEST(WordCNNEncoderTest, MatchesWindowsStartingOnRealWords) {
  torch::manual_seed(3);
  WordCNNEncoder encoder(WordCNNEncoderOptions(/*embedding_dim=*/3, /*cnn_hidden_size=*/2, {1, 3}));
  torch::Tensor x = torch::randn({2, 4, 3});
  torch::Tensor mask =
      torch::tensor({true, true, false, false, true, false, false, false}).view({2, 4});
  torch::Tensor out = encoder(x, mask);  // (2, 4)
  ASSERT_EQ(out.sizes(), torch::IntArrayRef({2, 4}));
  const std::vector<int64_t> lengths = {2, 1};
  const std::vector<int64_t> kernels = {1, 3};
  for (int64_t n = 0; n < 2; ++n) {
    for (size_t ki = 0; ki < kernels.size(); ++ki) {
      auto conv = encoder->convs[ki]->as<torch::nn::Conv2d>();
      for (int64_t c = 0; c < 2; ++c) {
        // max over windows i < length of relu(b + sum_j w[j] . x[i + j]), x = 0 past the end.
        double best = -1;
        for (int64_t i = 0; i < lengths[n]; ++i) {
          double v = conv->bias[c].item<double>();
          for (int64_t j = 0; j < kernels[ki]; ++j) {
            if (i + j < lengths[n]) v += (conv->weight[c][0][j] * x[n][i + j]).sum().item<double>();
          }
          best = std::max(best, std::max(v, 0.0));
        }
        EXPECT_NEAR(out[n][ki * 2 + c].item<double>(), best, 1e-5) << n << " " << ki << " " << c;
      }
    }
  }
  // A sentence without words encodes to zeros.
  EXPECT_TRUE(torch::equal(encoder(x, torch::zeros({2, 4}, torch::kBool)), torch::zeros({2, 4})));
}

TEST(WordCNNEncoderTest, WindowsOnPaddingNeverWinTheMax) {
  // Every real window scores relu(0.5 - positive) = 0, while a window of padding alone would
  // score relu(bias) = 0.5: the padding must be masked, however long it is.
  WordCNNEncoder encoder(WordCNNEncoderOptions(2, 1, {2}));
  {
    torch::NoGradGuard no_grad;
    auto conv = encoder->convs[0]->as<torch::nn::Conv2d>();
    conv->weight.fill_(-1);
    conv->bias.fill_(0.5);
  }
  for (int64_t s : {1, 2, 6}) {
    torch::Tensor mask = torch::zeros({1, s}, torch::kBool);
    mask[0][0] = true;  // one real word
    EXPECT_EQ(encoder(torch::ones({1, s, 2}), mask).item<double>(), 0.0) << "S = " << s;
  }
}

TEST(SentEncoderTest, MatchesLstmOverEachDocumentsRealSentences) {
  torch::manual_seed(4);
  SentEncoder encoder(SentEncoderOptions(3, 4).num_layers(2));
  encoder->eval();
  torch::Tensor x = torch::randn({3, 4, 3});
  torch::Tensor mask =
      torch::tensor({true, true, true, false, true, false, false, false, true, true, true, true})
          .view({3, 4});
  torch::Tensor out = encoder(x, mask);  // (3, 4, 8)
  const std::vector<int64_t> lengths = {3, 1, 4};
  for (int64_t n = 0; n < 3; ++n) {
    torch::Tensor alone = std::get<0>(encoder->lstm(x[n].narrow(0, 0, lengths[n]).unsqueeze(0)));
    EXPECT_TRUE(torch::allclose(out[n].narrow(0, 0, lengths[n]), alone[0], 1e-5, 1e-6)) << n;
    EXPECT_TRUE(torch::equal(out[n].narrow(0, lengths[n], 4 - lengths[n]),
                             torch::zeros({4 - lengths[n], 8})));
  }
  EXPECT_THROW_WITH(encoder(x, torch::tensor({false, true, true, true}).repeat({3, 1})),
                    "SentEncoder: sentence_mask must mark the real sentences first");
}

TEST(SentAttentionTest, MatchesDefinition) {
  torch::manual_seed(5);
  SentAttention attention(4);
  torch::Tensor h = torch::randn({1, 3, 4});
  torch::Tensor mask = torch::tensor({true, true, false}).view({1, 3});
  SentAttentionOutput out = attention(h, mask);
  torch::Tensor scores = torch::matmul(attention->key(h[0].narrow(0, 0, 2)), attention->query);
  torch::Tensor weights = torch::softmax(scores, 0);  // (2)
  EXPECT_TRUE(torch::allclose(out.attention[0].narrow(0, 0, 2), weights));
  EXPECT_TRUE(
      torch::allclose(out.document[0], (weights.unsqueeze(1) * h[0].narrow(0, 0, 2)).sum(0)));
}

// ---------------------------------------------------------------------------------------------
// Parameters

TEST(TextClassifierTest, StateDictKeys) {
  std::vector<std::string> expected = {
      "word_embedding.weight",
      "word_encoder.convs.0.weight",
      "word_encoder.convs.0.bias",
      "word_encoder.convs.1.weight",
      "word_encoder.convs.1.bias",
      "word_encoder.convs.2.weight",
      "word_encoder.convs.2.bias",
      "sent_encoder.lstm.weight_ih_l0",
      "sent_encoder.lstm.weight_hh_l0",
      "sent_encoder.lstm.bias_ih_l0",
      "sent_encoder.lstm.bias_hh_l0",
      "sent_encoder.lstm.weight_ih_l0_reverse",
      "sent_encoder.lstm.weight_hh_l0_reverse",
      "sent_encoder.lstm.bias_ih_l0_reverse",
      "sent_encoder.lstm.bias_hh_l0_reverse",
      "sent_encoder.lstm.weight_ih_l1",
      "sent_encoder.lstm.weight_hh_l1",
      "sent_encoder.lstm.bias_ih_l1",
      "sent_encoder.lstm.bias_hh_l1",
      "sent_encoder.lstm.weight_ih_l1_reverse",
      "sent_encoder.lstm.weight_hh_l1_reverse",
      "sent_encoder.lstm.bias_ih_l1_reverse",
      "sent_encoder.lstm.bias_hh_l1_reverse",
      "sent_attention.query",
      "sent_attention.key.weight",
      "sent_attention.key.bias",
      "fc.weight",
      "fc.bias",
  };
  TextClassifier model(tiny_options());
  EXPECT_EQ(state_keys(*model), expected);
  expected.push_back("pretrained_embedding");
  TextClassifier with_pretrained(tiny_options().use_pretrained(true));
  EXPECT_EQ(state_keys(*with_pretrained), expected);
  EXPECT_EQ(with_pretrained->named_parameters().size(), expected.size() - 1);  // a buffer
  // Shapes that fix the checkpoint format.
  EXPECT_EQ(model->word_encoder->convs[1]->as<torch::nn::Conv2d>()->weight.sizes(),
            torch::IntArrayRef({4, 1, 3, 8}));
  EXPECT_EQ(model->sent_encoder->lstm->named_parameters()["weight_ih_l1"].sizes(),
            torch::IntArrayRef({20, 10}));  // 4 gates * 5, input 2 * 5
  EXPECT_EQ(model->fc->weight.sizes(), torch::IntArrayRef({3, 10}));
}

TEST(TextClassifierTest, GradientsReachEveryParameterButNotThePretrainedVectors) {
  torch::manual_seed(6);
  TextClassifier model(tiny_options().use_pretrained(true));
  model->set_pretrained(torch::randn({30, 8}));
  Batch batch = make_batch(sample_docs(), 4, 6);
  TextClassifierOutput out = model(batch.ids, batch.word_mask, batch.sentence_mask);
  torch::nn::functional::cross_entropy(out.logits, torch::tensor({0, 1, 2})).backward();
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
  }
  EXPECT_FALSE(model->pretrained_embedding.requires_grad());
  EXPECT_FALSE(model->pretrained_embedding.grad().defined());
  // The pad row learns nothing.
  EXPECT_EQ(model->word_embedding->weight.grad()[0].abs().sum().item<double>(), 0);
}

TEST(TextClassifierTest, PretrainedVectorsAddToTheTrainableEmbedding) {
  torch::manual_seed(7);
  TextClassifier with(tiny_options().use_pretrained(true));
  TextClassifier without(tiny_options());
  with->eval();
  without->eval();
  torch::Tensor vectors = torch::randn({30, 8});
  vectors[0].zero_();
  with->set_pretrained(vectors);
  {
    torch::NoGradGuard no_grad;
    auto source = with->named_parameters();
    for (auto& item : without->named_parameters()) item.value().copy_(source[item.key()]);
    without->word_embedding->weight.add_(vectors);
  }
  Batch batch = make_batch(sample_docs(), 3, 5);
  torch::Tensor a = with(batch.ids, batch.word_mask, batch.sentence_mask).logits;
  torch::Tensor b = without(batch.ids, batch.word_mask, batch.sentence_mask).logits;
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6));
  with->set_pretrained(torch::zeros({30, 8}));
  EXPECT_FALSE(torch::allclose(with(batch.ids, batch.word_mask, batch.sentence_mask).logits, b));
}

TEST(TextClassifierTest, CloneCopiesParametersAndPretrainedVectors) {
  TextClassifier model(tiny_options().use_pretrained(true));
  model->set_pretrained(torch::ones({30, 8}));
  auto copy = std::dynamic_pointer_cast<TextClassifierImpl>(model->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->pretrained_embedding, model->pretrained_embedding));
  EXPECT_TRUE(torch::equal(copy->fc->weight, model->fc->weight));
  model->set_pretrained(torch::zeros({30, 8}));
  EXPECT_EQ(copy->pretrained_embedding.sum().item<double>(), 240);  // deep copy
}

TEST(TextClassifierTest, OverfitsOneBatch) {
  torch::manual_seed(8);
  // Class 1 documents mention token 3 somewhere; class 0 documents never do.
  const std::vector<Document> docs = {
      {{5, 6, 7}, {3, 8}},     {{9, 10}, {11, 12, 13}}, {{3}},         {{14, 15, 16, 17}},
      {{18, 19}, {20, 3, 21}}, {{22}, {23, 24}},        {{25, 26, 3}}, {{27, 28}, {29}}};
  const torch::Tensor labels = torch::tensor({1, 0, 1, 0, 1, 0, 1, 0}, torch::kLong);
  Batch batch = make_batch(docs, 2, 4);
  TextClassifier model(TextClassifierOptions(30, 2)
                           .embedding_dim(8)
                           .cnn_hidden_size(8)
                           .kernel_sizes({2, 3})
                           .hidden_size(8)
                           .num_layers(1)
                           .dropout(0.0));
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-2));
  const auto start = std::chrono::steady_clock::now();
  double loss_value = 0;
  for (int step = 0; step < 100; ++step) {
    optimizer.zero_grad();
    torch::Tensor logits = model(batch.ids, batch.word_mask, batch.sentence_mask).logits;
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits, labels);
    loss.backward();
    optimizer.step();
    loss_value = loss.item<double>();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(loss_value, 0.05);
  EXPECT_LT(seconds, 2.0);
  model->eval();
  torch::Tensor predicted = model(batch.ids, batch.word_mask, batch.sentence_mask).logits.argmax(1);
  EXPECT_TRUE(torch::equal(predicted, labels));
}

// ---------------------------------------------------------------------------------------------
// Printing and errors

TEST(TextClassifierTest, PrettyPrint) {
  TextClassifier model(tiny_options());
  EXPECT_EQ(printed(*model),
            "TextClassifier(vocab_size=30, num_classes=3, embedding_dim=8, cnn_hidden_size=4, "
            "kernel_sizes=[2, 3, 4], hidden_size=5, num_layers=2, dropout=0.1, pad_id=0, "
            "use_pretrained=false)");
  EXPECT_EQ(printed(*model->word_encoder),
            "WordCNNEncoder(embedding_dim=8, cnn_hidden_size=4, kernel_sizes=[2, 3, 4])");
  EXPECT_EQ(printed(*model->sent_encoder),
            "SentEncoder(input_size=12, hidden_size=5, num_layers=2, dropout=0.1)");
  EXPECT_EQ(printed(*model->sent_attention), "SentAttention(hidden_size=10)");
  std::ostringstream tree;
  tree << *model;  // the whole tree prints with our labels
  EXPECT_NE(tree.str().find("(dropout): Dropout(p=0.1)"), std::string::npos) << tree.str();
}

TEST(TextClassifierTest, BadOptionsThrow) {
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(0, 2)),
                    "TextClassifier: vocab_size must be positive, got 0");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 0)),
                    "TextClassifier: num_classes must be positive, got 0");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 2).kernel_sizes({})),
                    "kernel_sizes must not be empty");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 2).kernel_sizes({2, 0})),
                    "kernel_sizes must be positive, got 0");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 2).dropout(1.0)),
                    "TextClassifier: dropout must be in [0, 1), got 1");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 2).pad_id(10)),
                    "TextClassifier: pad_id (10) must be in [0, vocab_size=10)");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 2).hidden_size(0)),
                    "hidden_size must be positive, got 0");
  EXPECT_THROW_WITH(TextClassifier(TextClassifierOptions(10, 2).num_layers(0)),
                    "num_layers must be positive, got 0");
}

TEST(TextClassifierTest, BadInputThrows) {
  TextClassifier model(tiny_options());
  Batch ok = make_batch(sample_docs(), 3, 5);
  EXPECT_THROW_WITH(model(ok.ids[0], ok.word_mask[0], ok.sentence_mask[0]),
                    "TextClassifier: expected ids of shape (B, D, S), got [3, 5]");
  EXPECT_THROW_WITH(model(ok.ids.to(torch::kInt), ok.word_mask, ok.sentence_mask),
                    "TextClassifier: expected int64 ids, got Int");
  EXPECT_THROW_WITH(model(ok.ids, ok.word_mask.narrow(2, 0, 4), ok.sentence_mask),
                    "TextClassifier: expected a bool word_mask of shape [3, 3, 5] like ids, got "
                    "Bool of shape [3, 3, 4]");
  EXPECT_THROW_WITH(model(ok.ids, ok.word_mask.to(torch::kLong), ok.sentence_mask),
                    "got Long of shape [3, 3, 5]");
  EXPECT_THROW_WITH(model(ok.ids, ok.word_mask, ok.sentence_mask.narrow(1, 0, 2)),
                    "TextClassifier: expected a bool sentence_mask of shape (B, D) = [3, 3], got "
                    "Bool of shape [3, 2]");
  torch::Tensor too_big = ok.ids.clone();
  too_big[1][0][0] = 30;
  EXPECT_THROW_WITH(model(too_big, ok.word_mask, ok.sentence_mask),
                    "TextClassifier: token ids must be in [0, vocab_size=30), got ids in [0, 30]");
  torch::Tensor negative = ok.ids.clone();
  negative[0][0][0] = -2;
  EXPECT_THROW_WITH(model(negative, ok.word_mask, ok.sentence_mask), "got ids in [-2, 17]");
  torch::Tensor no_sentences = ok.sentence_mask.clone();
  no_sentences[0][2] = false;  // sentence 2 of document 0 still has a word
  EXPECT_THROW_WITH(model(ok.ids, ok.word_mask, no_sentences),
                    "word_mask marks words in sentences that sentence_mask marks as padding");
  torch::Tensor gap = torch::zeros({1, 2}, torch::kBool);
  gap[0][1] = true;  // padding before a real sentence
  EXPECT_THROW_WITH(
      model(torch::ones({1, 2, 3}, torch::kLong), torch::zeros({1, 2, 3}, torch::kBool), gap),
      "sentence_mask must mark the real sentences first in each document");
  EXPECT_THROW_WITH(
      model(torch::zeros({0, 2, 3}, torch::kLong), torch::zeros({0, 2, 3}, torch::kBool),
            torch::zeros({0, 2}, torch::kBool)),
      "ids must not have an empty dimension, got [0, 2, 3]");
}

TEST(TextClassifierTest, SetPretrainedChecks) {
  TextClassifier plain(tiny_options());
  EXPECT_THROW_WITH(
      plain->set_pretrained(torch::zeros({30, 8})),
      "TextClassifier::set_pretrained: the model was built with use_pretrained=false");
  TextClassifier model(tiny_options().use_pretrained(true));
  EXPECT_THROW_WITH(model->set_pretrained(torch::zeros({30, 7})),
                    "expected vectors of shape (vocab_size=30, embedding_dim=8), got [30, 7]");
  EXPECT_TRUE(torch::equal(model->pretrained_embedding, torch::zeros({30, 8})));  // zeros until set
}

}  // namespace
}  // namespace nlpkit
