#include "datasets/wordpiece.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <queue>
#include <string_view>

#include "datasets/file_io.h"
#include "datasets/input_error.h"

namespace nlpkit {
namespace {

constexpr std::array<std::u32string_view, 5> kSpecials = {U"[PAD]", U"[UNK]", U"[CLS]", U"[SEP]",
                                                          U"[MASK]"};

utf8proc_category_t category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

// HuggingFace's _is_control: category C* (Cc, Cf, Cs, Co, Cn) except TAB, LF and CR.
bool is_hf_control(char32_t cp, utf8proc_category_t c) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  return c == UTF8PROC_CATEGORY_CN || c >= UTF8PROC_CATEGORY_CC;
}

// HuggingFace's _is_whitespace (space, TAB, LF, CR, Zs), plus what Python's str.split() also
// splits on once those are spaces and the controls are gone: U+2028 (Zl) and U+2029 (Zp).
bool is_hf_separator(char32_t cp, utf8proc_category_t c) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || c == UTF8PROC_CATEGORY_ZS ||
         c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

// HuggingFace's _is_chinese_char: the CJK Unified Ideographs blocks it lists (a narrower set
// than is_cjk_ideograph: no Extension F, G or H).
bool is_hf_chinese(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/// Index of the special token starting at cps[i], or -1.
int special_at(const std::vector<char32_t>& cps, size_t i) {
  if (cps[i] != '[') return -1;
  for (size_t k = 0; k < kSpecials.size(); ++k) {
    const auto& s = kSpecials[k];
    if (i + s.size() <= cps.size() && std::equal(s.begin(), s.end(), cps.begin() + i)) {
      return static_cast<int>(k);
    }
  }
  return -1;
}

int special_index(const std::u32string& word) {
  if (word.empty() || word[0] != '[') return -1;
  for (size_t k = 0; k < kSpecials.size(); ++k) {
    if (word == kSpecials[k]) return static_cast<int>(k);
  }
  return -1;
}

/// NFD of `word`, without the nonspacing marks (Mn): HF's _run_strip_accents.
void strip_accents(std::u32string& word, std::vector<utf8proc_int32_t>& buffer) {
  // Nothing below U+00C0 decomposes or is a mark: most words skip the work.
  if (std::all_of(word.begin(), word.end(), [](char32_t cp) { return cp < 0xC0; })) return;
  std::string utf8;
  for (char32_t cp : word) utf8_append(utf8, cp);
  // utf8proc_decompose also puts combining marks in canonical order, as NFD requires.
  buffer.resize(utf8.size() * 4 + 16);
  auto n = utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                              static_cast<utf8proc_ssize_t>(utf8.size()), buffer.data(),
                              static_cast<utf8proc_ssize_t>(buffer.size()), UTF8PROC_DECOMPOSE);
  if (n > static_cast<utf8proc_ssize_t>(buffer.size())) {
    buffer.resize(n);
    n = utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                           static_cast<utf8proc_ssize_t>(utf8.size()), buffer.data(), n,
                           UTF8PROC_DECOMPOSE);
  }
  if (n < 0) return;  // cannot happen: the input is valid UTF-8 from utf8_append
  word.clear();
  for (utf8proc_ssize_t i = 0; i < n; ++i) {
    if (utf8proc_category(buffer[i]) != UTF8PROC_CATEGORY_MN) word.push_back(buffer[i]);
  }
}

