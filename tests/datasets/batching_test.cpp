#include "datasets/batching.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

using Strings = std::vector<std::string>;


TEST(SplitSentencesTest, English) {
  EXPECT_EQ(split_sentences("Hi there. How are you?! I'm fine"),
            (Strings{"Hi there.", "How are you?!", "I'm fine"}));
  EXPECT_EQ(split_sentences("Wait... what?  \n Really!"), (Strings{"Wait...", "what?", "Really!"}));
  // Marks inside a word do not end a sentence; closing quotes stay with their sentence.
  EXPECT_EQ(split_sentences("Pi is 3.14, e.g. roughly. See example.com now."),
            (Strings{"Pi is 3.14, e.g.", "roughly.", "See example.com now."}));
  EXPECT_EQ(split_sentences("He said \"no.\" Then (he left.) Done"),
            (Strings{"He said \"no.\"", "Then (he left.)", "Done"}));
  EXPECT_TRUE(split_sentences("").empty());
  EXPECT_TRUE(split_sentences(" \n\t ").empty());
  EXPECT_EQ(split_sentences("..."), (Strings{"..."}));
}

TEST(SplitSentencesTest, Chinese) {
  EXPECT_EQ(split_sentences("今天天气很好。我们去公园吧！你去吗？"),
            (Strings{"今天天气很好。", "我们去公园吧！", "你去吗？"}));
  EXPECT_EQ(split_sentences("真的吗？！“是的。”好"), (Strings{"真的吗？！", "“是的。”", "好"}));
  // An ASCII mark before a CJK character ends a sentence too.
  EXPECT_EQ(split_sentences("OK.好的"), (Strings{"OK.", "好的"}));
}

class EncodeTest : public ::testing::Test {
 protected:
  EncodeTest()
      : vocab_(Vocab::from_documents({{"a", "b", "c", "d", "e", "."}}, {})),
        tokenizer_(/*lowercase=*/true, /*split_punctuation=*/true) {}
  int64_t id(const std::string& token) const { return vocab_.id(token); }
  Vocab vocab_;
  WhitespaceTokenizer tokenizer_;
};

TEST_F(EncodeTest, SentencesOfWordIds) {
  const EncodedDocument doc = encode_document("A b. C zz d!", tokenizer_, vocab_, {});
  ASSERT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc[0], (std::vector<int64_t>{id("a"), id("b"), id(".")}));
  EXPECT_EQ(doc[1], (std::vector<int64_t>{id("c"), vocab_.unk_id(), id("d"), vocab_.unk_id()}));
}

TEST_F(EncodeTest, TruncatesSentencesAndLengths) {
  HierarchicalOptions options;
  options.max_sentences = 2;
  options.max_sentence_length = 2;
  // The sentences after the second one are dropped.
  const EncodedDocument doc = encode_document("a b c d. e. a. b.", tokenizer_, vocab_, options);
  ASSERT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc[0], (std::vector<int64_t>{id("a"), id("b")}));
  EXPECT_EQ(doc[1], (std::vector<int64_t>{id("e"), id(".")}));
}

// Keeps only lowercase ASCII words: punctuation-only sentences give no tokens.
class LettersOnlyTokenizer : public Tokenizer {
 public:
  std::vector<std::string> tokenize(const std::string& text) const override {
    std::vector<std::string> tokens;
    for (const std::string& t : WhitespaceTokenizer(true, true).tokenize(text)) {
      if (t[0] >= 'a' && t[0] <= 'z') tokens.push_back(t);
    }
    return tokens;
  }
};

TEST_F(EncodeTest, SentencesWithoutTokensAreDroppedAndEmptyDocumentsGetUnk) {
  HierarchicalOptions options;
  options.max_sentences = 2;  // counts the sentences that have tokens
  const EncodedDocument doc =
      encode_document("a b. !!! ?? c. d.", LettersOnlyTokenizer(), vocab_, options);
  EXPECT_EQ(doc, (EncodedDocument{{id("a"), id("b")}, {id("c")}}));
  EXPECT_EQ(encode_document("", tokenizer_, vocab_, {}), (EncodedDocument{{vocab_.unk_id()}}));
  EXPECT_EQ(encode_document(" \x01\x02 ", tokenizer_, vocab_, {}),
            (EncodedDocument{{vocab_.unk_id()}}));
  EXPECT_EQ(encode_document("!!", LettersOnlyTokenizer(), vocab_, {}),
            (EncodedDocument{{vocab_.unk_id()}}));
}

