#include "datasets/sentencepiece.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/input_error.h"
#include "datasets/pretrained_tokenizer.h"
#include "tests/test_util.h"

namespace nlpkit {
namespace {

using Tokens = std::vector<std::string>;
using Ids = std::vector<int64_t>;

/// A tiny corpus: a few sentences, repeated so that SentencePiece finds words worth a piece.
std::vector<std::string> corpus() {
  const std::vector<std::string> sentences = {
      "the quick brown fox jumps over the lazy dog",
      "the dog sleeps and the fox runs",
      "a quick brown dog jumps over a lazy fox",
      "Hello world, hello there!",
      "Foxes and dogs are not the same animals.",
      "Don't wake the sleeping dog.",
  };
  const std::vector<std::string> words = {"jumping", "sleeping", "running", "foxes",  "dogs",
                                          "quickly", "lazily",   "brown",   "the",    "over"};
  std::vector<std::string> lines;
  for (int r = 0; r < 10; ++r) lines.insert(lines.end(), sentences.begin(), sentences.end());
  for (size_t i = 0; i < 100; ++i) {  // every pair of words, in a fixed order
    lines.push_back(words[i % 10] + " " + words[(i / 10 + i) % 10] + " " + words[i / 10]);
  }
  return lines;
}

SentencePieceTrainOptions unigram() { return {}; }

const SentencePieceTokenizer& tiny() {
  static const SentencePieceTokenizer tok = train_sentencepiece(corpus(), 60, unigram());
  return tok;
}

TEST(SentencepieceTest, LearnsKnownPiecesDeterministically) {
  // Unigram (the default, DeBERTa-v3's): whole words for the frequent ones, characters else.
  const auto& tok = tiny();
  const std::string text = "the quick brown fox, Hello [MASK] dogs!";
  EXPECT_EQ(tok.tokenize(text), (Tokens{"▁the", "▁quick", "▁brown", "▁fox", ",", "▁", "H", "e",
                                        "l", "l", "o", "[MASK]", "▁dogs", "!"}));
  EXPECT_EQ(tok.encode(text), (Ids{5, 29, 11, 18, 41, 7, 44, 17, 6, 6, 9, 4, 14, 39}));
  EXPECT_TRUE(tok.continues_word(17));   // "e"
  EXPECT_FALSE(tok.continues_word(29));  // "▁quick"
  // The same lines, options and thread count give the same model.
  const auto again = train_sentencepiece(corpus(), 60, unigram());
  for (int64_t id = 0; id < 60; ++id) {
    EXPECT_EQ(again.id_to_token(id), tok.id_to_token(id)) << id;
    EXPECT_EQ(again.score(id), tok.score(id)) << id;
  }

  SentencePieceTrainOptions bpe;
  bpe.model_type = "bpe";
  const auto merges = train_sentencepiece(corpus(), 100, bpe);
  EXPECT_EQ(merges.vocab_size(), 100);
  EXPECT_EQ(merges.tokenize(text), (Tokens{"▁the", "▁quick", "▁brown", "▁fox", ",", "▁", "H",
                                           "e", "llo", "[MASK]", "▁dogs", "!"}));
  EXPECT_EQ(merges.encode(text), (Ids{9, 42, 41, 19, 96, 66, 99, 67, 61, 4, 47, 94}));
  EXPECT_EQ(merges.decode(merges.encode(text)), "the quick brown fox, Hello dogs!");
}

TEST(SentencepieceTest, ReservesTheDebertaV3SpecialTokens) {
  const auto& tok = tiny();
  EXPECT_EQ(tok.vocab_size(), 60);
  EXPECT_EQ(tok.piece_size(), 60);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.cls_id(), 1);
  EXPECT_EQ(tok.sep_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.mask_id(), 4);
  EXPECT_EQ((Tokens{tok.id_to_token(0), tok.id_to_token(1), tok.id_to_token(2),
                    tok.id_to_token(3), tok.id_to_token(4)}),
            (Tokens{"[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"}));
  for (int64_t id = 0; id < 5; ++id) {
    EXPECT_TRUE(tok.is_special_id(id));
    EXPECT_FALSE(tok.continues_word(id));
  }
  EXPECT_FALSE(tok.is_special_id(5));
  EXPECT_EQ(tok.token_to_id("[MASK]"), 4);
  EXPECT_EQ(tok.token_to_id("no such piece"), 3);
  EXPECT_STREQ(tok.type(), "sentencepiece");

