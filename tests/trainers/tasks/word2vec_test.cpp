#include "trainers/tasks/word2vec.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "datasets/tokenizers.h"
#include "datasets/word_vectors.h"
#include "tests/test_util.h"
#include "trainers/registry.h"

namespace nlpkit {
namespace {

class Word2VecTaskTest : public TempDirTest {
 protected:
  ExperimentConfig tiny(const std::vector<std::string>& extra = {}) {
    const std::string src = NLPKIT_SOURCE_DIR;
    std::vector<std::string> o = {"data.train=" + src + "/tests/data/tiny_lm/train.txt",
                                  "output_dir=" + (dir_ / "run").string(), "logging.progress=none"};
    o.insert(o.end(), extra.begin(), extra.end());
    return load_config(src + "/configs/tiny/word2vec.yaml", o);
  }
};

TEST_F(Word2VecTaskTest, TrainsAndWritesBothFormats) {
  auto task = make_task(tiny(), "", torch::kCPU);
  EXPECT_TRUE(Contains(task->summary(), "200 sentences"));
  ASSERT_TRUE(task->train_standalone());
  const WordVectors text = load_word_vectors((dir_ / "run/vectors.txt").string());
  const WordVectors binary = load_word_vectors((dir_ / "run/vectors.bin").string());
  EXPECT_EQ(text.words, binary.words);
  EXPECT_TRUE(torch::equal(text.vectors, binary.vectors));
  EXPECT_EQ(text.dim(), 16);
  EXPECT_EQ(text.words[0], ".");  // the most frequent token comes first, as in word2vec.c
  EXPECT_TRUE(std::filesystem::exists(dir_ / "run/vocab.txt"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "run/config.yaml"));
  EXPECT_EQ(nearest_neighbors(text, "dog", 3).size(), 3u);
}

TEST_F(Word2VecTaskTest, BuildsVocabularyByCountWithMinCount) {
  WhitespaceTokenizer tokenizer;
  const Word2VecData d =
      build_word2vec_data({"b a b c", "a b", "d"}, tokenizer, 2, 0, "corpus.txt");
  EXPECT_EQ(d.words, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(d.counts, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(d.corpus.ids, (std::vector<int32_t>{0, 1, 0, 1, 0}));  // c and d dropped
  EXPECT_EQ(d.corpus.sentences(), 2);
  EXPECT_EQ(build_word2vec_data({"b a b c"}, tokenizer, 1, 2, "x").words.size(), 2u);
}

TEST_F(Word2VecTaskTest, BadInputIsAClearError) {
  WhitespaceTokenizer tokenizer;
  EXPECT_ERROR(build_word2vec_data({" ", "\t"}, tokenizer, 1, 0, "c.txt"),
               "word2vec: c.txt holds no words (empty corpus)");
  EXPECT_ERROR(build_word2vec_data({"a b a"}, tokenizer, 5, 0, "c.txt"),
               "data.min_freq 5 removes every word of c.txt (the most frequent, 'a', occurs 2 "
               "times");
  const std::string empty = write("empty.txt", "\n\n");
  EXPECT_ERROR(make_task(tiny({"data.train=" + empty}), "", torch::kCPU), "data file has no text");
  EXPECT_ERROR(make_task(tiny({"data.min_freq=1000"}), "", torch::kCPU),
               "data.min_freq 1000 removes every word");
  EXPECT_ERROR(load_config(std::string(NLPKIT_SOURCE_DIR) + "/configs/tiny/word2vec.yaml",
                           {"model.architecture=glove"}),
               "model.architecture");
}

}  // namespace
}  // namespace nlpkit
