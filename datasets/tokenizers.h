// Text -> tokens: UTF-8 helpers, Unicode character classes, a BERT-style whitespace/punctuation
// tokenizer and a character tokenizer. The whitespace tokenizer follows BERT's BasicTokenizer
// (Devlin et al. 2019, google-research/bert tokenization.py): CJK ideographs become single tokens,
// punctuation optionally splits off, control characters are dropped. Accent stripping (NFD) is
// not done here; the WordPiece tokenizer (datasets/wordpiece.h) does it.
// Unicode properties (categories, case mapping) come from utf8proc (Unicode 15.0 in Debian 12's
// 2.8), not from tables of our own.
#pragma once

#include <string>
#include <vector>

namespace nlpkit {

/// The replacement character that stands in for every malformed UTF-8 sequence.
constexpr char32_t kReplacementChar = 0xFFFD;

/// Decodes UTF-8 into code points. Malformed input never throws: each maximal invalid
/// subsequence (stray continuation byte, truncated sequence, overlong form, surrogate, value
/// above U+10FFFF) becomes one U+FFFD, as the Unicode standard recommends.
///   utf8_decode("a\xFF") == {U'a', 0xFFFD}
std::vector<char32_t> utf8_decode(const std::string& text);

/// Appends the UTF-8 encoding of `cp` to `out` (surrogates and values above U+10FFFF are
/// written as U+FFFD).
void utf8_append(std::string& out, char32_t cp);

/// Encodes code points as UTF-8.
std::string utf8_encode(const std::vector<char32_t>& cps);

/// Returns `text` as valid UTF-8: malformed sequences are replaced by U+FFFD.
std::string utf8_sanitize(const std::string& text);

/// Unicode White_Space: the separators (Zs, Zl, Zp), TAB..CR and NEL (U+0085).
bool is_whitespace(char32_t cp);

/// Control (Cc) and invisible format (Cf: zero-width spaces and joiners, soft hyphen, byte
/// order mark, bidi controls) characters that are not whitespace: tokenizers drop them.
bool is_control(char32_t cp);

/// Unicode General_Category P* plus the ASCII symbols BERT also treats as punctuation
/// ($ + < = > ^ ` | ~).
bool is_punctuation(char32_t cp);

/// CJK unified ideographs (all extension blocks) and compatibility ideographs.
bool is_cjk_ideograph(char32_t cp);

/// Punctuation used with CJK text: CJK Symbols and Punctuation (U+3001..U+303F), the CJK
/// compatibility/vertical/small forms and the fullwidth and halfwidth punctuation marks.
bool is_cjk_punctuation(char32_t cp);

/// Unicode's simple (one code point to one) lowercase mapping, in every script:
/// to_lower(U'Σ') == U'σ', to_lower(0x130 /* İ */) == U'i'. Python's str.lower() differs only
/// for U+0130 (i + U+0307) and a word-final Σ (ς).
char32_t to_lower(char32_t cp);

/// Lowercases UTF-8 text with `to_lower` (malformed bytes become U+FFFD).
std::string utf8_to_lower(const std::string& text);

/// Splits text into tokens.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// Tokens of `text`, each a non-empty valid UTF-8 string.
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
};

/// Splits on Unicode whitespace; every CJK ideograph and CJK punctuation mark is a token of its
/// own, so Chinese text splits into characters. With `split_punctuation`, every punctuation
/// mark becomes a token too (as BERT's BasicTokenizer does).
///   WhitespaceTokenizer(true, true).tokenize("Hi, Bob! 你好。") ==
///       {"hi", ",", "bob", "!", "你", "好", "。"}
class WhitespaceTokenizer : public Tokenizer {
 public:
  explicit WhitespaceTokenizer(bool lowercase = true, bool split_punctuation = true)
      : lowercase_(lowercase), split_punctuation_(split_punctuation) {}
  std::vector<std::string> tokenize(const std::string& text) const override;

  bool lowercase() const { return lowercase_; }
  bool split_punctuation() const { return split_punctuation_; }

 private:
  bool lowercase_;
  bool split_punctuation_;
};

/// One token per code point; whitespace and control characters are dropped.
///   CharTokenizer(false).tokenize("ab 中") == {"a", "b", "中"}
class CharTokenizer : public Tokenizer {
 public:
  explicit CharTokenizer(bool lowercase = false) : lowercase_(lowercase) {}
  std::vector<std::string> tokenize(const std::string& text) const override;

  bool lowercase() const { return lowercase_; }

 private:
  bool lowercase_;
};

}  // namespace nlpkit
