#include "modules/word_embeddings.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

// ------------------------------------------------------------------------ Word2Vec pieces

TEST(Word2VecTest, HuffmanCodesArePrefixFreeAndShortForFrequentWords) {
  const std::vector<int64_t> counts = {40, 25, 12, 10, 6, 4, 2, 1};
  const detail::HuffmanTree tree = detail::build_huffman_tree(counts);
  const auto v = static_cast<int64_t>(counts.size());
  for (int64_t w = 0; w < v; ++w) {
    ASSERT_EQ(tree.points[w].size(), tree.codes[w].size());
    ASSERT_FALSE(tree.codes[w].empty());
    EXPECT_EQ(tree.points[w][0], v - 2) << "every path starts at the root";
    for (int32_t p : tree.points[w]) EXPECT_TRUE(p >= 0 && p <= v - 2);
    if (w > 0) {
      EXPECT_LE(tree.codes[w - 1].size(), tree.codes[w].size());
    }
    for (int64_t u = 0; u < v; ++u) {
      if (u == w || tree.codes[u].size() < tree.codes[w].size()) continue;
      EXPECT_FALSE(std::equal(tree.codes[w].begin(), tree.codes[w].end(), tree.codes[u].begin()))
          << "code of " << w << " is a prefix of the code of " << u;
    }
  }
  // Kraft equality of a full binary tree: sum 2^-len == 1.
  double kraft = 0;
  for (const auto& c : tree.codes) kraft += std::ldexp(1.0, -static_cast<int>(c.size()));
  EXPECT_NEAR(kraft, 1.0, 1e-12);
  EXPECT_EQ(tree.codes[0].size(), 1u);  // 40 of 100: next to the root
}

TEST(Word2VecTest, NoiseSamplerFollowsCountsToThePower075) {
  const std::vector<int64_t> counts = {16, 1, 81, 0, 7};
  const detail::NoiseSampler noise = detail::build_noise_sampler(counts);
  ASSERT_EQ(noise.keep.size(), counts.size());
  const double z = 8 + 1 + 27 + 0 + std::pow(7.0, 0.75);  // 16^0.75, 1, 81^0.75, 0, 7^0.75
  const std::vector<double> exact = {8 / z, 1 / z, 27 / z, 0, std::pow(7.0, 0.75) / z};
  // The table's own probabilities are the distribution up to the coin's 24 bits.
  const std::vector<double> p = noise.probabilities();
  for (size_t w = 0; w < counts.size(); ++w) EXPECT_NEAR(p[w], exact[w], 1e-6) << w;
  // Draws from (slot, coin) bits follow it; a word never seen is never drawn.
  std::vector<double> share(counts.size(), 0);
  uint64_t state = 1;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 32);
  };
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const uint32_t slot = next();
    share[noise.sample(slot, next())] += 1.0 / draws;
  }
  for (size_t w = 0; w < counts.size(); ++w) EXPECT_NEAR(share[w], exact[w], 4e-3) << w;
  EXPECT_EQ(share[3], 0.0);
  EXPECT_THROW(detail::build_noise_sampler({0, 0}), c10::Error);
}

TEST(Word2VecTest, SubsamplingKeepsRareWordsAndThinsFrequentOnes) {
  // word2vec.c: (sqrt(f / t) + 1) * t / f with f = count / total.
  EXPECT_NEAR(detail::keep_probability(1000, 100000, 1e-3), (std::sqrt(10.0) + 1) * 0.1, 1e-12);
  EXPECT_GE(detail::keep_probability(1, 100000, 1e-3), 1.0);
  EXPECT_LT(detail::keep_probability(50000, 100000, 1e-3), 0.05);
  EXPECT_EQ(detail::keep_probability(50000, 100000, 0), 1.0);
}

TEST(Word2VecTest, SigmoidTableMatchesSigmoid) {
  for (float x = -5.9f; x < 5.9f; x += 0.37f) {
    EXPECT_NEAR(detail::table_sigmoid(x), 1 / (1 + std::exp(-x)), 0.01) << x;
  }
}