  // DeBERTa-v3's own layout has no [MASK] piece: it becomes an added token after the pieces.
  SentencePieceTrainOptions v3;
  v3.mask_piece = false;
  const auto deberta = train_sentencepiece(corpus(), 40, v3);
  EXPECT_EQ(deberta.piece_size(), 40);
  EXPECT_EQ(deberta.vocab_size(), 41);
  EXPECT_EQ(deberta.mask_id(), 40);
  EXPECT_EQ(deberta.id_to_token(40), "[MASK]");
  EXPECT_EQ(deberta.token_to_id("[MASK]"), 40);
  EXPECT_EQ(deberta.encode("[MASK]"), (Ids{40}));
  EXPECT_EQ(deberta.decode({1, 40, 2}, false), "[CLS][MASK][SEP]");
}

TEST(SentencepieceTest, CutsOutSpecialTokensWrittenInTheText) {
  const auto& tok = tiny();
  const Ids dog = tok.encode("dog");
  Ids expected = {1};
  expected.insert(expected.end(), dog.begin(), dog.end());
  expected.push_back(4);
  expected.insert(expected.end(), dog.begin(), dog.end());
  expected.push_back(2);
  // The whitespace around a special token goes, as in HuggingFace.
  EXPECT_EQ(tok.encode("[CLS]dog [MASK]  dog[SEP]"), expected);
  EXPECT_EQ(tok.encode("[CLS] dog[MASK]dog [SEP]"), expected);
  EXPECT_EQ(tok.tokenize("[UNK][PAD]"), (Tokens{"[UNK]", "[PAD]"}));
  // Not special: other bracketed words and a lowercase [mask].
  EXPECT_EQ(tok.encode("[mask]").size() > 1, true);
  EXPECT_EQ(tok.encode("[").empty(), false);
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_TRUE(tok.encode("   ").empty());
}

TEST(SentencepieceTest, RoundTripsText) {
  const auto& tok = tiny();
  for (const std::string text :
       {"the quick brown fox jumps over the lazy dog", "Hello world, hello there!",
        "Don't wake the sleeping dog.", "dogs and foxes", "a"}) {
    const Ids ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text) << text;
    Tokens pieces = tok.tokenize(text);
    ASSERT_EQ(pieces.size(), ids.size()) << text;
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(tok.token_to_id(pieces[i]), ids[i]);
  }
  // Unknown characters: their own text as a piece, the [UNK] id, dropped by decode.
  const Ids ids = tok.encode("dog \U0001FAE8");
  EXPECT_EQ(ids.back(), tok.unk_id());
  EXPECT_EQ(tok.tokenize("dog \U0001FAE8").back(), "\U0001FAE8");
  EXPECT_EQ(tok.decode(ids), "dog");
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/false), "dog [UNK]");
  // Special tokens kept: as HuggingFace's DebertaV2Tokenizer.decode.
  EXPECT_EQ(tok.decode(tok.encode_pair("the dog", nullptr, 0, false).input_ids, false),
            "[CLS] the dog[SEP]");
  EXPECT_ERROR(tok.decode({5, 60}), "token id 60 is outside the vocabulary [0, 60)");
}

TEST(SentencepieceTest, EncodesPairsWithTypesTruncationAndPadding) {
  const auto& tok = tiny();
  const Ids a = tok.encode("the dog"), b = tok.encode("the quick brown fox");
  ASSERT_LT(a.size(), b.size());
  const std::string second = "the quick brown fox";
  Encoding pair = tok.encode_pair("the dog", &second, 0, false);
  Ids ids = {1};
  ids.insert(ids.end(), a.begin(), a.end());
  ids.push_back(2);
  ids.insert(ids.end(), b.begin(), b.end());
  ids.push_back(2);
  EXPECT_EQ(pair.input_ids, ids);
  Ids types(a.size() + 2, 0);
  types.resize(ids.size(), 1);
  EXPECT_EQ(pair.token_type_ids, types);
  EXPECT_EQ(pair.attention_mask, Ids(ids.size(), 1));
  EXPECT_EQ(pair.tokens.front(), "[CLS]");
  EXPECT_EQ(pair.tokens.back(), "[SEP]");

  // longest_first: b (the longer) loses its last pieces until both fit; then padding.
  const int64_t max_length = static_cast<int64_t>(2 * a.size() + 3);
  Encoding cut = tok.encode_pair("the dog", &second, max_length, false);
  ASSERT_EQ(static_cast<int64_t>(cut.input_ids.size()), max_length);
  EXPECT_TRUE(std::equal(b.begin(), b.begin() + a.size(), cut.input_ids.begin() + a.size() + 2));
  Encoding padded = tok.encode_pair("the dog", nullptr, 12, /*pad=*/true);
  ASSERT_EQ(padded.input_ids.size(), 12u);
  EXPECT_EQ(padded.input_ids.back(), 0);
  EXPECT_EQ(padded.tokens.back(), "[PAD]");
  EXPECT_EQ(padded.attention_mask.back(), 0);
  EXPECT_EQ(padded.token_type_ids.back(), 0);
  EXPECT_ERROR(tok.encode_pair("the dog", &second, 2, false), "max_length 2 leaves no room");
}

TEST(SentencepieceTest, LowercasesWhenAsked) {
  SentencePieceTrainOptions folded;
  folded.lower_case = true;
  const auto lower = train_sentencepiece(corpus(), 40, folded);
  EXPECT_EQ(lower.encode("HELLO World"), lower.encode("hello world"));
  const auto& tok = tiny();
  EXPECT_NE(tok.encode("HELLO"), tok.encode("hello"));
}