/// HuggingFace's BasicTokenizer, preceded by the special-token split and the per-character
/// lowercasing of PreTrainedTokenizer.tokenize: on_special(k) for the k-th special token,
/// on_word(word) for every other word (after the punctuation split; never empty).
template <class OnSpecial, class OnWord>
void pre_tokenize(const std::string& text, const WordPieceOptions& options, OnSpecial&& on_special,
                  OnWord&& on_word) {
  const std::vector<char32_t> cps = utf8_decode(text);
  std::u32string word, piece;
  std::vector<utf8proc_int32_t> buffer;

  auto finish_word = [&] {
    if (word.empty()) return;
    // A special token made by the cleaning ("[MA\u200bSK]") is in BasicTokenizer's never_split.
    if (const int k = special_index(word); k >= 0) {
      on_special(k);
      word.clear();
      return;
    }
    if (options.lower_case) strip_accents(word, buffer);
    piece.clear();
    for (char32_t cp : word) {
      if (is_punctuation(cp)) {
        if (!piece.empty()) on_word(piece);
        piece.assign(1, cp);
        on_word(piece);
        piece.clear();
      } else {
        piece.push_back(cp);
      }
    }
    if (!piece.empty()) on_word(piece);
    word.clear();
  };
  auto add = [&](char32_t cp) {
    if (cp < 0x80) {  // ASCII without a table lookup: the bulk of most text
      if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
        finish_word();
      } else if (cp >= 0x20 && cp != 0x7F) {
        word.push_back(cp);
      }
      return;
    }
    const utf8proc_category_t c = category(cp);
    if (cp == 0 || cp == kReplacementChar || is_hf_control(cp, c)) return;
    if (is_hf_separator(cp, c)) {
      finish_word();
    } else if (options.tokenize_chinese_chars && is_hf_chinese(cp)) {
      finish_word();
      word.push_back(cp);
      finish_word();
    } else {
      word.push_back(cp);
    }
  };

  for (size_t i = 0; i < cps.size();) {
    if (const int k = special_at(cps, i); k >= 0) {
      // HF strips the whitespace around a special token; splitting on it does the same here.
      finish_word();
      on_special(k);
      i += kSpecials[k].size();
      continue;
    }
    const char32_t cp = cps[i++];
    if (!options.lower_case) {
      add(cp);
    } else if (cp == 0x130) {
      // Python's str.lower(): İ -> i + U+0307 (the accent stripping then drops the U+0307).
      add(U'i');
      add(0x307);
    } else {
      add(to_lower(cp));
    }
  }
  finish_word();
}

int64_t count_code_points(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------- the tokenizer

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), options_(options) {
  if (vocab_.empty()) throw InputError("WordPiece vocabulary is empty");
  if (options_.max_input_chars_per_word < 1) {
    throw InputError("WordPiece max_input_chars_per_word must be at least 1, found " +
                     std::to_string(options_.max_input_chars_per_word));
  }
  index_.reserve(vocab_.size() * 2);
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const std::string& token = vocab_[i];
    if (token.empty()) {
      throw InputError("WordPiece vocabulary: entry " + std::to_string(i) + " is empty");
    }
    auto [it, inserted] = index_.emplace(token, static_cast<int64_t>(i));
    if (!inserted) {
      throw InputError("WordPiece vocabulary: duplicate entry '" + token + "' (ids " +
                       std::to_string(it->second) + " and " + std::to_string(i) + ")");
    }
    if (starts_with(token, "##") && token.size() > 2) {
      max_continuation_chars_ = std::max(max_continuation_chars_, count_code_points(token) - 2);
    } else {
      max_initial_chars_ = std::max(max_initial_chars_, count_code_points(token));
    }
  }
  std::string missing;
  auto special = [&](const char* token) -> int64_t {
    auto it = index_.find(token);
    if (it != index_.end()) return it->second;
    missing += std::string(missing.empty() ? "" : ", ") + token;
    return -1;
  };
  pad_id_ = special(kPad);
  unk_id_ = special(kUnk);
  cls_id_ = special(kCls);
  sep_id_ = special(kSep);
  mask_id_ = special(kMask);
  if (!missing.empty()) {
    throw InputError("WordPiece vocabulary lacks " + missing +
                     " (BERT needs all of [PAD] [UNK] [CLS] [SEP] [MASK])");
  }
}

WordPieceTokenizer WordPieceTokenizer::from_file(const std::string& vocab_txt,
                                                 WordPieceOptions options) {
  std::string bytes = detail::read_file(vocab_txt, "vocab");
  if (starts_with(bytes, "\xEF\xBB\xBF")) bytes.erase(0, 3);
  if (bytes.empty()) throw InputError("vocab file is empty: " + vocab_txt);
  // Python's readlines() in text mode: LF, CRLF and CR all end a line; a final line end adds no
  // entry.
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int64_t> seen;
  for (size_t pos = 0; pos < bytes.size();) {
    size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string::npos) end = bytes.size();
    std::string token = bytes.substr(pos, end - pos);
    const int64_t line = static_cast<int64_t>(tokens.size()) + 1;
    if (token.empty()) {
      throw InputError(detail::where(vocab_txt, line) + ": empty line (every line is a token)");
    }
    if (utf8_sanitize(token) != token) {
      throw InputError(detail::where(vocab_txt, line) + ": invalid UTF-8");
    }
    if (auto [it, inserted] = seen.emplace(token, line); !inserted) {
      throw InputError(detail::where(vocab_txt, line) + ": duplicate token '" + token +
                       "' (first on line " + std::to_string(it->second) + ")");
    }
    tokens.push_back(std::move(token));
    pos = end + (bytes.compare(end, 2, "\r\n") == 0 ? 2 : 1);
  }
  try {
    return WordPieceTokenizer(std::move(tokens), options);
  } catch (const InputError& e) {
    throw InputError(vocab_txt + ": " + e.what());
  }
}

