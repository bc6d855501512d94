#include "datasets/word_vectors.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

class WordVectorsTest : public TempDirTest {};

TEST_F(WordVectorsTest, TextAndBinaryRoundTripExactly) {
  const std::vector<std::string> words = {"king", "queen", "apple"};
  const torch::Tensor m = torch::randn({3, 5});
  for (const std::string name : {"v.txt", "v.bin"}) {
    const std::string path = (dir_ / name).string();
    save_word_vectors(path, words, m);
    const WordVectors back = load_word_vectors(path);
    EXPECT_EQ(back.words, words) << name;
    EXPECT_TRUE(torch::equal(back.vectors, m)) << name;
    EXPECT_EQ(back.index("queen"), 1);
  }
  // The text file is word2vec's: a header, then one word and its values a line.
  std::ifstream in(dir_ / "v.txt");
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header, "3 5");
}

TEST_F(WordVectorsTest, ReadsGloveFilesWithoutHeaderAndWord2VecTrailingSpaces) {
  const WordVectors v = load_word_vectors(write("g.txt", "a 1 0 \nb 0 1 \n"));
  EXPECT_EQ(v.dim(), 2);
  EXPECT_EQ(v.size(), 2);
}

TEST_F(WordVectorsTest, InconsistentDimensionsNameFileAndLine) {
  const std::string bad = write("bad.txt", "3 2\na 1 2\nb 1 2 3\nc 1 2\n");
  EXPECT_ERROR(load_word_vectors(bad), "bad.txt:3: 'b' has 3 values, expected 2 (as on line 1)");
  const std::string glove = write("glove.txt", "a 1 2\nb 1\n");
  EXPECT_ERROR(load_word_vectors(glove), "glove.txt:2: 'b' has 1 values, expected 2");
  EXPECT_ERROR(load_word_vectors(write("n.txt", "1 2\na 1 x\n")), "n.txt:2: bad number 'x'");
  EXPECT_ERROR(load_word_vectors(write("c.txt", "3 2\na 1 2\n")),
               "the header says 3 vectors but the file holds 1");
  EXPECT_ERROR(load_word_vectors(write("e.txt", "")), "e.txt: no word vectors");
  EXPECT_ERROR(load_word_vectors((dir_ / "missing.txt").string()), "not found");
  // Binary: a header claiming too few dimensions leaves bytes over; too many runs out.
  const std::string bin = (dir_ / "v.bin").string();
  save_word_vectors(bin, {"a", "b"}, torch::ones({2, 4}));
  std::string bytes;
  {
    std::ifstream in(bin, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string truncated = write("t.bin", bytes.substr(0, bytes.size() - 6));
  EXPECT_ERROR(load_word_vectors(truncated), "vector 2 of 2 ('b'): expected 4 float32 values");
  EXPECT_ERROR(load_word_vectors(write("h.bin", "oops\n")), "h.bin:1: expected a header");
}

TEST_F(WordVectorsTest, NeighborsAndAnalogyByCosine) {
  WordVectors v;
  v.source = "test";
  v.words = {"man", "woman", "king", "queen", "apple"};
  v.vectors = torch::tensor({{1.0f, 0.0f, 0.0f},
                             {1.0f, 1.0f, 0.0f},
                             {1.0f, 0.0f, 1.0f},
                             {1.0f, 1.0f, 1.0f},
                             {-1.0f, 0.2f, 0.0f}});
  v.build_index();
  const auto near = nearest_neighbors(v, "king", 2);
  ASSERT_EQ(near.size(), 2u);
  EXPECT_NE(near[0].first, "king");
  EXPECT_GE(near[0].second, near[1].second);
  EXPECT_EQ(analogy(v, "man", "king", "woman", 1)[0].first, "queen");
  EXPECT_EQ(nearest_neighbors(v, "king", 100).size(), 4u);
  EXPECT_ERROR(nearest_neighbors(v, "kingg", 3),
               "unknown word 'kingg' (not among the 5 words of test)");
  EXPECT_ERROR(analogy(v, "man", "king", "girl", 3), "unknown word 'girl'");
}

TEST_F(WordVectorsTest, RefusesWordsWithSpaces) {
  EXPECT_ERROR(save_word_vectors((dir_ / "x.txt").string(), {"a b"}, torch::ones({1, 2})),
               "free of whitespace");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "x.txt"));
}

}  // namespace
}  // namespace nlpkit
