#include "datasets/augmentation.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "datasets/input_error.h"

namespace nlpkit {
namespace {

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Splits on runs of ASCII whitespace.
std::vector<std::string> split_whitespace(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

/// Decodes the UTF-8 code point at text[i] and its byte length (1 for a malformed byte, which
/// is kept as it is).
std::pair<uint32_t, size_t> code_point(const std::string& text, size_t i) {
  const auto b = static_cast<unsigned char>(text[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (i + n > text.size()) n = 1;
  if (n == 1) return {b, 1};
  uint32_t cp = b & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
  return {cp, n};
}

/// Scripts written without spaces between words: CJK ideographs and punctuation, kana.
bool unspaced(uint32_t cp) {
  return (cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0xFF00 && cp <= 0xFFEF) || (cp >= 0x20000 && cp <= 0x2FFFF);
}

bool unspaced_word(const std::string& word) {
  return !word.empty() && unspaced(code_point(word, 0).first);
}

[[noreturn]] void missing_wordnet(const std::string& what) {
  throw InputError(what +
                   " (EDA's English synonyms need WordNet: install the Debian package "
                   "wordnet-base, or set augmentation.eda.wordnet to its dict folder, or to \"\" "
                   "with a synonym table)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Random numbers

uint64_t EdaRandom::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t EdaRandom::below(int64_t n) {
  return static_cast<int64_t>(next() % static_cast<uint64_t>(n));
}

double EdaRandom::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

// ---------------------------------------------------------------------------------------------
// WordNet

std::shared_ptr<WordNet> WordNet::load(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) missing_wordnet("WordNet folder not found: " + dir);
  auto wn = std::make_shared<WordNet>();
  wn->dir_ = dir;
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    const std::string path = (fs::path(dir) / (std::string("index.") + pos)).string();
    std::ifstream in(path, std::ios::binary);
    if (!in) missing_wordnet("WordNet index file not found: " + path);
    if (!fs::exists(fs::path(dir) / (std::string("data.") + pos))) {
      missing_wordnet("WordNet data file not found: " +
                      (fs::path(dir) / ("data." + std::string(pos))).string());
    }
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (line.empty() || line[0] == ' ') continue;  // the license header
      // lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
      const std::vector<std::string> f = split_whitespace(line);
      int64_t synsets = 0;
      if (f.size() >= 4) synsets = std::atoll(f[2].c_str());
      if (f.size() < 4 || synsets <= 0 || static_cast<int64_t>(f.size()) < 4 + synsets) {
        throw InputError(path + ":" + std::to_string(number) +
                         ": malformed WordNet index line (expected lemma, pos, synset count, "
                         "pointers and synset offsets)");
      }
      auto& entries = wn->index_[f[0]];
      for (size_t k = f.size() - synsets; k < f.size(); ++k) {
        entries.emplace_back(pos, std::atoll(f[k].c_str()));
      }
    }
  }
  return wn;
}

std::vector<std::string> WordNet::synonyms(const std::string& word) const {
  std::string lemma = lowercase(word);
  std::replace(lemma.begin(), lemma.end(), ' ', '_');
  auto it = index_.find(lemma);
  if (it == index_.end()) return {};
  std::vector<std::string> out;
  for (const auto& [pos, offset] : it->second) {
    const std::string key = pos + ":" + std::to_string(offset);
    auto cached = synsets_.find(key);
    if (cached == synsets_.end()) {
      const std::string path = dir_ + "/data." + pos;
      std::ifstream in(path, std::ios::binary);
      in.seekg(offset);
      std::string line;
      std::getline(in, line);
      // synset_offset lex_filenum ss_type w_cnt (2 hex digits) word lex_id [word lex_id...] ...
      const std::vector<std::string> f = split_whitespace(line);
      if (f.size() < 4 || std::atoll(f[0].c_str()) != offset) {
        throw InputError(path + ": no synset at byte offset " + std::to_string(offset) +
                         " (index." + pos + " and data." + pos + " do not match)");
      }
      const int64_t words = std::strtoll(f[3].c_str(), nullptr, 16);
      std::vector<std::string> lemmas;
      for (int64_t k = 0; k < words && 4 + 2 * k < static_cast<int64_t>(f.size()); ++k) {
        std::string w = f[4 + 2 * k];
        if (const size_t paren = w.find('('); paren != std::string::npos) w.resize(paren);
        lemmas.push_back(w);
      }
      cached = synsets_.emplace(key, std::move(lemmas)).first;
    }
    for (const std::string& l : cached->second) {
      if (lowercase(l) == lemma) continue;
      std::string s = l;
      std::replace(s.begin(), s.end(), '_', ' ');
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Synonym table

std::shared_ptr<SynonymTable> SynonymTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("synonym table not found: " + path);
  auto table = std::make_shared<SynonymTable>();
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line = line.substr(3);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) {
      // Trim spaces around each field; a field may itself hold several words.
      const size_t b = f.find_first_not_of(' '), e = f.find_last_not_of(' ');
      if (b != std::string::npos) fields.push_back(f.substr(b, e - b + 1));
    }
    if (fields.size() < 2) {
      throw InputError(path + ":" + std::to_string(number) +
                       ": expected a word and at least one synonym, separated by tabs");
    }
    auto& synonyms = table->table_[lowercase(fields[0])];
    for (size_t k = 1; k < fields.size(); ++k) {
      if (std::find(synonyms.begin(), synonyms.end(), fields[k]) == synonyms.end() &&
          lowercase(fields[k]) != lowercase(fields[0])) {
        synonyms.push_back(fields[k]);
      }
    }
  }
  return table;
}

std::vector<std::string> SynonymTable::synonyms(const std::string& word) const {
  auto it = table_.find(lowercase(word));
  return it == table_.end() ? std::vector<std::string>{} : it->second;
}

bool SynonymTable::is_word(const std::string& word) const {
  return table_.count(lowercase(word)) > 0;
}

// ---------------------------------------------------------------------------------------------
// Stopwords

const std::set<std::string>& english_stopwords() {
  static const std::set<std::string> words = {
      "i",       "me",      "my",      "myself",   "we",         "our",    "ours",    "ourselves",
      "you",     "your",    "yours",   "yourself", "yourselves", "he",     "him",     "his",
      "himself", "she",     "her",     "hers",     "herself",    "it",     "its",     "itself",
      "they",    "them",    "their",   "theirs",   "themselves", "what",   "which",   "who",
      "whom",    "this",    "that",    "these",    "those",      "am",     "is",      "are",
      "was",     "were",    "be",      "been",     "being",      "have",   "has",     "had",
      "having",  "do",      "does",    "did",      "doing",      "a",      "an",      "the",
      "and",     "but",     "if",      "or",       "because",    "as",     "until",   "while",
      "of",      "at",      "by",      "for",      "with",       "about",  "against", "between",
      "into",    "through", "during",  "before",   "after",      "above",  "below",   "to",
      "from",    "up",      "down",    "in",       "out",        "on",     "off",     "over",
      "under",   "again",   "further", "then",     "once",       "here",   "there",   "when",
      "where",   "why",     "how",     "all",      "any",        "both",   "each",    "few",
      "more",    "most",    "other",   "some",     "such",       "no",     "nor",     "not",
      "only",    "own",     "same",    "so",       "than",       "too",    "very",    "s",
      "t",       "can",     "will",    "just",     "don",        "should", "now",     ""};
  return words;
}

std::set<std::string> load_stopwords(const std::string& spec) {
  if (spec == "english") return english_stopwords();
  if (spec == "none" || spec.empty()) return {};
  std::ifstream in(spec, std::ios::binary);
  if (!in) throw InputError("stopword file not found: " + spec + " (or use english or none)");
  std::set<std::string> out;
  for (std::string line; std::getline(in, line);) {
    for (const std::string& w : split_whitespace(line)) out.insert(lowercase(w));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// EDA

Eda::Eda(EdaOptions options, std::vector<std::shared_ptr<const SynonymSource>> sources,
         std::set<std::string> stopwords)
    : options_(options), sources_(std::move(sources)), stopwords_(std::move(stopwords)) {
  for (double rate : {options_.synonym_rate, options_.insertion_rate, options_.swap_rate,
                      options_.deletion_rate}) {
    if (!(rate >= 0 && rate <= 1)) {
      throw InputError("EDA: every rate must be in [0, 1], got " + std::to_string(rate));
    }
  }
  if (options_.copies < 0) throw InputError("EDA: copies must be >= 0");
}

std::vector<std::string> Eda::split(const std::string& text) const {
  std::vector<std::string> words;
  for (const std::string& token : split_whitespace(text)) {
    size_t i = 0;
    while (i < token.size()) {
      const auto [cp, n] = code_point(token, i);
      if (!unspaced(cp)) {
        // A run of spaced-script characters stays one word.
        size_t j = i + n;
        while (j < token.size() && !unspaced(code_point(token, j).first)) {
          j += code_point(token, j).second;
        }
        words.push_back(token.substr(i, j - i));
        i = j;
        continue;
      }
      // Forward maximum matching: the longest dictionary word (up to 8 characters) here, else
      // one character.
      std::vector<size_t> ends;  // byte ends of 1, 2, ... unspaced characters from i
      for (size_t j = i; j < token.size() && ends.size() < 8;) {
        const auto [c, m] = code_point(token, j);
        if (!unspaced(c)) break;
        j += m;
        ends.push_back(j);
      }
      size_t end = ends[0];
      for (size_t k = ends.size(); k-- > 1;) {
        const std::string candidate = token.substr(i, ends[k] - i);
        const bool known = std::any_of(sources_.begin(), sources_.end(),
                                       [&](const auto& s) { return s->is_word(candidate); }) ||
                           stopwords_.count(candidate) > 0;
        if (known) {
          end = ends[k];
          break;
        }
      }
      words.push_back(token.substr(i, end - i));
      i = end;
    }
  }
  return words;
}

std::string Eda::join(const std::vector<std::string>& words) {
  std::string out;
  for (size_t k = 0; k < words.size(); ++k) {
    if (k > 0 && !(unspaced_word(words[k - 1]) && unspaced_word(words[k]))) out += ' ';
    out += words[k];
  }
  return out;
}

std::vector<std::string> Eda::synonyms(const std::string& word) const {
  const std::string key = lowercase(word);
  if (stopwords_.count(key)) return {};
  std::vector<std::string> out;
  for (const auto& source : sources_) {
    for (std::string& s : source->synonyms(key)) {
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
    }
  }
  return out;
}

std::vector<std::string> Eda::synonym_replacement(std::vector<std::string> words, int64_t n,
                                                  EdaRandom& random) const {
  // The distinct non-stopwords in a random order, replaced (every occurrence) until n were.
  std::vector<std::string> candidates;
  for (const std::string& w : words) {
    if (!stopwords_.count(lowercase(w)) &&
        std::find(candidates.begin(), candidates.end(), w) == candidates.end()) {
      candidates.push_back(w);
    }
  }
  for (int64_t k = static_cast<int64_t>(candidates.size()) - 1; k > 0; --k) {
    std::swap(candidates[k], candidates[random.below(k + 1)]);
  }
  int64_t replaced = 0;
  for (const std::string& candidate : candidates) {
    if (replaced >= n) break;
    const std::vector<std::string> options = synonyms(candidate);
    if (options.empty()) continue;
    const std::string& synonym = options[random.below(static_cast<int64_t>(options.size()))];
    for (std::string& w : words) {
      if (w == candidate) w = synonym;
    }
    ++replaced;
  }
  return words;
}

std::vector<std::string> Eda::random_insertion(std::vector<std::string> words, int64_t n,
                                               EdaRandom& random) const {
  for (int64_t k = 0; k < n && !words.empty(); ++k) {
    // A synonym of a random word (ten tries, as the reference), at a random place.
    std::vector<std::string> options;
    for (int tries = 0; tries < 10 && options.empty(); ++tries) {
      options = synonyms(words[random.below(static_cast<int64_t>(words.size()))]);
    }
    if (options.empty()) continue;
    const std::string synonym = options[random.below(static_cast<int64_t>(options.size()))];
    const int64_t at = random.below(static_cast<int64_t>(words.size()) + 1);
    words.insert(words.begin() + at, synonym);
  }
  return words;
}

std::vector<std::string> Eda::random_swap(std::vector<std::string> words, int64_t n,
                                          EdaRandom& random) {
  const auto size = static_cast<int64_t>(words.size());
  if (size < 2) return words;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t a = random.below(size);
    const int64_t b = (a + 1 + random.below(size - 1)) % size;  // any other position
    std::swap(words[a], words[b]);
  }
  return words;
}

std::vector<std::string> Eda::random_deletion(const std::vector<std::string>& words, double p,
                                              EdaRandom& random) {
  if (words.size() <= 1) return words;
  std::vector<std::string> out;
  for (const std::string& w : words) {
    if (random.uniform() >= p) out.push_back(w);
  }
  if (out.empty()) out.push_back(words[random.below(static_cast<int64_t>(words.size()))]);
  return out;
}

std::vector<std::string> Eda::augment(const std::string& text, uint64_t seed) const {
  const std::vector<std::string> words = split(text);
  std::vector<std::string> out;
  if (options_.copies == 0) return out;
  enum Op { kSynonym, kInsertion, kSwap, kDeletion };
  std::vector<Op> ops;
  if (options_.synonym_rate > 0) ops.push_back(kSynonym);
  if (options_.insertion_rate > 0) ops.push_back(kInsertion);
  if (options_.swap_rate > 0) ops.push_back(kSwap);
  if (options_.deletion_rate > 0) ops.push_back(kDeletion);
  if (words.empty() || ops.empty()) return std::vector<std::string>(options_.copies, text);
  EdaRandom random(seed);
  const auto count = [&](double rate) {
    return std::max<int64_t>(1, static_cast<int64_t>(rate * static_cast<double>(words.size())));
  };
  const int64_t start = random.below(static_cast<int64_t>(ops.size()));
  for (int64_t c = 0; c < options_.copies; ++c) {
    std::vector<std::string> result;
    switch (ops[(start + c) % ops.size()]) {
      case kSynonym:
        result = synonym_replacement(words, count(options_.synonym_rate), random);
        break;
      case kInsertion:
        result = random_insertion(words, count(options_.insertion_rate), random);
        break;
      case kSwap:
        result = random_swap(words, count(options_.swap_rate), random);
        break;
      case kDeletion:
        result = random_deletion(words, options_.deletion_rate, random);
        break;
    }
    out.push_back(join(result));
  }
  return out;
}

}  // namespace nlpkit