template <class Emit>
void WordPieceTokenizer::wordpiece(const std::u32string& word, std::string& utf8,
                                   std::vector<size_t>& offsets, std::string& key,
                                   std::vector<int64_t>& pieces, Emit&& emit) const {
  const size_t n = word.size();
  if (static_cast<int64_t>(n) > options_.max_input_chars_per_word) {
    emit(unk_id_);
    return;
  }
  utf8.clear();
  offsets.clear();
  for (char32_t cp : word) {
    offsets.push_back(utf8.size());
    utf8_append(utf8, cp);
  }
  offsets.push_back(utf8.size());
  pieces.clear();
  for (size_t start = 0; start < n;) {
    const size_t prefix = start > 0 ? 2 : 0;
    const auto longest =
        static_cast<size_t>(start > 0 ? max_continuation_chars_ : max_initial_chars_);
    size_t end = std::min(n, start + longest);
    key.assign(prefix > 0 ? "##" : "");
    key.append(utf8, offsets[start], offsets[end] - offsets[start]);
    int64_t id = -1;
    for (; end > start; --end) {
      key.resize(prefix + offsets[end] - offsets[start]);
      auto it = index_.find(key);
      if (it != index_.end()) {
        id = it->second;
        break;
      }
    }
    if (id < 0) {  // no piece fits here: the whole word is unknown
      emit(unk_id_);
      return;
    }
    pieces.push_back(id);
    start = end;
  }
  for (int64_t id : pieces) emit(id);
}

template <class Emit>
void WordPieceTokenizer::run(const std::string& text, Emit&& emit) const {
  const int64_t special_ids[] = {pad_id_, unk_id_, cls_id_, sep_id_, mask_id_};
  std::string utf8, key;
  std::vector<size_t> offsets;
  std::vector<int64_t> pieces;
  pre_tokenize(
      text, options_, [&](int k) { emit(special_ids[k]); },
      [&](const std::u32string& word) { wordpiece(word, utf8, offsets, key, pieces, emit); });
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  run(text, [&](int64_t id) { tokens.push_back(vocab_[id]); });
  return tokens;
}

std::vector<int64_t> WordPieceTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  run(text, [&](int64_t id) { ids.push_back(id); });
  return ids;
}

std::vector<int64_t> WordPieceTokenizer::convert_tokens_to_ids(
    const std::vector<std::string>& tokens) const {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) ids.push_back(token_to_id(t));
  return ids;
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  auto it = index_.find(token);
  return it == index_.end() ? unk_id_ : it->second;
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw InputError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_size()) + ")");
  }
  return vocab_[id];
}

std::string WordPieceTokenizer::decode(const std::vector<int64_t>& ids,
                                       bool skip_special_tokens) const {
  // convert_tokens_to_string: " ".join(tokens).replace(" ##", "").strip()
  std::string text;
  for (int64_t id : ids) {
    const std::string& token = id_to_token(id);
    if (skip_special_tokens && is_special_id(id)) continue;
    if (!text.empty()) text += ' ';
    text += token;
  }
  detail::replace_all(text, " ##", "");
  const size_t first = text.find_first_not_of(" \t\n\r\f\v");
  const size_t last = text.find_last_not_of(" \t\n\r\f\v");
  text = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  detail::clean_up_tokenization(text);
  return text;
}

void WordPieceTokenizer::save_vocab(const std::string& path) const {
  std::string bytes;
  for (const auto& token : vocab_) bytes += token + "\n";
  write_file_atomic(path, bytes);
}

bool WordPieceTokenizer::continues_word(int64_t id) const {
  const std::string& token = id_to_token(id);
  return token.size() > 2 && starts_with(token, "##");
}

