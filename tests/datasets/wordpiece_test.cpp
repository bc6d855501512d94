#include "datasets/wordpiece.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/input_error.h"
#include "tests/test_util.h"

namespace nlpkit {
namespace {

using Tokens = std::vector<std::string>;
using Ids = std::vector<int64_t>;

const std::string kGolden = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/golden/wordpiece_basic";

/// A small vocabulary: the specials, then words, then pieces.
WordPieceTokenizer small(bool lower_case = true, int64_t max_chars = 100) {
  return WordPieceTokenizer(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                                   // 0-4
       "hello", "world", "un",    "##aff", "##able", ",", "!",                         // 5-11
       "'",     "t",     "don",   "cafe",  "Hello",  "i", "##stanbul",                 // 12-18
       "中",    "文",    "x",     "##x",   "ed",     "$", "##s",       "naive", "."},  // 19-27
      {lower_case, true, max_chars});
}

std::string escaped(const std::string& text) { return nlohmann::json(text).dump(); }

TEST(WordpieceTest, GoldenHuggingFaceBertTokenizer) {
  // 340 texts x {lower_case true, false}, tokenized by HuggingFace's BertTokenizer
  // (tests/data/golden/wordpiece_basic/README.md lists the rules they exercise).
  const WordPieceTokenizer lower =
      WordPieceTokenizer::from_file(kGolden + "/vocab.txt", {/*lower_case=*/true});
  const WordPieceTokenizer cased =
      WordPieceTokenizer::from_file(kGolden + "/vocab.txt", {/*lower_case=*/false});
  ASSERT_EQ(lower.vocab_size(), 3000);
  std::ifstream in(kGolden + "/cases.jsonl");
  ASSERT_TRUE(in) << kGolden;
  int cases = 0, mismatches = 0, tokens = 0;
  for (std::string line; std::getline(in, line);) {
    const auto c = nlohmann::json::parse(line);
    const std::string text = c["text"];
    const auto expected_tokens = c["tokens"].get<Tokens>();
    const auto expected_ids = c["ids"].get<Ids>();
    const WordPieceTokenizer& tok = c["lower_case"].get<bool>() ? lower : cased;
    const Tokens got = tok.tokenize(text);
    const Ids ids = tok.encode(text);
    ++cases;
    tokens += static_cast<int>(got.size());
    if (got != expected_tokens || ids != expected_ids || tok.convert_tokens_to_ids(got) != ids) {
      ++mismatches;
      ADD_FAILURE() << "lower_case=" << c["lower_case"] << " text " << escaped(text)
                    << "\n  expected " << nlohmann::json(expected_tokens).dump() << "\n  got      "
                    << nlohmann::json(got).dump() << "\n  ids      " << nlohmann::json(ids).dump();
    }
  }
  EXPECT_EQ(cases, 680);
  EXPECT_EQ(tokens, 16213);
  EXPECT_EQ(mismatches, 0) << mismatches << " of " << cases << " cases differ";
}

TEST(WordpieceTest, GreedyLongestMatchFirstWithContinuations) {
  const auto tok = small();
  EXPECT_EQ(tok.tokenize("unaffable"), (Tokens{"un", "##aff", "##able"}));
  EXPECT_EQ(tok.encode("unaffable"), (Ids{7, 8, 9}));
  // One position without a piece makes the whole word [UNK], not just that part.
  EXPECT_EQ(tok.tokenize("unaffablez hello"), (Tokens{"[UNK]", "hello"}));
  EXPECT_EQ(tok.tokenize("xxxx"), (Tokens{"x", "##x", "##x", "##x"}));
  EXPECT_TRUE(tok.tokenize("").empty());
  EXPECT_TRUE(tok.tokenize(" \t\r\n\u3000").empty());
}

TEST(WordpieceTest, LowercasesStripsAccentsAndSplitsPunctuation) {
  const auto lower = small(true);
  EXPECT_EQ(lower.tokenize("Hello, WORLD! Don't"),
            (Tokens{"hello", ",", "world", "!", "don", "'", "t"}));
  // NFD then no Mn: precomposed and decomposed accents alike; Turkish İ -> i + U+0307 -> i.
  EXPECT_EQ(lower.tokenize("Café cafe\u0301 NAÏVE İstanbul"),
            (Tokens{"cafe", "cafe", "naive", "i", "##stanbul"}));
  // ASCII symbols count as punctuation; € is a symbol (Sc), not punctuation, so it stays glued.
  EXPECT_EQ(lower.tokenize("$5 x€"), (Tokens{"$", "[UNK]", "[UNK]"}));

  const auto cased = small(false);
  EXPECT_EQ(cased.tokenize("Hello, hello"), (Tokens{"Hello", ",", "hello"}));
  EXPECT_EQ(cased.tokenize("café"), (Tokens{"[UNK]"}));  // accents are kept when cased
  EXPECT_EQ(cased.tokenize("HELLO"), (Tokens{"[UNK]"}));
}

TEST(WordpieceTest, SpecialTokensAreCutOutFirst) {
  const auto lower = small(true);
  // Exact case only, anywhere, even glued to a word; the rest is lowercased around them.
  EXPECT_EQ(lower.tokenize("Hello[MASK]ed [CLS]world[SEP] [mask]"),
            (Tokens{"hello", "[MASK]", "ed", "[CLS]", "world", "[SEP]", "[UNK]", "[UNK]",
                    "[UNK]"}));  // "[", "mask", "]"
  EXPECT_EQ(lower.encode("[PAD][UNK]"), (Ids{0, 1}));
  // A special token formed by dropping an invisible character is kept whole too (HF's
  // never_split), when cased; lowercasing has turned it into "[mask]" otherwise.
  const auto cased = small(false);
  EXPECT_EQ(cased.tokenize("[MA\u200BSK]"), (Tokens{"[MASK]"}));
  EXPECT_EQ(lower.tokenize("[MA\u200BSK]"), (Tokens{"[UNK]", "[UNK]", "[UNK]"}));
}

TEST(WordpieceTest, CleansControlsAndSplitsCjk) {
  const auto tok = small();
  // Zero-width characters, the byte order mark, soft hyphen, NUL, U+FFFD and invalid UTF-8
  // vanish without splitting the word; tabs, line ends and Unicode spaces split.
  EXPECT_EQ(tok.tokenize("hel\u200Blo wor\xEF\xBB\xBFld\xC2\xAD\x01"), (Tokens{"hello", "world"}));
  EXPECT_EQ(tok.tokenize(std::string("hel\0lo", 6) + "\xFF" + "\tworld\u2028hello"),
            (Tokens{"hello", "world", "hello"}));
  EXPECT_EQ(tok.tokenize("x中文x"), (Tokens{"x", "中", "文", "x"}));
  EXPECT_EQ(WordPieceTokenizer(tok.vocab(), {true, /*tokenize_chinese_chars=*/false, 100})
                .tokenize("中文"),
            (Tokens{"[UNK]"}));
}

TEST(WordpieceTest, LongWordsAreUnknown) {
  const auto tok = small(true, /*max_chars=*/4);
  EXPECT_EQ(tok.tokenize("xxxx xxxxx"), (Tokens{"x", "##x", "##x", "##x", "[UNK]"}));
  const auto hf = small();
  EXPECT_EQ(hf.tokenize(std::string(100, 'x')).size(), 100u);
  EXPECT_EQ(hf.tokenize(std::string(101, 'x')), (Tokens{"[UNK]"}));
}

TEST(WordpieceTest, Unicode15CharactersAreKept) {
  // utf8proc knows Unicode 15.0; the golden's Python 3.11 knows 14.0, where U+1FAE8 (shaking
  // face, new in 15.0) is unassigned (Cn) and HuggingFace drops it: ["x", "x"] there.
  const auto tok = small();
  EXPECT_EQ(tok.tokenize("x \U0001FAE8 x"), (Tokens{"x", "[UNK]", "x"}));
}

TEST(WordpieceTest, EncodesPairsWithTypesTruncationAndPadding) {
  const auto tok = small();
  Encoding single = tok.encode_pair("hello world", nullptr, 0, false);
  EXPECT_EQ(single.tokens, (Tokens{"[CLS]", "hello", "world", "[SEP]"}));
  EXPECT_EQ(single.input_ids, (Ids{2, 5, 6, 3}));
  EXPECT_EQ(single.token_type_ids, (Ids{0, 0, 0, 0}));
  EXPECT_EQ(single.attention_mask, (Ids{1, 1, 1, 1}));

  const std::string b = "unaffable!";
  Encoding pair = tok.encode_pair("hello", &b, 10, /*pad=*/true);
  EXPECT_EQ(pair.tokens, (Tokens{"[CLS]", "hello", "[SEP]", "un", "##aff", "##able", "!", "[SEP]",
                                 "[PAD]", "[PAD]"}));
  EXPECT_EQ(pair.token_type_ids, (Ids{0, 0, 0, 1, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(pair.attention_mask, (Ids{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));

  // longest_first: the longer side loses tokens first, b on a tie.
  Encoding cut = tok.encode_pair("hello", &b, 6, false);
  EXPECT_EQ(cut.tokens, (Tokens{"[CLS]", "hello", "[SEP]", "un", "##aff", "[SEP]"}));
  const Ids three = {7, 8, 9};
  Encoding tie = tok.encode_ids_pair({5, 6, 5}, &three, 7, false);
  EXPECT_EQ(tie.input_ids, (Ids{2, 5, 6, 3, 7, 8, 3}));
  Encoding one = tok.encode_ids_pair({5, 6, 5}, nullptr, 3, true);
  EXPECT_EQ(one.input_ids, (Ids{2, 5, 3}));
  Encoding padded = tok.encode_ids_pair({}, nullptr, 4, true);
  EXPECT_EQ(padded.input_ids, (Ids{2, 3, 0, 0}));
  EXPECT_EQ(padded.tokens, (Tokens{"[CLS]", "[SEP]", "[PAD]", "[PAD]"}));

  EXPECT_ERROR(tok.encode_pair("hello", &b, 2, false), "max_length 2 leaves no room");
  EXPECT_ERROR(tok.encode_ids_pair({5, 99}, nullptr, 0, false), "token id 99 is outside");
  EXPECT_ERROR(tok.encode_ids_pair({-1}, nullptr, 0, false), "token id -1 is outside");
}

TEST(WordpieceTest, LongestFirstMatchesOneTokenAtATime) {
  // HuggingFace 4.19 removes one token per step from the longer sequence (b on a tie).
  for (int na = 0; na < 7; ++na) {
    for (int nb = 0; nb < 7; ++nb) {
      for (int max = 0; max < 14; ++max) {
        Ids a(na, 1), b(nb, 2);
        Ids ea = a, eb = b;
        while (static_cast<int>(ea.size() + eb.size()) > max) {
          (ea.size() > eb.size() ? ea : eb).pop_back();
        }
        truncate_longest_first(a, &b, max);
        EXPECT_EQ(a.size(), ea.size()) << na << " " << nb << " " << max;
        EXPECT_EQ(b.size(), eb.size()) << na << " " << nb << " " << max;
      }
    }
  }
  Ids a(5, 1);
  truncate_longest_first(a, nullptr, 3);
  EXPECT_EQ(a.size(), 3u);
}

TEST(WordpieceTest, DecodesLikeHuggingFace) {
  const auto tok = small();
  const Ids ids = tok.encode_pair("Hello, unaffable world! Don't", nullptr, 0, false).input_ids;
  EXPECT_EQ(tok.decode(ids), "hello, unaffable world! don't");
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/false),
            "[CLS] hello, unaffable world! don't [SEP]");
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_EQ(tok.decode({2, 3, 0}), "");
  EXPECT_EQ(tok.decode(tok.encode("x . x , x")), "x. x, x");
  EXPECT_ERROR(tok.decode({5, 3000}), "token id 3000 is outside the vocabulary [0, 28)");
}

TEST(WordpieceTest, LooksUpTokensAndIds) {
  const auto tok = small();
  EXPECT_EQ(tok.vocab_size(), 28);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.unk_id(), 1);
  EXPECT_EQ(tok.cls_id(), 2);
  EXPECT_EQ(tok.sep_id(), 3);
  EXPECT_EQ(tok.mask_id(), 4);
  EXPECT_EQ(tok.token_to_id("##aff"), 8);
  EXPECT_EQ(tok.token_to_id("nope"), 1);
  EXPECT_EQ(tok.id_to_token(6), "world");
  EXPECT_EQ(tok.convert_tokens_to_ids({"hello", "zzz", "[SEP]"}), (Ids{5, 1, 3}));
  EXPECT_TRUE(tok.options().lower_case);
  const Tokenizer& base = tok;  // usable wherever a Tokenizer is
  EXPECT_EQ(base.tokenize("Hello"), (Tokens{"hello"}));
}

class WordpieceFileTest : public TempDirTest {};

TEST_F(WordpieceFileTest, SavesAndLoadsVocabTxt) {
  const auto tok = small();
  const std::string path = (dir_ / "vocab.txt").string();
  tok.save_vocab(path);
  const auto loaded = WordPieceTokenizer::from_file(path);
  EXPECT_EQ(loaded.vocab(), tok.vocab());
  // Windows line ends and a byte order mark do not change the ids.
  std::string crlf = "\xEF\xBB\xBF";
  for (const auto& t : tok.vocab()) crlf += t + "\r\n";
  EXPECT_EQ(WordPieceTokenizer::from_file(write("crlf.txt", crlf)).vocab(), tok.vocab());
  // Without a final line end.
  EXPECT_EQ(
      WordPieceTokenizer::from_file(write("nofinal.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]"))
          .vocab_size(),
      5);
}

TEST_F(WordpieceFileTest, RejectsBadVocabularies) {
  EXPECT_ERROR(WordPieceTokenizer::from_file((dir_ / "none.txt").string()),
               "vocab file not found: " + (dir_ / "none.txt").string());
  const std::string empty = write("empty.txt", "");
  EXPECT_ERROR(WordPieceTokenizer::from_file(empty), "vocab file is empty: " + empty);
  const std::string no_unk = write("no_unk.txt", "[PAD]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
  EXPECT_ERROR(WordPieceTokenizer::from_file(no_unk),
               no_unk + ": WordPiece vocabulary lacks [UNK]");
  const std::string dup = write("dup.txt", "[PAD]\n[UNK]\nhello\n[CLS]\nhello\n");
  EXPECT_ERROR(WordPieceTokenizer::from_file(dup),
               dup + ":5: duplicate token 'hello' (first on line 3)");
  const std::string blank = write("blank.txt", "[PAD]\n[UNK]\n\n[CLS]\n");
  EXPECT_ERROR(WordPieceTokenizer::from_file(blank), blank + ":3: empty line");
  const std::string bad_utf8 = write("bad.txt", "[PAD]\nab\xFF\n");
  EXPECT_ERROR(WordPieceTokenizer::from_file(bad_utf8), bad_utf8 + ":2: invalid UTF-8");
  try {
    WordPieceTokenizer::from_file(no_unk);
    ADD_FAILURE() << "no exception";
  } catch (const InputError&) {  // bad input: the CLI's exit code 2
  }

  EXPECT_ERROR(WordPieceTokenizer({}), "WordPiece vocabulary is empty");
  EXPECT_ERROR(WordPieceTokenizer({"[PAD]", "[UNK]", "hello"}),
               "WordPiece vocabulary lacks [CLS], [SEP], [MASK]");
  EXPECT_ERROR(WordPieceTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"}),
               "duplicate entry 'a' (ids 5 and 6)");
  EXPECT_ERROR(WordPieceTokenizer({"[PAD]", "", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}),
               "entry 1 is empty");
}

TEST(WordpieceTrainTest, LearnsLikelihoodMerges) {
  // HuggingFace course's WordPiece example: hug x10, pug x5, pun x12, bun x4, hugs x5.
  std::vector<std::string> lines;
  for (auto [word, n] : std::vector<std::pair<std::string, int>>{
           {"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}}) {
    for (int i = 0; i < n; ++i) lines.push_back(word);
  }
  const Tokens alphabet = {"b", "h", "p", "##g", "##n", "##s", "##u"};
  Tokens vocab = train_wordpiece(lines, 5 + 7 + 3, {}, /*min_frequency=*/1);
  Tokens expected = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  expected.insert(expected.end(), alphabet.begin(), alphabet.end());
  // ("##g", "##s") scores 5 / (20 * 5) = 1/20, the best. Then six pairs tie at 1/36 and the
  // most frequent wins: ("p", "##u") (17), then ("h", "##u") (15, before ("##u", "##g") (15),
  // whose symbols are younger).
  expected.insert(expected.end(), {"##gs", "pu", "hu"});
  EXPECT_EQ(vocab, expected);

  const WordPieceTokenizer tok(vocab);
  EXPECT_EQ(tok.tokenize("Hugs bun"), (Tokens{"hu", "##gs", "b", "##u", "##n"}));
  // Small vocab_size: only the alphabet; large: stops when no pair is left.
  EXPECT_EQ(train_wordpiece(lines, 12, {}, 1).size(), 12u);
  const Tokens all = train_wordpiece(lines, 1000, {}, 1);
  EXPECT_LT(all.size(), 1000u);
  EXPECT_NE(std::find(all.begin(), all.end(), "hugs"), all.end());
  // min_frequency: bun (4) never reaches 5.
  const Tokens frequent = train_wordpiece(lines, 1000, {}, 5);
  EXPECT_EQ(std::find(frequent.begin(), frequent.end(), "bun"), frequent.end());
  EXPECT_NE(std::find(frequent.begin(), frequent.end(), "pun"), frequent.end());
}

TEST(WordpieceTrainTest, PreTokenizesLikeTheTokenizer) {
  const std::vector<std::string> lines = {"Héllo, WORLD!! [MASK]", "hello world 中文"};
  const Tokens vocab = train_wordpiece(lines, 1000, {}, 1);
  const WordPieceTokenizer tok(vocab);
  EXPECT_EQ(tok.tokenize("Héllo, WORLD!! [MASK] 中文"),
            (Tokens{"hello", ",", "world", "!", "!", "[MASK]", "中", "文"}));
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), "[MASK]"), 1);
  // Cased: capitals and accents are kept.
  const Tokens cased = train_wordpiece(lines, 1000, {/*lower_case=*/false}, 1);
  EXPECT_NE(std::find(cased.begin(), cased.end(), "Héllo"), cased.end());
  // Deterministic.
  EXPECT_EQ(train_wordpiece(lines, 1000, {}, 1), vocab);
}

TEST(WordpieceTrainTest, RejectsBadArguments) {
  EXPECT_ERROR(train_wordpiece({"a b"}, 5, {}), "vocab_size must be at least 6");
  EXPECT_ERROR(train_wordpiece({"a b"}, 100, {}, 0), "min_frequency must be at least 1");
  EXPECT_ERROR(train_wordpiece({" ", "\u200B"}, 100, {}), "the corpus has no words");
}

}  // namespace
}  // namespace nlpkit