TEST_F(EncodeTest, OptionErrors) {
  HierarchicalOptions options;
  options.max_sentences = 0;
  EXPECT_ERROR(encode_document("a", tokenizer_, vocab_, options),
               "max_sentences (0) must be positive");
  options.max_sentences = 1;
  options.max_sentence_length = -1;
  EXPECT_ERROR(encode_document("a", tokenizer_, vocab_, options),
               "max_sentence_length (-1) must be positive");
  VocabOptions no_unk;
  no_unk.specials = {"<pad>"};
  const Vocab vocab = Vocab::from_documents({{"a"}}, no_unk);
  EXPECT_ERROR(encode_document("a", tokenizer_, vocab, {}), "the vocab has no unk token '<unk>'");
}

TEST(CollateTest, ShapesMasksAndPadding) {
  const EncodedDocument d0 = {{5, 6, 7}, {8}};
  const EncodedDocument d1 = {{9}};
  const EncodedDocument d2 = {{2, 3}, {4, 5}, {6}};
  const DocumentBatch batch = collate_documents({&d0, &d1, &d2}, {1, 0, 2}, /*pad_id=*/0);
  ASSERT_EQ(batch.ids.sizes(), (std::vector<int64_t>{3, 3, 3}));  // (B, D, S)
  EXPECT_EQ(batch.ids.dtype(), torch::kInt64);
  EXPECT_EQ(batch.word_mask.dtype(), torch::kBool);
  EXPECT_EQ(batch.sentence_mask.dtype(), torch::kBool);
  EXPECT_EQ(batch.word_mask.sizes(), batch.ids.sizes());
  EXPECT_EQ(batch.sentence_mask.sizes(), (std::vector<int64_t>{3, 3}));
  const torch::Tensor expected_ids = torch::tensor({5, 6, 7, 8, 0, 0, 0, 0, 0,  //
                                                    9, 0, 0, 0, 0, 0, 0, 0, 0,  //
                                                    2, 3, 0, 4, 5, 0, 6, 0, 0},
                                                   torch::kInt64)
                                         .view({3, 3, 3});
  EXPECT_TRUE(torch::equal(batch.ids, expected_ids));
  EXPECT_TRUE(torch::equal(batch.word_mask, expected_ids != 0));  // no real id is 0 here
  EXPECT_TRUE(
      torch::equal(batch.sentence_mask,
                   torch::tensor({1, 1, 0, 1, 0, 0, 1, 1, 1}).view({3, 3}).to(torch::kBool)));
  EXPECT_TRUE(torch::equal(batch.labels, torch::tensor({1, 0, 2}, torch::kInt64)));
}

TEST(CollateTest, PadIdIsUsedAndMaskMarksRealZeros) {
  const EncodedDocument d0 = {{0, 1}};
  const EncodedDocument d1 = {{2}};
  const DocumentBatch batch = collate_documents({&d0, &d1}, {}, /*pad_id=*/7);
  EXPECT_TRUE(torch::equal(batch.ids, torch::tensor({0, 1, 2, 7}, torch::kInt64).view({2, 1, 2})));
  EXPECT_TRUE(
      torch::equal(batch.word_mask, torch::tensor({1, 1, 1, 0}).view({2, 1, 2}).to(torch::kBool)));
  EXPECT_FALSE(batch.labels.defined());  // prediction batches have no labels
}

TEST(CollateTest, Errors) {
  const EncodedDocument good = {{1}};
  const EncodedDocument no_sentences = {};
  const EncodedDocument empty_sentence = {{1}, {}};
  EXPECT_ERROR(collate_documents({}, {}, 0), "collate_documents: no documents");
  EXPECT_ERROR(collate_documents({&good}, {1, 2}, 0), "2 labels for 1 documents");
  EXPECT_ERROR(collate_documents({&good, nullptr}, {}, 0), "document 1 is null");
  EXPECT_ERROR(collate_documents({&good, &no_sentences}, {}, 0), "document 1 has no sentences");
  EXPECT_ERROR(collate_documents({&empty_sentence}, {}, 0), "sentence 1 of document 0 is empty");
}

TEST(ShuffleTest, PermutationAndDeterminism) {
  const std::vector<int64_t> a = shuffled_indices(100, 42);
  EXPECT_EQ(a, shuffled_indices(100, 42));
  EXPECT_NE(a, shuffled_indices(100, 43));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_TRUE(shuffled_indices(0, 1).empty());
  EXPECT_EQ(shuffled_indices(1, 1), (std::vector<int64_t>{0}));
}

