#include "datasets/cmudict.h"

#include <gtest/gtest.h>

#include <sstream>

#include "datasets/file_io.h"
#include "datasets/parallel_text.h"
#include "tests/test_util.h"

namespace nlpkit {
namespace {

class CmudictTest : public TempDirTest {
 protected:
  std::string dict() const {
    return std::string(NLPKIT_SOURCE_DIR) + "/tests/data/cmudict_tiny/dict.txt";
  }
  /// All pairs of the three splits: word -> pronunciations, and which split holds each word.
  std::map<std::string, std::vector<std::string>> read_all(
      std::map<std::string, std::string>* split_of) {
    std::map<std::string, std::vector<std::string>> all;
    for (const char* split : {"train", "valid", "test"}) {
      for (const auto& p :
           read_parallel_tsv((dir_ / (std::string(split) + ".tsv")).string(), "error").pairs) {
        all[p.source].push_back(p.target);
        if (split_of) {
          auto [it, inserted] = split_of->emplace(p.source, split);
          EXPECT_EQ(it->second, split) << p.source << " is in two splits";
        }
      }
    }
    return all;
  }
};

TEST_F(CmudictTest, ConvertsLettersToPhonemesKeepingAlternatives) {
  std::ostringstream log;
  convert_cmudict(dict(), dir_.string(), {}, log);
  std::map<std::string, std::string> split_of;
  const auto all = read_all(&split_of);
  // 21 entries: A., A42128, ABLE-BODIED left out; 12 words; alternatives kept in file order.
  EXPECT_EQ(all.size(), 12u);
  EXPECT_EQ(all.at("the"), (std::vector<std::string>{"DH AH0", "DH AH1", "DH IY0"}));
  EXPECT_EQ(all.at("aaronson").size(), 2u);
  EXPECT_EQ(all.at("a's"), (std::vector<std::string>{"EY1 Z"}));
  EXPECT_EQ(all.count("a42128"), 0u);
  EXPECT_TRUE(Contains(log.str(),
                       "cmudict: 21 entries, 12 words (6 extra pronunciations), 3 "
                       "entries with characters other than letters"))
      << log.str();
  // 90/5/5 by word: 12 words -> 10 / 1 / 1.
  int counts[3] = {0, 0, 0};
  for (const auto& [word, split] : split_of) {
    counts[split == "train" ? 0 : split == "valid" ? 1 : 2]++;
  }
  EXPECT_EQ(counts[0], 10);
  EXPECT_EQ(counts[1], 1);
  EXPECT_EQ(counts[2], 1);
  // The same seed gives the same bytes.
  const std::string first = detail::read_file((dir_ / "valid.tsv").string(), "tsv");
  convert_cmudict(dict(), dir_.string(), {}, log);
  EXPECT_EQ(detail::read_file((dir_ / "valid.tsv").string(), "tsv"), first);
}

TEST_F(CmudictTest, StripsStressAndMergesTheSamePronunciation) {
  std::ostringstream log;
  CmudictOptions options;
  options.strip_stress = true;
  convert_cmudict(dict(), dir_.string(), options, log);
  const auto all = read_all(nullptr);
  // DH AH0 and DH AH1 become one.
  EXPECT_EQ(all.at("the"), (std::vector<std::string>{"DH AH", "DH IY"}));
  EXPECT_EQ(all.at("aardvark"), (std::vector<std::string>{"AA R D V AA R K"}));
}

TEST_F(CmudictTest, MissingDictionaryNamesThePath) {
  std::ostringstream log;
  EXPECT_ERROR(convert_cmudict("/nonexistent/dict.txt", dir_.string(), {}, log),
               "/nonexistent/dict.txt");
}

}  // namespace
}  // namespace nlpkit
