#include "datasets/tokenizers.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nlpkit {
namespace {

using Tokens = std::vector<std::string>;

TEST(Utf8Test, DecodesAndEncodesEveryLength) {
  const std::string text = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  const std::vector<char32_t> cps = utf8_decode(text);
  EXPECT_EQ(cps, (std::vector<char32_t>{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(utf8_encode(cps), text);
}

TEST(Utf8Test, InvalidBytesBecomeReplacementCharacters) {
  // A stray continuation byte and an invalid lead byte: one U+FFFD each.
  EXPECT_EQ(utf8_decode("a\x80z\xFF"), (std::vector<char32_t>{U'a', 0xFFFD, U'z', 0xFFFD}));
  // A truncated 3-byte sequence is one maximal invalid subpart: one U+FFFD, and the byte that
  // broke it starts the next character.
  EXPECT_EQ(utf8_decode("\xE4\xB8z"), (std::vector<char32_t>{0xFFFD, U'z'}));
  EXPECT_EQ(utf8_decode("\xE4\xB8"), (std::vector<char32_t>{0xFFFD}));
  // Overlong "/" (C0 AF), an encoded surrogate (ED A0 80), and a value above U+10FFFF.
  EXPECT_EQ(utf8_decode("\xC0\xAF"), (std::vector<char32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(utf8_decode("\xED\xA0\x80"), (std::vector<char32_t>{0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_EQ(utf8_decode("\xF4\x90\x80\x80"),
            (std::vector<char32_t>{0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_EQ(utf8_sanitize("ok\xFF"), "ok\xEF\xBF\xBD");
  EXPECT_EQ(utf8_sanitize("\xE4\xB8\xAD"), "\xE4\xB8\xAD");  // valid text is unchanged
  std::string out;
  utf8_append(out, 0xD800);  // a lone surrogate cannot be encoded
  EXPECT_EQ(out, "\xEF\xBF\xBD");
}

TEST(Utf8Test, CharacterClasses) {
  EXPECT_TRUE(is_whitespace(U' '));
  EXPECT_TRUE(is_whitespace(0x3000));  // ideographic space
  EXPECT_TRUE(is_whitespace(0xA0));
  EXPECT_FALSE(is_whitespace(U'x'));
  EXPECT_TRUE(is_control(0x00));
  EXPECT_TRUE(is_control(0xFEFF));
  EXPECT_FALSE(is_control(U'\n'));  // whitespace, not a control to drop
  EXPECT_TRUE(is_punctuation(U','));
  EXPECT_TRUE(is_punctuation(U'$'));    // BERT treats ASCII symbols as punctuation
  EXPECT_TRUE(is_punctuation(0x2014));  // em dash
  EXPECT_TRUE(is_punctuation(0xBF));    // ¿
  EXPECT_TRUE(is_punctuation(0x3002));  // 。
  EXPECT_FALSE(is_punctuation(U'a'));
  EXPECT_FALSE(is_punctuation(0x4E2D));
  EXPECT_TRUE(is_cjk_ideograph(0x4E2D));
  EXPECT_TRUE(is_cjk_ideograph(0x20000));
  EXPECT_FALSE(is_cjk_ideograph(0x3042));    // hiragana あ is not an ideograph
  EXPECT_TRUE(is_cjk_punctuation(0xFF0C));   // ，
  EXPECT_FALSE(is_cjk_punctuation(0xFF21));  // fullwidth A is a letter
  // From utf8proc's tables (no list of our own): bidi isolates are format characters, and
  // Unicode 15.0's Devanagari Extended-A head marks (U+11B00) are punctuation.
  EXPECT_TRUE(is_control(0x2066));
  EXPECT_TRUE(is_whitespace(0x2029));  // paragraph separator (Zp)
  EXPECT_TRUE(is_punctuation(0x11B00));
  EXPECT_FALSE(is_punctuation(0x20AC));  // € is a symbol (Sc)
}

TEST(LowercaseTest, EveryScript) {
  EXPECT_EQ(utf8_to_lower("Hello WORLD 123"), "hello world 123");
  EXPECT_EQ(utf8_to_lower("ÀÉÎÕÜÞ×"), "àéîõüþ×");  // × is not a letter
  EXPECT_EQ(utf8_to_lower("ŁÓDŹ ĞŸŒ Ĳ"), "łódź ğÿœ ĳ");
  EXPECT_EQ(utf8_to_lower("ΑΒΓ ΆΈΏ ΣΟΦΙΑ"), "αβγ άέώ σοφια");
  EXPECT_EQ(utf8_to_lower("ПРИВЕТ ЁЖ Ѣ Ӂ"), "привет ёж ѣ ӂ");
  EXPECT_EQ(to_lower(0x130), U'i');  // İ
  EXPECT_EQ(to_lower(0x4E2D), 0x4E2Du);
  EXPECT_EQ(to_lower(U'ß'), U'ß');
  // Armenian, Georgian, fullwidth Latin, Deseret.
  EXPECT_EQ(utf8_to_lower("ԱՐՄ ႠႡ ＡＢ 𐐀"), "արմ ⴀⴁ ａｂ 𐐨");
}

TEST(WhitespaceTokenizerTest, SplitsOnUnicodeWhitespace) {
  WhitespaceTokenizer tokenizer(/*lowercase=*/false, /*split_punctuation=*/false);
  EXPECT_EQ(tokenizer.tokenize("  Hello\tworld\n\u00A0again\u3000end  "),
            (Tokens{"Hello", "world", "again", "end"}));
  EXPECT_EQ(tokenizer.tokenize("don't, stop!"), (Tokens{"don't,", "stop!"}));
  EXPECT_TRUE(tokenizer.tokenize(" \t\n").empty());
  EXPECT_TRUE(tokenizer.tokenize("").empty());
}

TEST(WhitespaceTokenizerTest, ChineseSplitsIntoCharacters) {
  WhitespaceTokenizer tokenizer(/*lowercase=*/true, /*split_punctuation=*/false);
  EXPECT_EQ(tokenizer.tokenize("我爱北京天安门"),
            (Tokens{"我", "爱", "北", "京", "天", "安", "门"}));
  // CJK punctuation splits off even without split_punctuation; Latin words stay whole.
  EXPECT_EQ(tokenizer.tokenize("你好，World！GPU很快。"),
            (Tokens{"你", "好", "，", "world", "！", "gpu", "很", "快", "。"}));
}

TEST(WhitespaceTokenizerTest, SplitsPunctuationLikeBert) {
  WhitespaceTokenizer tokenizer(/*lowercase=*/true, /*split_punctuation=*/true);
  EXPECT_EQ(tokenizer.tokenize("Hello, World! It's $5.00 — “quoted”."),
            (Tokens{"hello", ",", "world", "!", "it", "'", "s", "$", "5", ".", "00", "—", "“",
                    "quoted", "”", "."}));
  EXPECT_EQ(tokenizer.tokenize("¿Qué?"), (Tokens{"¿", "qué", "?"}));
}

TEST(WhitespaceTokenizerTest, DropsControlCharactersAndKeepsInvalidBytesAsReplacement) {
  WhitespaceTokenizer tokenizer(/*lowercase=*/false, /*split_punctuation=*/false);
  EXPECT_EQ(tokenizer.tokenize("a\x01"
                               "b\xEF\xBB\xBF"
                               "c d"),
            (Tokens{"abc", "d"}));
  EXPECT_EQ(tokenizer.tokenize("x\xFFy z"), (Tokens{"x\xEF\xBF\xBDy", "z"}));
}

TEST(CharTokenizerTest, OneTokenPerCodePoint) {
  EXPECT_EQ(CharTokenizer(false).tokenize("Ab 中文!\n"), (Tokens{"A", "b", "中", "文", "!"}));
  EXPECT_EQ(CharTokenizer(true).tokenize("ÀΩ Я"), (Tokens{"à", "ω", "я"}));
  EXPECT_EQ(CharTokenizer(false).tokenize("\xE4\xB8"), (Tokens{"\xEF\xBF\xBD"}));
  EXPECT_TRUE(CharTokenizer(false).tokenize("  ").empty());
}

TEST(TokenizerTest, WorksThroughTheBaseClass) {
  const WhitespaceTokenizer words(true, true);
  const CharTokenizer chars(false);
  const std::vector<const Tokenizer*> tokenizers = {&words, &chars};
  EXPECT_EQ(tokenizers[0]->tokenize("A b"), (Tokens{"a", "b"}));
  EXPECT_EQ(tokenizers[1]->tokenize("A b"), (Tokens{"A", "b"}));
}

}  // namespace
}  // namespace nlpkit