TEST(ShuffleTest, SameOutputOnEveryPlatform) {
  // Pinned values, computed with an independent Python mt19937_64: the engine is fully
  // specified by the standard and the rest is our own code, so a change here means that data
  // orders (and results) changed for every user.
  EXPECT_EQ(shuffled_indices(10, 1234), (std::vector<int64_t>{0, 3, 4, 7, 9, 8, 5, 6, 1, 2}));
  std::mt19937_64 rng(7);
  std::vector<uint64_t> draws;
  for (int i = 0; i < 5; ++i) draws.push_back(random_below(rng, 6));
  EXPECT_EQ(draws, (std::vector<uint64_t>{3, 0, 0, 0, 1}));
}

TEST(ShuffleTest, RandomBelowIsRoughlyUniform) {
  std::mt19937_64 rng(3);
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 6000; ++i) ++counts[random_below(rng, 6)];
  for (int c : counts) {
    EXPECT_GT(c, 850);
    EXPECT_LT(c, 1150);
  }
  EXPECT_ERROR(random_below(rng, 0), "bound must be positive");
}

// 60 of class 0, 30 of class 1, 10 of class 2.
std::vector<int64_t> skewed_labels() {
  std::vector<int64_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i % 10 < 6 ? 0 : i % 10 < 9 ? 1 : 2);
  return labels;
}

std::map<int64_t, int64_t> class_counts(const std::vector<int64_t>& indices,
                                        const std::vector<int64_t>& labels) {
  std::map<int64_t, int64_t> counts;
  for (int64_t i : indices) ++counts[labels[static_cast<size_t>(i)]];
  return counts;
}

TEST(StratifiedSplitTest, EveryIndexOnceAndClassProportionsKept) {
  const std::vector<int64_t> labels = skewed_labels();
  const SplitIndices split = stratified_split(labels, 0.1, 0.2, 5);
  std::multiset<int64_t> all(split.train.begin(), split.train.end());
  all.insert(split.valid.begin(), split.valid.end());
  all.insert(split.test.begin(), split.test.end());
  ASSERT_EQ(all.size(), 100u);
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(all.count(i), 1u) << i;
  EXPECT_EQ(class_counts(split.test, labels),
            (std::map<int64_t, int64_t>{{0, 12}, {1, 6}, {2, 2}}));
  EXPECT_EQ(class_counts(split.valid, labels),
            (std::map<int64_t, int64_t>{{0, 6}, {1, 3}, {2, 1}}));
  EXPECT_EQ(class_counts(split.train, labels),
            (std::map<int64_t, int64_t>{{0, 42}, {1, 21}, {2, 7}}));
  // The classes are mixed, not one block after another.
  EXPECT_FALSE(std::is_sorted(split.train.begin(), split.train.end()));
}

TEST(StratifiedSplitTest, DeterministicAndSeedDependent) {
  const std::vector<int64_t> labels = skewed_labels();
  const SplitIndices a = stratified_split(labels, 0.1, 0.1, 9);
  const SplitIndices b = stratified_split(labels, 0.1, 0.1, 9);
  const SplitIndices c = stratified_split(labels, 0.1, 0.1, 10);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.valid, b.valid);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.test, c.test);
}

TEST(StratifiedSplitTest, EdgeCasesAndErrors) {
  const SplitIndices none = stratified_split({0, 1, 1}, 0.0, 0.0, 1);
  EXPECT_EQ(none.train.size(), 3u);
  EXPECT_TRUE(none.valid.empty() && none.test.empty());
  const SplitIndices all_test = stratified_split({0, 0, 1}, 0.0, 1.0, 1);
  EXPECT_EQ(all_test.test.size(), 3u);
  EXPECT_TRUE(stratified_split({}, 0.1, 0.1, 1).train.empty());
  EXPECT_ERROR(stratified_split({0}, -0.1, 0.1, 1), "valid_fraction (-0.1) must lie in [0, 1]");
  EXPECT_ERROR(stratified_split({0}, 0.1, 1.5, 1), "test_fraction (1.5) must lie in [0, 1]");
  EXPECT_ERROR(stratified_split({0}, 0.6, 0.5, 1), "must be at most 1");
}