TEST(Word2VecTest, ParametersShapesAndPrint) {
  Word2Vec ns(Word2VecOptions(10, 4));
  EXPECT_EQ(parameter_keys(*ns),
            (std::vector<std::string>{"input_embeddings", "output_embeddings"}));
  EXPECT_EQ(ns->output_embeddings.sizes(), torch::IntArrayRef({10, 4}));
  EXPECT_EQ(ns->output_embeddings.abs().sum().item<float>(), 0.0f);
  EXPECT_LE(ns->input_embeddings.abs().max().item<float>(), 0.5f / 4);
  Word2Vec hs(Word2VecOptions(10, 4).loss("hierarchical_softmax").architecture("cbow"));
  EXPECT_EQ(hs->output_embeddings.sizes(), torch::IntArrayRef({9, 4}));
  EXPECT_EQ(hs->forward(torch::tensor({{1, 2, 3}})).sizes(), torch::IntArrayRef({1, 3, 4}));
  EXPECT_EQ(printed(*hs),
            "nlpkit::Word2Vec(vocab_size=10, embedding_dim=4, architecture=cbow, "
            "loss=hierarchical_softmax, window=5)");
  EXPECT_THROW_WITH(Word2Vec(Word2VecOptions(10, 4).architecture("glove")), "skip_gram or cbow");
}

// ------------------------------------------------------------------------ training

/// Two topics of `n` words each; every sentence draws its 10 words from one topic.
struct TopicCorpus {
  Word2VecCorpus corpus;
  int32_t n;
  std::vector<int64_t> counts;
  explicit TopicCorpus(int32_t words_per_topic = 6, int sentences = 400)
      : n(words_per_topic), counts(2 * words_per_topic, 0) {
    std::mt19937 rng(7);
    for (int s = 0; s < sentences; ++s) {
      const int topic = s % 2;
      std::vector<int32_t> sentence;
      for (int i = 0; i < 10; ++i) {
        const int32_t w = topic * n + static_cast<int32_t>(rng() % n);
        sentence.push_back(w);
        ++counts[w];
      }
      corpus.add(sentence);
    }
  }
};

/// Mean cosine of same-topic pairs minus that of cross-topic pairs (topics of n words).
double topic_margin(const torch::Tensor& vectors, int64_t n = 6) {
  const torch::Tensor u = vectors / vectors.norm(2, 1, true);
  const torch::Tensor cos = u.mm(u.t());
  const torch::Tensor topic = torch::arange(2 * n).div(n, "floor");
  const torch::Tensor same = topic.unsqueeze(1) == topic.unsqueeze(0);
  const torch::Tensor off_diagonal = ~torch::eye(2 * n, torch::kBool);
  return (cos.masked_select(same & off_diagonal).mean() - cos.masked_select(~same).mean())
      .item<double>();
}

class Word2VecTraining
    : public ::testing::TestWithParam<std::tuple<std::string, std::string, int64_t>> {};

TEST_P(Word2VecTraining, LearnsWhichWordsShareATopic) {
  const auto [architecture, loss, threads] = GetParam();
  torch::manual_seed(0);
  // Threads update the same rows without locks (Hogwild): with the 12-word vocabulary they
  // would collide on every update, so the threaded runs train on 2 x 60 words, as real
  // vocabularies spread the updates.
  const TopicCorpus data(threads == 1 ? 6 : 60, threads == 1 ? 400 : 2000);
  const int64_t vocab = 2 * data.n;
  Word2Vec model(Word2VecOptions(vocab, 16).architecture(architecture).loss(loss).window(3));
  const double before = topic_margin(model->input_embeddings.detach(), data.n);
  std::vector<Word2VecProgress> reports;
  const Word2VecProgress done =
      train_word2vec(model, data.corpus, data.counts,
                     Word2VecTrainOptions()
                         .lr(architecture == "cbow" ? 0.05 : 0.025)
                         .epochs(5)
                         .threads(threads)
                         .sample(0),
                     [&](const Word2VecProgress& p) { reports.push_back(p); });
  ASSERT_FALSE(reports.empty());
  const int64_t words = 10 * data.corpus.sentences();
  EXPECT_EQ(done.words_done, 5 * words);
  EXPECT_EQ(done.words_total, 5 * words);
  EXPECT_GT(done.words_per_second, 0);
  // Linear decay: at the end the rate is a small fraction of the start.
  EXPECT_LT(done.lr, 0.1 * (architecture == "cbow" ? 0.05 : 0.025));
  const double after = topic_margin(model->input_embeddings.detach(), data.n);
  EXPECT_LT(std::abs(before), 0.3);
  EXPECT_GT(after, 0.5) << architecture << " " << loss;
}

