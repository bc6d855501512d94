#include "datasets/features.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

using Docs = std::vector<std::vector<std::string>>;

TEST(FeaturesTest, WordNgramsInOrderOfNThenPosition) {
  EXPECT_EQ(word_ngrams({"a", "b", "c"}, 1, 2),
            (std::vector<std::string>{"a", "b", "c", "a b", "b c"}));
  EXPECT_EQ(word_ngrams({"a", "b"}, 3, 3), std::vector<std::string>{});
  EXPECT_THROW_WITH(word_ngrams({"a"}, 2, 1), "bad n-gram range");
}

TEST(FeaturesTest, VocabularyByCountWithLimits) {
  const Docs docs = {{"a", "a", "b"}, {"b", "c"}, {"d"}, {"d", "e"}};
  const FeatureVocabulary v = FeatureVocabulary::fit(docs);
  ASSERT_EQ(v.size(), 5);
  EXPECT_EQ(v.term(0), "a");  // a, b, d have 2; byte order breaks the tie
  EXPECT_EQ(v.term(2), "d");
  EXPECT_EQ(v.document_frequency(0), 1);
  EXPECT_EQ(v.document_frequency(1), 2);
  EXPECT_EQ(v.id("zzz"), -1);
  FeatureOptions o;
  o.min_freq = 2;
  EXPECT_EQ(FeatureVocabulary::fit(docs, o).size(), 3);
  o.max_features = 1;
  EXPECT_EQ(FeatureVocabulary::fit(docs, o).size(), 1);
  FeatureOptions bigrams;
  bigrams.max_n = 2;
  EXPECT_EQ(FeatureVocabulary::fit(docs, bigrams).size(), 5 + 4);  // a a, a b, b c, d e
}

TEST(FeaturesTest, OneHotBagOfWordsAndTfidfAreSparse) {
  const Docs docs = {{"a", "a", "b"}, {"b", "c"}, {"d"}, {"d", "e", "zz"}};
  FeatureOptions o;
  o.min_freq = 1;
  const FeatureVocabulary v = FeatureVocabulary::fit({docs[0], docs[1], docs[2], {"d", "e"}}, o);
  const torch::Tensor oh = one_hot({"b", "zz", "a"}, v);
  EXPECT_TRUE(oh.is_sparse());
  EXPECT_TRUE(torch::equal(oh.to_dense(), torch::tensor({{0.f, 1.f, 0.f, 0.f, 0.f},
                                                         {0.f, 0.f, 0.f, 0.f, 0.f},
                                                         {1.f, 0.f, 0.f, 0.f, 0.f}})));
  const torch::Tensor bow = bag_of_words(docs, v);
  EXPECT_TRUE(bow.is_sparse());
  EXPECT_EQ(bow.to_dense()[0][0].item<float>(), 2.0f);
  EXPECT_EQ(bag_of_words(docs, v, true).to_dense()[0][0].item<float>(), 1.0f);
  // Textbook TF-IDF: tf = count / length, idf = log(N / (df + 1)), N = 4.
  const torch::Tensor t = tfidf(docs, v).to_dense();
  EXPECT_NEAR(t[0][0].item<float>(), 2.0 / 3 * std::log(4.0 / 2), 1e-6);  // a: df 1
  EXPECT_NEAR(t[0][1].item<float>(), 1.0 / 3 * std::log(4.0 / 3), 1e-6);  // b: df 2
  // "zz" is outside the vocabulary but still counts in the length of document 3.
  EXPECT_NEAR(t[3][v.id("e")].item<float>(), 1.0 / 3 * std::log(4.0 / 2), 1e-6);
  EXPECT_NEAR(inverse_document_frequency(v)[v.id("d")].item<float>(), std::log(4.0 / 3), 1e-6);
}

TEST(FeaturesTest, CooccurrenceOverAWindowIsSymmetric) {
  const Docs docs = {{"a", "b", "c"}, {"a", "x", "c"}};
  const FeatureVocabulary v = FeatureVocabulary::fit({{"a", "b", "c"}});
  const torch::Tensor m = cooccurrence_matrix(docs, v, 1).to_dense();
  EXPECT_TRUE(torch::equal(m, m.t()));
  EXPECT_EQ(m[v.id("a")][v.id("b")].item<float>(), 1.0f);
  EXPECT_EQ(m[v.id("a")][v.id("c")].item<float>(), 0.0f);  // two apart (x is a position)
  EXPECT_EQ(cooccurrence_matrix(docs, v, 2).to_dense()[v.id("a")][v.id("c")].item<float>(), 2.0f);
  FeatureOptions bigrams;
  bigrams.max_n = 2;
  EXPECT_THROW_WITH(cooccurrence_matrix(docs, FeatureVocabulary::fit(docs, bigrams), 1),
                    "needs a unigram vocabulary");
}

}  // namespace
}  // namespace nlpkit