TEST(StratifiedKFoldTest, EachIndexInExactlyOneTestFold) {
  const std::vector<int64_t> labels = skewed_labels();
  const std::vector<SplitIndices> folds = stratified_kfold(labels, 4, 3);
  ASSERT_EQ(folds.size(), 4u);
  std::vector<int> in_test(100, 0);
  for (const SplitIndices& fold : folds) {
    EXPECT_TRUE(fold.valid.empty());
    EXPECT_EQ(fold.train.size() + fold.test.size(), 100u);
    std::set<int64_t> test(fold.test.begin(), fold.test.end());
    for (int64_t i : fold.train) EXPECT_EQ(test.count(i), 0u) << "index in train and test";
    for (int64_t i : fold.test) ++in_test[static_cast<size_t>(i)];
    EXPECT_EQ(fold.test.size(), 25u);
    // Per class: 60/4 = 15, 30/4 = 7 or 8, 10/4 = 2 or 3.
    const auto counts = class_counts(fold.test, labels);
    EXPECT_EQ(counts.at(0), 15);
    EXPECT_GE(counts.at(1), 7);
    EXPECT_LE(counts.at(1), 8);
    EXPECT_GE(counts.at(2), 2);
    EXPECT_LE(counts.at(2), 3);
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(in_test[static_cast<size_t>(i)], 1) << i;
}

TEST(StratifiedKFoldTest, DeterministicAndErrors) {
  const std::vector<int64_t> labels = skewed_labels();
  const auto a = stratified_kfold(labels, 5, 1);
  const auto b = stratified_kfold(labels, 5, 1);
  const auto c = stratified_kfold(labels, 5, 2);
  for (size_t f = 0; f < a.size(); ++f) {
    EXPECT_EQ(a[f].test, b[f].test);
    EXPECT_EQ(a[f].train, b[f].train);
  }
  EXPECT_NE(a[0].test, c[0].test);
  EXPECT_ERROR(stratified_kfold(labels, 1, 1), "k (1) must be at least 2");
  EXPECT_ERROR(stratified_kfold({0, 1}, 3, 1), "k (3) must not exceed the number of examples (2)");
}

TEST(StratifiedSubsetTest, ExactCountProportionsAndOrder) {
  const std::vector<int64_t> labels = skewed_labels();
  std::map<int64_t, int64_t> total;
  for (int64_t l : labels) ++total[l];
  const int64_t n = static_cast<int64_t>(labels.size());
  for (int64_t count : {int64_t{1}, int64_t{7}, n / 3, n - 1, n}) {
    const std::vector<int64_t> subset = stratified_subset(labels, count, 3);
    ASSERT_EQ(static_cast<int64_t>(subset.size()), count);
    EXPECT_TRUE(std::is_sorted(subset.begin(), subset.end()));
    EXPECT_EQ(std::set<int64_t>(subset.begin(), subset.end()).size(), subset.size());
    std::map<int64_t, int64_t> kept;
    for (int64_t i : subset) ++kept[labels[static_cast<size_t>(i)]];
    for (const auto& [label, c] : total) {
      const double share = static_cast<double>(count) * static_cast<double>(c) / n;
      EXPECT_LE(std::abs(static_cast<double>(kept[label]) - share), 1.0) << count << " " << label;
    }
  }
  EXPECT_EQ(stratified_subset(labels, 10, 3), stratified_subset(labels, 10, 3));
  EXPECT_NE(stratified_subset(labels, 10, 3), stratified_subset(labels, 10, 4));
  EXPECT_ERROR(stratified_subset(labels, 0, 1), "count (0) must lie in [1, number of examples");
  EXPECT_ERROR(stratified_subset({0, 1}, 3, 1), "count (3) must lie in [1, number of examples (2)]");
}

TEST(BootstrapSampleTest, DrawsWithReplacementDeterministically) {
  const std::vector<int64_t> sample = bootstrap_sample(1000, 5);
  ASSERT_EQ(sample.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(sample.begin(), sample.end()));
  EXPECT_GE(sample.front(), 0);
  EXPECT_LT(sample.back(), 1000);
  // A bootstrap sample holds about 1 - 1/e = 63.2% of the distinct examples.
  const double distinct = static_cast<double>(std::set<int64_t>(sample.begin(), sample.end()).size());
  EXPECT_NEAR(distinct / 1000, 0.632, 0.04);
  EXPECT_EQ(bootstrap_sample(1000, 5), sample);
  EXPECT_NE(bootstrap_sample(1000, 6), sample);
  EXPECT_ERROR(bootstrap_sample(0, 1), "n (0) must be positive");
}

TEST(EpochBatchesTest, ShardsTogetherAreTheUnshardedBatches) {
  // 2 shards of batch 3 = 1 shard of batch 6, batch by batch, every epoch.
  EpochBatches whole(24, 6, true, 5);
  EpochBatches rank0(24, 3, true, 5, 0, 2), rank1(24, 3, true, 5, 1, 2);
  ASSERT_EQ(rank0.count(), whole.count());
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    for (int64_t b = 0; b < whole.count(); ++b) {
      std::vector<int64_t> both = rank0.indices(epoch, b);
      const std::vector<int64_t> other = rank1.indices(epoch, b);
      both.insert(both.end(), other.begin(), other.end());
      std::vector<int64_t> expected = whole.indices(epoch, b);
      std::sort(both.begin(), both.end());
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(both, expected) << "epoch " << epoch << " batch " << b;
    }
  }
  EXPECT_NE(rank0.indices(0, 0), rank0.indices(1, 0)) << "reshuffled each epoch";
}

