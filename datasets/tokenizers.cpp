#include "datasets/tokenizers.h"

#include <algorithm>
#include <iterator>

namespace nlpkit {
namespace {

struct Range {
  char32_t lo, hi;
};

bool in_ranges(const Range* begin, const Range* end, char32_t cp) {
  // Ranges are sorted and disjoint: find the first range whose end is >= cp.
  const Range* it =
      std::lower_bound(begin, end, cp, [](const Range& r, char32_t c) { return r.hi < c; });
  return it != end && it->lo <= cp;
}

// Unicode 14.0 General_Category P* (Pc, Pd, Ps, Pe, Pi, Pf, Po), generated with Python's
// unicodedata; a table keeps the library free of an ICU dependency.
constexpr Range kPunctuation[] = {
    {0x0021, 0x0023},   {0x0025, 0x002A},   {0x002C, 0x002F},   {0x003A, 0x003B},
    {0x003F, 0x0040},   {0x005B, 0x005D},   {0x005F, 0x005F},   {0x007B, 0x007B},
    {0x007D, 0x007D},   {0x00A1, 0x00A1},   {0x00A7, 0x00A7},   {0x00AB, 0x00AB},
    {0x00B6, 0x00B7},   {0x00BB, 0x00BB},   {0x00BF, 0x00BF},   {0x037E, 0x037E},
    {0x0387, 0x0387},   {0x055A, 0x055F},   {0x0589, 0x058A},   {0x05BE, 0x05BE},
    {0x05C0, 0x05C0},   {0x05C3, 0x05C3},   {0x05C6, 0x05C6},   {0x05F3, 0x05F4},
    {0x0609, 0x060A},   {0x060C, 0x060D},   {0x061B, 0x061B},   {0x061D, 0x061F},
    {0x066A, 0x066D},   {0x06D4, 0x06D4},   {0x0700, 0x070D},   {0x07F7, 0x07F9},
    {0x0830, 0x083E},   {0x085E, 0x085E},   {0x0964, 0x0965},   {0x0970, 0x0970},
    {0x09FD, 0x09FD},   {0x0A76, 0x0A76},   {0x0AF0, 0x0AF0},   {0x0C77, 0x0C77},
    {0x0C84, 0x0C84},   {0x0DF4, 0x0DF4},   {0x0E4F, 0x0E4F},   {0x0E5A, 0x0E5B},
    {0x0F04, 0x0F12},   {0x0F14, 0x0F14},   {0x0F3A, 0x0F3D},   {0x0F85, 0x0F85},
    {0x0FD0, 0x0FD4},   {0x0FD9, 0x0FDA},   {0x104A, 0x104F},   {0x10FB, 0x10FB},
    {0x1360, 0x1368},   {0x1400, 0x1400},   {0x166E, 0x166E},   {0x169B, 0x169C},
    {0x16EB, 0x16ED},   {0x1735, 0x1736},   {0x17D4, 0x17D6},   {0x17D8, 0x17DA},
    {0x1800, 0x180A},   {0x1944, 0x1945},   {0x1A1E, 0x1A1F},   {0x1AA0, 0x1AA6},
    {0x1AA8, 0x1AAD},   {0x1B5A, 0x1B60},   {0x1B7D, 0x1B7E},   {0x1BFC, 0x1BFF},
    {0x1C3B, 0x1C3F},   {0x1C7E, 0x1C7F},   {0x1CC0, 0x1CC7},   {0x1CD3, 0x1CD3},
    {0x2010, 0x2027},   {0x2030, 0x2043},   {0x2045, 0x2051},   {0x2053, 0x205E},
    {0x207D, 0x207E},   {0x208D, 0x208E},   {0x2308, 0x230B},   {0x2329, 0x232A},
    {0x2768, 0x2775},   {0x27C5, 0x27C6},   {0x27E6, 0x27EF},   {0x2983, 0x2998},
    {0x29D8, 0x29DB},   {0x29FC, 0x29FD},   {0x2CF9, 0x2CFC},   {0x2CFE, 0x2CFF},
    {0x2D70, 0x2D70},   {0x2E00, 0x2E2E},   {0x2E30, 0x2E4F},   {0x2E52, 0x2E5D},
    {0x3001, 0x3003},   {0x3008, 0x3011},   {0x3014, 0x301F},   {0x3030, 0x3030},
    {0x303D, 0x303D},   {0x30A0, 0x30A0},   {0x30FB, 0x30FB},   {0xA4FE, 0xA4FF},
    {0xA60D, 0xA60F},   {0xA673, 0xA673},   {0xA67E, 0xA67E},   {0xA6F2, 0xA6F7},
    {0xA874, 0xA877},   {0xA8CE, 0xA8CF},   {0xA8F8, 0xA8FA},   {0xA8FC, 0xA8FC},
    {0xA92E, 0xA92F},   {0xA95F, 0xA95F},   {0xA9C1, 0xA9CD},   {0xA9DE, 0xA9DF},
    {0xAA5C, 0xAA5F},   {0xAADE, 0xAADF},   {0xAAF0, 0xAAF1},   {0xABEB, 0xABEB},
    {0xFD3E, 0xFD3F},   {0xFE10, 0xFE19},   {0xFE30, 0xFE52},   {0xFE54, 0xFE61},
    {0xFE63, 0xFE63},   {0xFE68, 0xFE68},   {0xFE6A, 0xFE6B},   {0xFF01, 0xFF03},
    {0xFF05, 0xFF0A},   {0xFF0C, 0xFF0F},   {0xFF1A, 0xFF1B},   {0xFF1F, 0xFF20},
    {0xFF3B, 0xFF3D},   {0xFF3F, 0xFF3F},   {0xFF5B, 0xFF5B},   {0xFF5D, 0xFF5D},
    {0xFF5F, 0xFF65},   {0x10100, 0x10102}, {0x1039F, 0x1039F}, {0x103D0, 0x103D0},
    {0x1056F, 0x1056F}, {0x10857, 0x10857}, {0x1091F, 0x1091F}, {0x1093F, 0x1093F},
    {0x10A50, 0x10A58}, {0x10A7F, 0x10A7F}, {0x10AF0, 0x10AF6}, {0x10B39, 0x10B3F},
    {0x10B99, 0x10B9C}, {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59}, {0x10F86, 0x10F89},
    {0x11047, 0x1104D}, {0x110BB, 0x110BC}, {0x110BE, 0x110C1}, {0x11140, 0x11143},
    {0x11174, 0x11175}, {0x111C5, 0x111C8}, {0x111CD, 0x111CD}, {0x111DB, 0x111DB},
    {0x111DD, 0x111DF}, {0x11238, 0x1123D}, {0x112A9, 0x112A9}, {0x1144B, 0x1144F},
    {0x1145A, 0x1145B}, {0x1145D, 0x1145D}, {0x114C6, 0x114C6}, {0x115C1, 0x115D7},
    {0x11641, 0x11643}, {0x11660, 0x1166C}, {0x116B9, 0x116B9}, {0x1173C, 0x1173E},
    {0x1183B, 0x1183B}, {0x11944, 0x11946}, {0x119E2, 0x119E2}, {0x11A3F, 0x11A46},
    {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2}, {0x11C41, 0x11C45}, {0x11C70, 0x11C71},
    {0x11EF7, 0x11EF8}, {0x11FFF, 0x11FFF}, {0x12470, 0x12474}, {0x12FF1, 0x12FF2},
    {0x16A6E, 0x16A6F}, {0x16AF5, 0x16AF5}, {0x16B37, 0x16B3B}, {0x16B44, 0x16B44},
    {0x16E97, 0x16E9A}, {0x16FE2, 0x16FE2}, {0x1BC9F, 0x1BC9F}, {0x1DA87, 0x1DA8B},
    {0x1E95E, 0x1E95F}};

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
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_control(char32_t cp) {
  if (is_whitespace(cp)) return false;
  // Cc, plus the invisible format characters (Cf) that BERT's tokenizer also removes.
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF;
}

bool is_punctuation(char32_t cp) {
  // BERT counts every non-alphanumeric printable ASCII character as punctuation.
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126)) {
    return true;
  }
  return in_ranges(std::begin(kPunctuation), std::end(kPunctuation), cp);
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

char32_t to_lower(char32_t c) {
  const bool even = c % 2 == 0;
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c < 0x100) return (c >= 0xC0 && c <= 0xDE && c != 0xD7) ? c + 32 : c;
  if (c < 0x180) {                // Latin Extended-A: pairs, capital first
    if (c == 0x130) return 'i';   // capital I with dot above
    if (c == 0x178) return 0xFF;  // Y with diaeresis; its lowercase sits in Latin-1
    if ((c <= 0x137) || (c >= 0x14A && c <= 0x177)) return even ? c + 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return even ? c : c + 1;
    return c;
  }
  if (c >= 0x370 && c < 0x400) {  // Greek and Coptic
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c == 0x370 || c == 0x372 || c == 0x376) return c + 1;
    if (c == 0x37F) return 0x3F3;
    if (c == 0x3CF) return 0x3D7;
    if (c >= 0x3D8 && c <= 0x3EF) return even ? c + 1 : c;
    if (c == 0x3F4) return 0x3B8;
    if (c == 0x3F7 || c == 0x3FA) return c + 1;
    if (c == 0x3F9) return 0x3F2;
    if (c >= 0x3FD) return c - 130;
    return c;
  }
  if (c >= 0x400 && c < 0x530) {  // Cyrillic and Cyrillic Supplement
    if (c <= 0x40F) return c + 80;
    if (c <= 0x42F) return c + 32;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || c >= 0x4D0) {
      return even ? c + 1 : c;
    }
    if (c == 0x4C0) return 0x4CF;
    if (c >= 0x4C1 && c <= 0x4CE) return even ? c : c + 1;
    return c;
  }
  return c;
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