void WordPieceTokenizer::save_pretrained(const std::string& dir, int64_t model_max_length) const {
  save_vocab(dir + "/vocab.txt");
  nlohmann::json tc = {{"do_lower_case", options_.lower_case},
                       {"tokenizer_class", "BertTokenizer"},
                       {"model_max_length", model_max_length}};
  write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2) + "\n");
  nlohmann::json st = {{"unk_token", kUnk},
                       {"sep_token", kSep},
                       {"pad_token", kPad},
                       {"cls_token", kCls},
                       {"mask_token", kMask}};
  write_file_atomic(dir + "/special_tokens_map.json", st.dump(2) + "\n");
}

// ---------------------------------------------------------------------------- the trainer

namespace {

/// Incremental likelihood-scored merging. Pair counts, symbol counts and the words holding each
/// pair are kept up to date merge by merge, and a max-heap holds (score, count, pair) entries:
/// every change of a pair's count or of one of its symbols' counts pushes a fresh entry, and a
/// popped entry that no longer matches the current values is dropped. So the best pair is found
/// without rescanning every pair at every merge.
class WordPieceMerger {
 public:
  using Pair = uint64_t;  // (left symbol << 32) | right symbol

  WordPieceMerger(std::vector<std::string> symbols, std::vector<std::vector<int32_t>> words,
                  std::vector<int64_t> freqs, int64_t min_frequency)
      : symbols_(std::move(symbols)),
        words_(std::move(words)),
        freqs_(std::move(freqs)),
        min_frequency_(min_frequency) {
    for (size_t i = 0; i < symbols_.size(); ++i) symbol_ids_.emplace(symbols_[i], i);
    symbol_counts_.assign(symbols_.size(), 0);
    symbol_pairs_.resize(symbols_.size());
    seen_.assign(words_.size(), -1);
    for (size_t w = 0; w < words_.size(); ++w) {
      const auto& s = words_[w];
      for (size_t i = 0; i < s.size(); ++i) {
        symbol_counts_[s[i]] += freqs_[w];
        if (i + 1 < s.size()) add_pair(pair(s[i], s[i + 1]), freqs_[w], w);
      }
    }
    for (const auto& [p, count] : pair_counts_) push(p);
  }

  /// Merges the best pair; returns false when no pair is left.
  bool merge_best() {
    while (!heap_.empty()) {
      const Entry e = heap_.top();
      heap_.pop();
      const auto it = pair_counts_.find(e.pair);
      if (it == pair_counts_.end() || it->second != e.count || score(e.pair) != e.score) continue;
      merge(e.pair);
      return true;
    }
    return false;
  }

  const std::vector<std::string>& symbols() const { return symbols_; }

 private:
  struct Entry {
    double score;
    int64_t count;
    Pair pair;
    bool operator<(const Entry& o) const {  // the heap's top is the greatest
      if (score != o.score) return score < o.score;
      if (count != o.count) return count < o.count;
      return pair > o.pair;  // earlier-created symbols first
    }
  };

