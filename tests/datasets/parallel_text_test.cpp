#include "datasets/parallel_text.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

class ParallelTextTest : public TempDirTest {};

TEST_F(ParallelTextTest, ReadsPairsSkipsHeaderAndBlankLines) {
  const std::string path = write("a.tsv", "source\ttarget\ncat\tK AE1 T\r\n\ndog\tD AO1 G\n");
  const ParallelFile file = read_parallel_tsv(path, "error");
  ASSERT_EQ(file.pairs.size(), 2u);
  EXPECT_EQ(file.pairs[0].target, "K AE1 T");
  EXPECT_EQ(file.pairs[1].source, "dog");
  EXPECT_EQ(file.pairs[1].line, 4);
}

TEST_F(ParallelTextTest, MalformedLinesAreErrorsOrCounted) {
  const std::string path = write("b.tsv", "cat\tK AE1 T\n \tX\ndog\nbee\t \n");
  EXPECT_ERROR(read_parallel_tsv(path, "error"), "b.tsv:2: empty source");
  const ParallelFile file = read_parallel_tsv(path, "skip");
  EXPECT_EQ(file.pairs.size(), 1u);
  EXPECT_EQ(file.skipped, 3);
  EXPECT_ERROR(read_parallel_tsv(write("c.tsv", "dog\n"), "error"),
               "c.tsv:1: expected source<TAB>target, found no tab");
  EXPECT_ERROR(read_parallel_tsv(write("d.tsv", "\n"), "error"), "no source<TAB>target pairs");
}

TEST(ParallelTokensTest, SplitAndJoin) {
  EXPECT_EQ(split_tokens("K  AE1 T ", "whitespace"), (std::vector<std::string>{"K", "AE1", "T"}));
  EXPECT_EQ(split_tokens("c\xC3\xA9 t", "char"), (std::vector<std::string>{"c", "\xC3\xA9", "t"}));
  EXPECT_EQ(join_tokens({"K", "AE1"}, "whitespace"), "K AE1");
  EXPECT_EQ(join_tokens({"c", "a"}, "char"), "ca");
  EXPECT_ERROR(split_tokens("x", "bpe"), "kind must be char or whitespace");
}

}  // namespace
}  // namespace nlpkit
