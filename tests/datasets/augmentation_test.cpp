#include "datasets/augmentation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

const std::string kWordNet = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/wordnet_tiny";

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST(WordNetTest, SynonymsFromTheTinyDatabase) {
  auto wn = WordNet::load(kWordNet);
  // "film" is in two noun synsets: lemmas of both, in index order, underscores as spaces.
  EXPECT_EQ(wn->synonyms("film"),
            (std::vector<std::string>{"movie", "picture", "moving picture", "photographic film"}));
  EXPECT_EQ(wn->synonyms("Movie"), (std::vector<std::string>{"film", "picture", "moving picture"}));
  // Adjective markers such as "(a)" are dropped; a lemma alone in its synset has none.
  EXPECT_EQ(wn->synonyms("glad"), (std::vector<std::string>{"happy"}));
  EXPECT_EQ(wn->synonyms("happy"), (std::vector<std::string>{"glad"}));
  EXPECT_EQ(wn->synonyms("good"), (std::vector<std::string>{"full"}));
  EXPECT_EQ(wn->synonyms("moving picture"), (std::vector<std::string>{"movie", "film", "picture"}));
  EXPECT_EQ(wn->synonyms("quickly"), (std::vector<std::string>{"rapidly", "speedily"}));
  EXPECT_TRUE(wn->synonyms("run").empty());
  EXPECT_TRUE(wn->synonyms("zebra").empty());
}

TEST(WordNetTest, RealWordNetWhenInstalled) {
  if (!std::filesystem::exists("/usr/share/wordnet/index.noun")) {
    GTEST_SKIP() << "WordNet is not installed (Debian package wordnet-base)";
  }
  auto wn = WordNet::load("/usr/share/wordnet");
  const std::vector<std::string> s = wn->synonyms("movie");
  for (const char* expected : {"film", "picture", "moving picture", "flick"}) {
    EXPECT_NE(std::find(s.begin(), s.end(), expected), s.end()) << expected;
  }
  const std::vector<std::string> quick = wn->synonyms("quickly");
  EXPECT_NE(std::find(quick.begin(), quick.end(), "rapidly"), quick.end());
}

class AugmentationFilesTest : public TempDirTest {};

TEST_F(AugmentationFilesTest, MissingOrMalformedWordNetIsNamed) {
  EXPECT_ERROR(WordNet::load((dir_ / "nope").string()), "install the Debian package wordnet-base");
  EXPECT_ERROR(WordNet::load((dir_ / "nope").string()), "WordNet folder not found: ");
  write("index.noun", "movie n 5 0\n");
  EXPECT_ERROR(WordNet::load(dir_.string()), "data file not found");
  write("data.noun", "");
  for (const char* pos : {"verb", "adj", "adv"}) {
    write(std::string("index.") + pos, "");
    write(std::string("data.") + pos, "");
  }
  EXPECT_ERROR(WordNet::load(dir_.string()), "index.noun:1: malformed WordNet index line");
  write("index.noun", "  1 header\nmovie n 1 0 1 0 00000000\n");
  auto wn = WordNet::load(dir_.string());
  EXPECT_ERROR(wn->synonyms("movie"), "no synset at byte offset 0");
}

TEST_F(AugmentationFilesTest, SynonymTableForAnyLanguage) {
  const std::string path = write("syn.tsv",
                                 "# word\tsynonyms\n"
                                 "高兴\t开心\t快乐\n"
                                 "\n"
                                 "电影\t影片\n"
                                 "Great\tsuperb\tgreat\n");
  auto table = SynonymTable::load(path);
  EXPECT_EQ(table->synonyms("高兴"), (std::vector<std::string>{"开心", "快乐"}));
  EXPECT_EQ(table->synonyms("great"), (std::vector<std::string>{"superb"}));
  EXPECT_TRUE(table->synonyms("开心").empty());  // one-way
  EXPECT_TRUE(table->is_word("电影"));
  const std::string bad = write("bad.tsv", "a\tb\nlonely\n");
  EXPECT_ERROR(SynonymTable::load(bad),
               "bad.tsv:2: expected a word and at least one synonym, separated by tabs");
  EXPECT_ERROR(SynonymTable::load((dir_ / "none.tsv").string()), "synonym table not found: ");
  EXPECT_ERROR(load_stopwords((dir_ / "none.txt").string()), "stopword file not found: ");
  EXPECT_EQ(load_stopwords(write("stop.txt", "The\nof\n")), (std::set<std::string>{"the", "of"}));
  EXPECT_TRUE(load_stopwords("none").empty());
  EXPECT_TRUE(load_stopwords("english").count("the"));
}

TEST_F(AugmentationFilesTest, ChineseIsSegmentedByTheTable) {
  auto table = SynonymTable::load(write("syn.tsv", "高兴\t开心\n电影\t影片\n"));
  EdaOptions o;
  o.insertion_rate = o.swap_rate = o.deletion_rate = 0;
  o.synonym_rate = 1;
  o.copies = 1;
  Eda eda(o, {table}, {"我", "的"});
  EXPECT_EQ(eda.split("我很高兴看电影 ok"),
            (std::vector<std::string>{"我", "很", "高兴", "看", "电影", "ok"}));
  EXPECT_EQ(Eda::join({"我", "很", "高兴", "ok", "x"}), "我很高兴 ok x");
  EXPECT_EQ(eda.augment("我很高兴看电影", 1), (std::vector<std::string>{"我很开心看影片"}));
}