  static Pair pair(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static int32_t left(Pair p) { return int32_t(p >> 32); }
  static int32_t right(Pair p) { return int32_t(p & 0xFFFFFFFFu); }

  double score(Pair p) const {
    return double(pair_counts_.at(p)) /
           (double(symbol_counts_[left(p)]) * double(symbol_counts_[right(p)]));
  }

  void push(Pair p) {
    const int64_t count = pair_counts_.at(p);
    if (count >= min_frequency_) heap_.push({score(p), count, p});
  }

  void add_pair(Pair p, int64_t freq, size_t word) {
    int64_t& count = pair_counts_[p];
    if (count == 0) {
      symbol_pairs_[left(p)].push_back(p);
      symbol_pairs_[right(p)].push_back(p);
    }
    count += freq;
    pair_words_[p].push_back(static_cast<int32_t>(word));
  }

  void merge(Pair best) {
    const int32_t a = left(best), b = right(best);
    std::string merged = symbols_[a] + symbols_[b].substr(2);  // b is a "##" continuation
    int32_t ab;
    if (auto it = symbol_ids_.find(merged); it != symbol_ids_.end()) {
      ab = it->second;  // the same string reached by another merge: one symbol
    } else {
      ab = static_cast<int32_t>(symbols_.size());
      symbol_ids_.emplace(merged, ab);
      symbols_.push_back(std::move(merged));
      symbol_counts_.push_back(0);
      symbol_pairs_.emplace_back();
    }

    // Rewrite every word holding the pair; collect the changes of pair and symbol counts.
    std::unordered_map<Pair, int64_t> pair_delta;
    std::unordered_map<int32_t, int64_t> symbol_delta;
    const std::vector<int32_t> holders = std::move(pair_words_[best]);
    pair_words_.erase(best);
    ++stamp_;
    std::vector<int32_t> merged_word;
    for (int32_t w : holders) {
      if (seen_[w] == stamp_) continue;
      seen_[w] = stamp_;
      auto& s = words_[w];
      const int64_t f = freqs_[w];
      merged_word.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged_word.push_back(ab);
          ++i;
        } else {
          merged_word.push_back(s[i]);
        }
      }
      if (merged_word.size() == s.size()) continue;  // stale: merged away by an earlier merge
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_delta[pair(s[i], s[i + 1])] -= f;
      for (size_t i = 0; i + 1 < merged_word.size(); ++i) {
        const Pair p = pair(merged_word[i], merged_word[i + 1]);
        pair_delta[p] += f;
        if (merged_word[i] == ab || merged_word[i + 1] == ab) new_holders_[p].push_back(w);
      }
      symbol_delta[a] -= f * int64_t(s.size() - merged_word.size());
      symbol_delta[b] -= f * int64_t(s.size() - merged_word.size());
      symbol_delta[ab] += f * int64_t(s.size() - merged_word.size());
      s.swap(merged_word);
    }

    // Every holder was rewritten, so the pair is gone (erased here too, so that a miscount can
    // never bring it back and stall the loop).
    pair_counts_.erase(best);
    pair_delta.erase(best);
    for (const auto& [sym, delta] : symbol_delta) symbol_counts_[sym] += delta;
    std::vector<Pair> changed;
    for (const auto& [p, delta] : pair_delta) {
      if (delta == 0) continue;
      int64_t& count = pair_counts_[p];
      if (count == 0) {
        symbol_pairs_[left(p)].push_back(p);
        symbol_pairs_[right(p)].push_back(p);
      }
      count += delta;
      if (count == 0) {
        pair_counts_.erase(p);
        pair_words_.erase(p);
      } else {
        changed.push_back(p);
      }
    }
    for (auto& [p, ws] : new_holders_) {
      if (pair_counts_.count(p)) {
        auto& holders_of_p = pair_words_[p];
        holders_of_p.insert(holders_of_p.end(), ws.begin(), ws.end());
      }
    }
    new_holders_.clear();
    // Fresh heap entries for every pair whose count or whose symbols' counts changed.
    for (Pair p : changed) push(p);
    for (const auto& [sym, delta] : symbol_delta) {
      if (delta == 0) continue;
      auto& ps = symbol_pairs_[sym];
      std::sort(ps.begin(), ps.end());
      ps.erase(std::unique(ps.begin(), ps.end()), ps.end());
      ps.erase(std::remove_if(ps.begin(), ps.end(), [&](Pair p) { return !pair_counts_.count(p); }),
               ps.end());
      for (Pair p : ps) push(p);
    }
  }

  std::vector<std::string> symbols_;
  std::unordered_map<std::string, int32_t> symbol_ids_;
  std::vector<int64_t> symbol_counts_;
  std::vector<std::vector<Pair>> symbol_pairs_;  // pairs each symbol is in (may hold dead ones)
  std::vector<std::vector<int32_t>> words_;
  std::vector<int64_t> freqs_;
  std::unordered_map<Pair, int64_t> pair_counts_;
  std::unordered_map<Pair, std::vector<int32_t>> pair_words_;  // may hold stale words
  std::unordered_map<Pair, std::vector<int32_t>> new_holders_;
  std::vector<int64_t> seen_;
  int64_t stamp_ = 0;
  std::priority_queue<Entry> heap_;
  int64_t min_frequency_;
};

}  // namespace

