#include "datasets/vocab.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;


// A fresh folder per test, so tests may run in parallel and leave nothing behind.
class VocabFileTest : public TempDirTest {};

TEST(VocabTest, SpecialsFirstThenByCountThenAlphabetically) {
  const Vocab vocab = Vocab::from_documents({{"b", "a", "c", "a"}, {"c", "d", "a"}}, {});
  // a:3, c:2, b:1, d:1 (b before d on the tie).
  EXPECT_EQ(vocab.tokens(), (std::vector<std::string>{"<pad>", "<unk>", "a", "c", "b", "d"}));
  EXPECT_EQ(vocab.size(), 6);
  EXPECT_EQ(vocab.pad_id(), 0);
  EXPECT_EQ(vocab.unk_id(), 1);
  EXPECT_EQ(vocab.id("c"), 3);
  EXPECT_EQ(vocab.id("never seen"), 1);
  EXPECT_EQ(vocab.token(4), "b");
  EXPECT_EQ(vocab.ids({"d", "zz", "a"}), (std::vector<int64_t>{5, 1, 2}));
  EXPECT_TRUE(vocab.contains("a"));
  EXPECT_FALSE(vocab.contains("zz"));
  EXPECT_ERROR(vocab.token(6), "Vocab: id 6 out of range [0, 6)");
}

TEST(VocabTest, SameCountsGiveSameIdsWhateverTheInsertionOrder) {
  std::unordered_map<std::string, int64_t> forward, backward;
  for (int i = 0; i < 50; ++i) forward["w" + std::to_string(i)] = i % 3;
  for (int i = 49; i >= 0; --i) backward["w" + std::to_string(i)] = i % 3;
  EXPECT_EQ(Vocab::from_counts(forward).tokens(), Vocab::from_counts(backward).tokens());
}

TEST(VocabTest, MinFreqAndMaxSize) {
  const std::unordered_map<std::string, int64_t> counts = {
      {"a", 5}, {"b", 4}, {"c", 2}, {"d", 1}, {"e", 1}};
  VocabOptions options;
  options.min_freq = 2;
  EXPECT_EQ(Vocab::from_counts(counts, options).tokens(),
            (std::vector<std::string>{"<pad>", "<unk>", "a", "b", "c"}));
  options.min_freq = 1;
  options.max_size = 4;  // specials count towards the limit
  EXPECT_EQ(Vocab::from_counts(counts, options).tokens(),
            (std::vector<std::string>{"<pad>", "<unk>", "a", "b"}));
  options.max_size = 1;
  EXPECT_ERROR(Vocab::from_counts(counts, options), "must leave room for the 2 special tokens");
  options.max_size = -1;
  EXPECT_ERROR(Vocab::from_counts(counts, options), "max_size (-1) must be >= 0");
}

TEST(VocabTest, CustomSpecials) {
  VocabOptions options;
  options.specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  options.pad_token = "[PAD]";
  options.unk_token = "[UNK]";
  // A special that also occurs in the text keeps its place and is not repeated.
  const Vocab vocab = Vocab::from_documents({{"x", "[CLS]", "x"}}, options);
  EXPECT_EQ(vocab.tokens(), (std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "x"}));
  EXPECT_EQ(vocab.unk_id(), 1);
  EXPECT_EQ(vocab.id("y"), 1);
}

TEST(VocabTest, WithoutUnkMissingTokensThrow) {
  VocabOptions options;
  options.specials = {"<pad>"};
  const Vocab vocab = Vocab::from_documents({{"a"}}, options);
  EXPECT_EQ(vocab.unk_id(), -1);
  EXPECT_EQ(vocab.pad_id(), 0);
  EXPECT_ERROR(vocab.id("b"), "token 'b' is not in the vocabulary, which has no unk token");
}

TEST(VocabTest, RejectsBadTokens) {
  EXPECT_ERROR(Vocab({"a", "b", "a"}), "token 'a' appears twice (ids 0 and 2)");
  EXPECT_ERROR(Vocab({"a", ""}), "token 1 is empty");
  EXPECT_ERROR(Vocab({"a\nb"}), "contains a line break");
}

TEST_F(VocabFileTest, SaveLoadRoundTrip) {
  const Vocab vocab = Vocab::from_documents({{"héllo", "世界", "a", "a"}}, {});
  const std::string path = (dir_ / "vocab.txt").string();
  vocab.save(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const Vocab loaded = Vocab::load(path);
  EXPECT_EQ(loaded.tokens(), vocab.tokens());
  EXPECT_EQ(loaded.pad_id(), 0);
  EXPECT_EQ(loaded.unk_id(), 1);
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "<pad>");
}