// ---------------------------------------------------------------------------------------------
// The operations

Eda tiny_eda(EdaOptions o = {}) { return Eda(o, {WordNet::load(kWordNet)}, english_stopwords()); }

TEST(EdaTest, SynonymReplacementSkipsStopwordsAndReplacesEveryOccurrence) {
  Eda eda = tiny_eda();
  EdaRandom random(1);
  const std::vector<std::string> words = {"the", "film", "was", "great", "fun", "the", "film"};
  const std::vector<std::string> out = eda.synonym_replacement(words, 1, random);
  ASSERT_EQ(out.size(), words.size());
  int changed_positions = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    if (out[i] != words[i]) ++changed_positions;
  }
  // One distinct word replaced: 1 position (great, fun) or 2 (film occurs twice).
  EXPECT_GE(changed_positions, 1);
  EXPECT_LE(changed_positions, 2);
  EXPECT_EQ(out[1], out[6]);
  EXPECT_EQ(out[0], "the");
  EXPECT_EQ(out[2], "was");
  // n = everything: every word with synonyms is replaced.
  const std::vector<std::string> all = eda.synonym_replacement(words, 100, random);
  EXPECT_NE(all[1], "film");
  EXPECT_NE(all[3], "great");
  EXPECT_NE(all[4], "fun");
  EXPECT_TRUE(eda.synonyms("the").empty());  // stopwords have none
}

TEST(EdaTest, InsertionSwapDeletion) {
  Eda eda = tiny_eda();
  EdaRandom random(3);
  const std::vector<std::string> words = {"a", "great", "movie", "here"};
  const std::vector<std::string> inserted = eda.random_insertion(words, 2, random);
  EXPECT_EQ(inserted.size(), 6u);
  // The originals keep their order; the new words are synonyms of great or movie.
  std::vector<std::string> rest;
  for (const auto& w : inserted) {
    if (std::find(words.begin(), words.end(), w) == words.end()) {
      const bool from_great = w == "outstanding";
      const bool from_movie = w == "film" || w == "picture" || w == "moving picture";
      EXPECT_TRUE(from_great || from_movie) << w;
    } else {
      rest.push_back(w);
    }
  }
  EXPECT_EQ(rest, words);

  const std::vector<std::string> swapped = Eda::random_swap(words, 1, random);
  std::vector<std::string> a = swapped, b = words;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  int moved = 0;
  for (size_t i = 0; i < words.size(); ++i) moved += swapped[i] != words[i];
  EXPECT_EQ(moved, 2);

  EXPECT_EQ(Eda::random_deletion(words, 0.0, random), words);
  EXPECT_EQ(Eda::random_deletion(words, 1.0, random).size(), 1u);  // one word always survives
  EXPECT_EQ(Eda::random_deletion({"alone"}, 1.0, random), (std::vector<std::string>{"alone"}));
  // About p of the words go.
  std::vector<std::string> many(2000, "w");
  const double kept = static_cast<double>(Eda::random_deletion(many, 0.3, random).size());
  EXPECT_NEAR(kept / 2000, 0.7, 0.04);
}

TEST(EdaTest, CopiesAreDeterministicForASeedAndCycleThroughTheOperations) {
  EdaOptions o;
  o.copies = 8;
  o.synonym_rate = o.insertion_rate = o.swap_rate = o.deletion_rate = 0.3;
  Eda eda = tiny_eda(o);
  const std::string text = "the movie was great fun and quickly over";
  const std::vector<std::string> first = eda.augment(text, 42);
  ASSERT_EQ(first.size(), 8u);
  EXPECT_EQ(eda.augment(text, 42), first);
  EXPECT_NE(eda.augment(text, 43), first);
  int differ = 0;
  for (const auto& copy : first) differ += copy != text;
  EXPECT_GE(differ, 6);  // a swap of equal words or a deletion of nothing can leave one unchanged
  // Only deletion on: every copy is a subsequence of the text.
  EdaOptions d;
  d.synonym_rate = d.insertion_rate = d.swap_rate = 0;
  d.deletion_rate = 0.5;
  d.copies = 3;
  for (const std::string& copy : tiny_eda(d).augment(text, 7)) {
    const std::vector<std::string> w = words_of(copy), all = words_of(text);
    EXPECT_FALSE(w.empty());
    size_t k = 0;
    for (const auto& word : all) k += k < w.size() && w[k] == word;
    EXPECT_EQ(k, w.size()) << copy;
  }
  // No words: unchanged copies. copies 0: nothing.
  EXPECT_EQ(eda.augment("   ", 1), (std::vector<std::string>(8, "   ")));
  o.copies = 0;
  EXPECT_TRUE(tiny_eda(o).augment(text, 1).empty());
}

TEST(EdaTest, BadRatesThrow) {
  EdaOptions o;
  o.swap_rate = 1.5;
  EXPECT_ERROR(tiny_eda(o), "EDA: every rate must be in [0, 1]");
  o.swap_rate = -0.1;
  EXPECT_ERROR(tiny_eda(o), "EDA: every rate must be in [0, 1]");
}

TEST(EdaRandomTest, SameSequenceForASeed) {
  EdaRandom a(5), b(5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), b.next());
  EdaRandom c(5);
  for (int i = 0; i < 1000; ++i) {
    const double u = c.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const int64_t k = c.below(7);
    ASSERT_GE(k, 0);
    ASSERT_LT(k, 7);
  }
}

}  // namespace
}  // namespace nlpkit