std::vector<std::string> train_wordpiece(const std::vector<std::string>& lines, int64_t vocab_size,
                                         const WordPieceOptions& options, int64_t min_frequency,
                                         const WordPieceProgress& progress) {
  constexpr int64_t kNumSpecials = 5;
  if (vocab_size <= kNumSpecials) {
    throw InputError("WordPiece vocab_size must be at least 6 (5 special tokens + 1), found " +
                     std::to_string(vocab_size));
  }
  if (min_frequency < 1) {
    throw InputError("WordPiece min_frequency must be at least 1, found " +
                     std::to_string(min_frequency));
  }

  // Word counts, pre-tokenized exactly as the tokenizer will see the text.
  std::unordered_map<std::u32string, int64_t> word_counts;
  const auto total_lines = static_cast<int64_t>(lines.size());
  for (int64_t i = 0; i < total_lines; ++i) {
    pre_tokenize(
        lines[i], options, [](int) {},
        [&](const std::u32string& word) {
          if (static_cast<int64_t>(word.size()) <= options.max_input_chars_per_word) {
            ++word_counts[word];
          }
        });
    if (progress && ((i + 1) % 10000 == 0 || i + 1 == total_lines)) {
      progress("count", i + 1, total_lines);
    }
  }
  if (word_counts.empty()) throw InputError("WordPiece training: the corpus has no words");

  // The alphabet: each character as word-initial and as "##" continuation, as they occur.
  std::unordered_map<std::string, int64_t> form_counts;
  for (const auto& [word, count] : word_counts) {
    for (size_t i = 0; i < word.size(); ++i) {
      std::string form = i > 0 ? "##" : "";
      utf8_append(form, word[i]);
      form_counts[form] += count;
    }
  }
  std::vector<std::pair<std::string, int64_t>> forms(form_counts.begin(), form_counts.end());
  const auto budget = static_cast<size_t>(vocab_size - kNumSpecials);
  if (forms.size() > budget) {
    std::sort(forms.begin(), forms.end(), [](const auto& x, const auto& y) {
      return x.second != y.second ? x.second > y.second : x.first < y.first;
    });
    forms.resize(budget);
  }
  // By code point, word-initial forms first ("##" sorts before letters but not before
  // punctuation, so compare the decoded forms).
  std::sort(forms.begin(), forms.end(), [](const auto& x, const auto& y) {
    const bool xc = starts_with(x.first, "##"), yc = starts_with(y.first, "##");
    if (xc != yc) return !xc;
    return utf8_decode(x.first) < utf8_decode(y.first);
  });
  std::vector<std::string> symbols;
  std::unordered_map<std::string, int32_t> symbol_ids;
  for (const auto& f : forms) {
    symbol_ids.emplace(f.first, static_cast<int32_t>(symbols.size()));
    symbols.push_back(f.first);
  }

  // Words as symbol sequences, in a fixed order (by text) so that the result is reproducible.
  std::vector<std::pair<std::u32string, int64_t>> sorted_words(word_counts.begin(),
                                                               word_counts.end());
  std::sort(sorted_words.begin(), sorted_words.end());
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> freqs;
  for (const auto& [word, count] : sorted_words) {
    std::vector<int32_t> s;
    for (size_t i = 0; i < word.size(); ++i) {
      std::string form = i > 0 ? "##" : "";
      utf8_append(form, word[i]);
      auto it = symbol_ids.find(form);
      if (it == symbol_ids.end()) break;  // a character cut from the alphabet: [UNK] anyway
      s.push_back(it->second);
    }
    if (s.size() != word.size()) continue;
    words.push_back(std::move(s));
    freqs.push_back(count);
  }

  WordPieceMerger merger(std::move(symbols), std::move(words), std::move(freqs), min_frequency);
  const auto target = static_cast<size_t>(vocab_size - kNumSpecials);
  int64_t step = 0;
  while (merger.symbols().size() < target && merger.merge_best()) {
    if (progress && ++step % 100 == 0) {
      progress("merge", static_cast<int64_t>(merger.symbols().size()) + kNumSpecials, vocab_size);
    }
  }
  std::vector<std::string> vocab = {WordPieceTokenizer::kPad, WordPieceTokenizer::kUnk,
                                    WordPieceTokenizer::kCls, WordPieceTokenizer::kSep,
                                    WordPieceTokenizer::kMask};
  for (const auto& s : merger.symbols()) {
    // A corpus holding "[MASK]" as text cannot add it twice: its pieces are split by punctuation.
    vocab.push_back(s);
  }
  if (progress) progress("merge", static_cast<int64_t>(vocab.size()), vocab_size);
  return vocab;
}

}  // namespace nlpkit