INSTANTIATE_TEST_SUITE_P(AllVariants, Word2VecTraining,
                         ::testing::Values(std::make_tuple("skip_gram", "negative_sampling", 1),
                                           std::make_tuple("cbow", "negative_sampling", 1),
                                           std::make_tuple("skip_gram", "hierarchical_softmax", 1),
                                           std::make_tuple("cbow", "hierarchical_softmax", 1),
                                           std::make_tuple("skip_gram", "negative_sampling", 3),
                                           std::make_tuple("skip_gram", "negative_sampling", 2),
                                           std::make_tuple("cbow", "negative_sampling", 3)));

TEST(Word2VecTest, OneThreadIsReproducible) {
  TopicCorpus data;
  auto run = [&](uint64_t seed) {
    torch::manual_seed(1);
    Word2Vec model(Word2VecOptions(12, 8));
    train_word2vec(model, data.corpus, data.counts, Word2VecTrainOptions().epochs(1).seed(seed));
    return model->input_embeddings.detach().clone();
  };
  EXPECT_TRUE(torch::equal(run(3), run(3)));
  EXPECT_FALSE(torch::equal(run(3), run(4)));
}

TEST(Word2VecTest, RejectsIdsOutsideTheVocabulary) {
  Word2Vec model(Word2VecOptions(3, 4));
  Word2VecCorpus corpus;
  corpus.add({0, 1, 5});
  EXPECT_THROW_WITH(train_word2vec(model, corpus, {1, 1, 1}, Word2VecTrainOptions()),
                    "word id 5 outside the vocabulary");
}

// ------------------------------------------------------------------------ FastText

TEST(FastTextTest, InputIdsAreWordsThenHashedNgrams) {
  const std::vector<int64_t> ids = fasttext_input_ids({3, 5, -1, 7}, 10, 2, 100);
  // Words 3, 5, 7 (the unknown one dropped), then the one bigram not broken by it.
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 3), (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(ids[3], 10 + static_cast<int64_t>((3ULL * 116049371ULL + 5ULL) % 100));
  EXPECT_EQ(fasttext_input_ids({1, 2, 3}, 10, 3, 100).size(), 3u + 2 + 1);
  EXPECT_EQ(fasttext_input_ids({1, 2, 3}, 10, 1, 0).size(), 3u);
}

TEST(FastTextTest, ShapesKeysPrintAndOverfitting) {
  torch::manual_seed(0);
  FastText model(FastTextOptions(6, 2).embedding_dim(8).word_ngrams(2).buckets(4));
  EXPECT_EQ(parameter_keys(*model),
            (std::vector<std::string>{"embedding.weight", "fc.weight", "fc.bias"}));
  EXPECT_EQ(model->embedding->weight.sizes(), torch::IntArrayRef({10, 8}));
  EXPECT_EQ(printed(*model),
            "nlpkit::FastText(vocab_size=6, num_classes=2, embedding_dim=8, word_ngrams=2, "
            "buckets=4)");
  // Two documents of words {0, 1} -> class 0 and {2, 3} -> class 1, plus an empty one.
  const torch::Tensor ids = torch::tensor({0, 1, 6, 2, 3, 7}, torch::kInt64);
  const torch::Tensor offsets = torch::tensor({0, 3, 6}, torch::kInt64);
  const torch::Tensor labels = torch::tensor({0, 1, 0}, torch::kInt64);
  EXPECT_EQ(model->forward(ids, offsets).sizes(), torch::IntArrayRef({3, 2}));
  torch::optim::SGD sgd(model->parameters(), 0.5);
  for (int i = 0; i < 200; ++i) {
    sgd.zero_grad();
    const torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->forward(ids, offsets), labels);
    loss.backward();
    // Step 0 has no gradient to the embeddings: fastText starts the output layer at zero.
    if (i == 1) {
      for (const auto& p : model->named_parameters()) {
        EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<float>() > 0)
            << p.key();
      }
    }
    sgd.step();
  }
  EXPECT_TRUE(torch::equal(model->forward(ids, offsets).argmax(-1), labels));
}