TEST_F(VocabFileTest, LoadsBertStyleVocabWithCrlf) {
  const std::string path = write("bert.txt", "[PAD]\r\n[UNK]\r\nhello\r\n");
  const Vocab vocab = Vocab::load(path, "[PAD]", "[UNK]");
  EXPECT_EQ(vocab.tokens(), (std::vector<std::string>{"[PAD]", "[UNK]", "hello"}));
  EXPECT_EQ(vocab.unk_id(), 1);
  EXPECT_EQ(vocab.id("bye"), 1);
}

TEST_F(VocabFileTest, LoadErrorsNamePathAndLine) {
  const std::string dup = write("dup.txt", "<pad>\n<unk>\nx\ny\nx\n");
  EXPECT_ERROR(Vocab::load(dup), dup + ":5: duplicate token 'x' (first on line 3)");
  const std::string empty = write("empty.txt", "<pad>\n\n<unk>\n");
  EXPECT_ERROR(Vocab::load(empty), empty + ":2: empty token");
  const std::string missing = (dir_ / "missing.txt").string();
  EXPECT_ERROR(Vocab::load(missing), "vocab file not found: " + missing);
}

TEST_F(VocabFileTest, SaveToMissingFolderNamesPath) {
  const std::string path = (dir_ / "no" / "such" / "vocab.txt").string();
  EXPECT_ERROR(Vocab({"a"}).save(path), "cannot write " + path);
}

TEST_F(VocabFileTest, Word2VecReadsVectorsOfVocabWords) {
  const Vocab vocab({"<pad>", "<unk>", "cat", "dog", "emu"});
  // word2vec's writer leaves a trailing space; "fish" is not in the vocab; "cat" repeats.
  const std::string path = write("vec.txt",
                                 "4 3\n"
                                 "cat 0.5 -1 2e-1 \n"
                                 "fish 9 9 9\n"
                                 "dog 1 2 3\n"
                                 "cat 7 7 7\n");
  int64_t found = -1;
  const torch::Tensor w = load_word2vec_text(path, vocab, 3, &found);
  EXPECT_EQ(found, 2);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(w.dtype(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(w[2], torch::tensor({0.5f, -1.0f, 0.2f})));  // the first "cat" wins
  EXPECT_TRUE(torch::equal(w[3], torch::tensor({1.0f, 2.0f, 3.0f})));
  EXPECT_TRUE(torch::equal(w[4], torch::zeros({3})));  // emu: not in the file
  EXPECT_TRUE(torch::equal(w[0], torch::zeros({3})));
}

TEST_F(VocabFileTest, Word2VecWithoutHeaderLikeGlove) {
  const Vocab vocab({"<pad>", "<unk>", "a"});
  const std::string path = write("glove.txt", "a 1 2\nb 3 4\n");
  const torch::Tensor w = load_word2vec_text(path, vocab, 2, nullptr);
  EXPECT_TRUE(torch::equal(w[2], torch::tensor({1.0f, 2.0f})));
}

TEST_F(VocabFileTest, Word2VecErrorsNamePathAndLine) {
  const Vocab vocab({"<pad>", "<unk>", "a"});
  const std::string dim = write("dim.txt", "1 4\na 1 2 3 4\n");
  EXPECT_ERROR(load_word2vec_text(dim, vocab, 3),
               dim + ":1: the header says vectors have 4 values but dim is 3");
  const std::string count = write("count.txt", "2 2\na 1 2\nb 1 2 3\n");
  EXPECT_ERROR(load_word2vec_text(count, vocab, 2),
               count + ":3: expected 2 values for 'b', found 3");
  const std::string number = write("number.txt", "2 2\nb 1 2\na 1 x2\n");
  EXPECT_ERROR(load_word2vec_text(number, vocab, 2),
               number + ":3: bad number 'x2' (value 2 of 'a')");
  const std::string truncated = write("truncated.txt", "3 2\na 1 2\nb 1 2\n");
  EXPECT_ERROR(load_word2vec_text(truncated, vocab, 2),
               truncated + ": the header says 3 vectors but the file holds 2");
  EXPECT_ERROR(load_word2vec_text((dir_ / "nope.txt").string(), vocab, 2),
               "word vectors file not found: ");
}

}  // namespace
}  // namespace nlpkit