class SentencepieceFileTest : public TempDirTest {};

TEST_F(SentencepieceFileTest, SavesAndLoadsModelsAndFolders) {
  const auto& tok = tiny();
  const std::string path = (dir_ / "spm.model").string();
  tok.save_model(path);
  const auto loaded = SentencePieceTokenizer::from_file(path);
  const std::string text = "the quick brown fox, Hello [MASK] dogs!";
  EXPECT_EQ(loaded.encode(text), tok.encode(text));
  EXPECT_EQ(loaded.vocab_size(), 60);
  SentencePieceOptions options;
  options.lower_case = true;  // HuggingFace's do_lower_case
  const auto lower = SentencePieceTokenizer::from_file(path, options);
  EXPECT_EQ(lower.encode("HELLO [MASK] World"), tok.encode("hello [MASK] world"));

  tok.save_vocab((dir_ / "spm.vocab").string());
  std::ifstream listing(dir_ / "spm.vocab");
  std::string line;
  int lines = 0;
  while (std::getline(listing, line)) {
    if (lines == 4) {
      EXPECT_EQ(line, "[MASK]\t0");
    }
    ++lines;
  }
  EXPECT_EQ(lines, 60);

  // A HuggingFace-style folder: spm.model wins over a missing vocab.txt; do_lower_case is read.
  tok.save_pretrained(dir_.string(), 128);
  const auto tc = nlohmann::json::parse(std::ifstream(dir_ / "tokenizer_config.json"));
  EXPECT_EQ(tc["tokenizer_class"], "DebertaV2Tokenizer");
  EXPECT_EQ(tc["do_lower_case"], false);
  EXPECT_EQ(tc["model_max_length"], 128);
  const auto st = nlohmann::json::parse(std::ifstream(dir_ / "special_tokens_map.json"));
  EXPECT_EQ(st["mask_token"], "[MASK]");
  EXPECT_EQ(st["bos_token"], "[CLS]");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "added_tokens.json"));
  auto folder = load_pretrained_tokenizer(dir_.string(), /*lowercase=*/true, "wordpiece");
  EXPECT_STREQ(folder->type(), "sentencepiece");
  EXPECT_EQ(folder->encode(text), tok.encode(text));

  // DeBERTa-v3's layout writes added_tokens.json for [MASK].
  SentencePieceTrainOptions v3;
  v3.mask_piece = false;
  train_sentencepiece(corpus(), 40, v3).save_pretrained(dir_.string(), 128);
  const auto added = nlohmann::json::parse(std::ifstream(dir_ / "added_tokens.json"));
  EXPECT_EQ(added, nlohmann::json({{"[MASK]", 40}}));
  EXPECT_EQ(load_pretrained_tokenizer(dir_.string(), true, "sentencepiece")->mask_id(), 40);
  EXPECT_ERROR(load_pretrained_tokenizer((dir_ / "nothing").string(), true, "wordpiece"),
               "has no vocab.txt (BERT's WordPiece vocabulary) nor spm.model");
}

TEST_F(SentencepieceFileTest, RejectsMissingEmptyAndCorruptModels) {
  const std::string none = (dir_ / "none.model").string();
  EXPECT_ERROR(SentencePieceTokenizer::from_file(none),
               "SentencePiece model file not found: " + none);
  const std::string empty = write("empty.model", "");
  EXPECT_ERROR(SentencePieceTokenizer::from_file(empty),
               empty + ": empty file, not a SentencePiece model");
  const std::string text = write("text.model", "[PAD]\n[UNK]\nhello\n");
  EXPECT_ERROR(SentencePieceTokenizer::from_file(text), text + ": not a SentencePiece model");
  const std::string path = (dir_ / "spm.model").string();
  tiny().save_model(path);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string truncated = write("truncated.model", bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR(SentencePieceTokenizer::from_file(truncated),
               truncated + ": not a SentencePiece model");
  try {
    SentencePieceTokenizer::from_file(truncated);
    ADD_FAILURE() << "no exception";
  } catch (const InputError&) {  // bad input: the CLI's exit code 2
  }
}

TEST(SentencepieceTrainTest, RejectsBadArguments) {
  EXPECT_ERROR(train_sentencepiece(corpus(), 5, {}), "SentencePiece vocab_size must be at least 6");
  SentencePieceTrainOptions word;
  word.model_type = "word";
  EXPECT_ERROR(train_sentencepiece(corpus(), 40, word),
               "SentencePiece model_type must be unigram or bpe, found 'word'");
  EXPECT_ERROR(train_sentencepiece({"", "  "}, 40, {}), "the corpus has no text");
  EXPECT_ERROR(train_sentencepiece(corpus(), 5000, {}),
               "SentencePiece training failed: Vocabulary size too high (5000). Please set it to "
               "a value <= 64.");
  SentencePieceTrainOptions soft;
  soft.hard_vocab_limit = false;  // at most 5000: what the corpus gives
  EXPECT_EQ(train_sentencepiece(corpus(), 5000, soft).vocab_size(), 64);
}

}  // namespace
}  // namespace nlpkit