TEST(EpochBatchesTest, UnevenDataIsPaddedByWrappingAround) {
  // 7 examples on 3 shards: 9 slots, the first 2 of the order repeat; all shards get 3.
  std::vector<int64_t> seen;
  for (int64_t shard = 0; shard < 3; ++shard) {
    EpochBatches batches(7, 2, false, 1, shard, 3);
    EXPECT_EQ(batches.count(), 2);
    for (int64_t b = 0; b < batches.count(); ++b) {
      for (int64_t i : batches.indices(0, b)) seen.push_back(i);
    }
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 0, 1, 1, 2, 3, 4, 5, 6}));
  EXPECT_ERROR(EpochBatches(7, 2, false, 1, 3, 3), "shard 3 of 3 does not exist");
}

}  // namespace
// Padded length of a set of batches: what the model computes.
int64_t padded(const std::vector<std::vector<int64_t>>& batches,
               const std::vector<std::pair<int64_t, int64_t>>& lengths) {
  int64_t total = 0;
  for (const auto& b : batches) {
    int64_t s = 0, t = 0;
    for (int64_t i : b) s = std::max(s, lengths[i].first), t = std::max(t, lengths[i].second);
    total += static_cast<int64_t>(b.size()) * (s + t);
  }
  return total;
}

TEST(LengthGroupedBatchesTest, GroupedBatchesCoverEveryPairOnceAndPadLess) {
  std::mt19937 rng(3);
  std::vector<std::pair<int64_t, int64_t>> lengths;
  for (int i = 0; i < 1003; ++i) {  // words: as many phonemes as letters, give or take one
    const int64_t letters = 2 + rng() % 18;
    lengths.push_back({letters, letters - 1 + rng() % 3});
  }
  const auto in_order = length_grouped_batches(lengths, 10, 100, false, 7);
  ASSERT_EQ(in_order.size(), 101u);
  EXPECT_EQ(in_order[0], (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(in_order[100], (std::vector<int64_t>{1000, 1001, 1002}));

  const auto random = length_grouped_batches(lengths, 10, 1, true, 7);
  const auto grouped = length_grouped_batches(lengths, 10, 20, true, 7);
  for (const auto* batches : {&random, &grouped}) {
    ASSERT_EQ(batches->size(), 101u);
    std::vector<int64_t> seen;
    for (const auto& b : *batches) seen.insert(seen.end(), b.begin(), b.end());
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(lengths.size());
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all);
  }
  EXPECT_NE(random, in_order);
  // Sorted pools: much less padding than random batches, and the order is not by length.
  EXPECT_LT(padded(grouped, lengths) * 10, padded(random, lengths) * 7)
      << padded(grouped, lengths) << " vs " << padded(random, lengths);
  std::vector<std::pair<int64_t, int64_t>> firsts;
  for (const auto& b : grouped) firsts.push_back(lengths[b[0]]);
  EXPECT_FALSE(std::is_sorted(firsts.begin(), firsts.end())) << "the batches are shuffled";
  // Seeded: the same seed gives the same epoch, another seed another.
  EXPECT_EQ(length_grouped_batches(lengths, 10, 20, true, 7), grouped);
  EXPECT_NE(length_grouped_batches(lengths, 10, 20, true, 8), grouped);
}

}  // namespace nlpkit
