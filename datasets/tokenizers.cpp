#include "datasets/tokenizers.h"

#include <utf8proc.h>

namespace nlpkit {
namespace {

utf8proc_category_t category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

}  // namespace

std::vector<char32_t> utf8_decode(const std::string& text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = s[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    // Valid second-byte ranges exclude overlong forms (E0, F0), surrogates (ED) and values
    // above U+10FFFF (F4); see the Unicode standard, table 3-7.
    int length = 0;
    char32_t cp = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3;
      cp = b & 0x0F;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4;
      cp = b & 0x07;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      out.push_back(kReplacementChar);
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool ok = true;
    for (int k = 1; k < length; ++k, ++j) {
      const unsigned char c = j < n ? s[j] : 0;
      if (j >= n || c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) {
        ok = false;  // the offending byte is not consumed: it may start the next character
        break;
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    out.push_back(ok ? cp : kReplacementChar);
    i = j;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacementChar;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) utf8_append(out, cp);
  return out;
}

std::string utf8_sanitize(const std::string& text) {
  // Decoding turns each malformed sequence into U+FFFD; re-encoding then writes valid UTF-8.
  return utf8_encode(utf8_decode(text));
}

bool is_whitespace(char32_t cp) {
  // Unicode's White_Space property: the separators (Zs, Zl, Zp) plus TAB..CR and NEL.
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  if (cp == 0x85) return true;
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

bool is_control(char32_t cp) {
  if (is_whitespace(cp)) return false;
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

bool is_punctuation(char32_t cp) {
  // BERT counts every non-alphanumeric printable ASCII character as punctuation.
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126)) {
    return true;
  }
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_cjk_ideograph(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FA1F) ||
         (cp >= 0x30000 && cp <= 0x323AF);
}

bool is_cjk_punctuation(char32_t cp) {
  return (cp >= 0x3001 && cp <= 0x303F) || (cp >= 0xFE10 && cp <= 0xFE1F) ||
         (cp >= 0xFE30 && cp <= 0xFE6F) || (cp >= 0xFF01 && cp <= 0xFF0F) ||
         (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
         (cp >= 0xFF5B && cp <= 0xFF65);
}

char32_t to_lower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp > 0x10FFFF) return cp;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

std::string utf8_to_lower(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : utf8_decode(text)) utf8_append(out, to_lower(cp));
  return out;
}

std::vector<std::string> WhitespaceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) tokens.push_back(std::move(current));
    current.clear();
  };
  for (char32_t cp : utf8_decode(text)) {
    if (is_control(cp)) continue;
    if (is_whitespace(cp)) {
      flush();
    } else if (is_cjk_ideograph(cp) || is_cjk_punctuation(cp) ||
               (split_punctuation_ && is_punctuation(cp))) {
      flush();
      utf8_append(current, cp);
      flush();
    } else {
      utf8_append(current, lowercase_ ? to_lower(cp) : cp);
    }
  }
  flush();
  return tokens;
}

std::vector<std::string> CharTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  for (char32_t cp : utf8_decode(text)) {
    if (is_control(cp) || is_whitespace(cp)) continue;
    std::string token;
    utf8_append(token, lowercase_ ? to_lower(cp) : cp);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

}  // namespace nlpkit