// ------------------------------------------------------------------------ NNLM

TEST(NNLMTest, ShapesKeysAndHistory) {
  NNLM model(
      NNLMOptions(20).context_size(3).embedding_dim(4).hidden_size(5).direct_connections(true));
  EXPECT_EQ(parameter_keys(*model),
            (std::vector<std::string>{"embedding.weight", "hidden.weight", "hidden.bias",
                                      "output.weight", "output.bias", "direct.weight"}));
  EXPECT_EQ(model->direct->weight.sizes(), torch::IntArrayRef({20, 12}));
  EXPECT_EQ(printed(*model),
            "nlpkit::NNLM(vocab_size=20, context_size=3, embedding_dim=4, hidden_size=5, "
            "direct_connections=true, dropout=0)");
  const torch::Tensor ids = torch::randint(1, 20, {2, 7}, torch::kInt64);
  const LMOutput whole = model->forward(ids);
  EXPECT_EQ(whole.logits.sizes(), torch::IntArrayRef({2, 7, 20}));
  EXPECT_TRUE(torch::equal(whole.h_n, ids.narrow(1, 4, 3)));
  // Two windows with the history carried == one window.
  const LMOutput first = model->forward(ids.narrow(1, 0, 4));
  const LMOutput second = model->forward(ids.narrow(1, 4, 3), first.h_n);
  EXPECT_TRUE(torch::allclose(torch::cat({first.logits, second.logits}, 1), whole.logits));
  // Position i sees exactly the 3 words ending at i: changing word 0 leaves logits 3.. alone.
  torch::Tensor changed = ids.clone();
  changed[0][0] = (ids[0][0].item<int64_t>() % 19) + 1;
  const torch::Tensor l = model->forward(changed).logits;
  EXPECT_FALSE(torch::allclose(l[0][0], whole.logits[0][0]));
  EXPECT_TRUE(torch::allclose(l[0].narrow(0, 3, 4), whole.logits[0].narrow(0, 3, 4)));
}

TEST(NNLMTest, LearnsADeterministicSequence) {
  torch::manual_seed(0);
  NNLM model(NNLMOptions(8).context_size(2).embedding_dim(8).hidden_size(16));
  // 1 2 3 4 5 6 7 1 2 3 ... : the next word is a function of the previous two.
  std::vector<int64_t> seq;
  for (int i = 0; i < 64; ++i) seq.push_back(1 + i % 7);
  const torch::Tensor data = torch::tensor(seq, torch::kInt64).view({2, 32});
  const torch::Tensor x = data.narrow(1, 0, 31), y = data.narrow(1, 1, 31);
  torch::optim::Adam adam(model->parameters(), 0.05);
  for (int i = 0; i < 150; ++i) {
    adam.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x).logits.reshape({-1, 8}), y.reshape({-1}))
        .backward();
    adam.step();
  }
  const torch::Tensor predicted = model->forward(x).logits.argmax(-1);
  // The first prediction of each row has a padded context; the rest are determined.
  EXPECT_TRUE(torch::equal(predicted.narrow(1, 1, 30), y.narrow(1, 1, 30)));
}

}  // namespace
}  // namespace nlpkit
