// EDA text augmentation (Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques for Boosting
// Performance on Text Classification Tasks"; reference jasonwei20/eda_nlp): synonym replacement,
// random insertion, random swap and random deletion of words, each augmented copy made by one
// of them. Synonyms come from WordNet (our reader of the WordNet 3.0 database files that
// Debian's wordnet-base installs into /usr/share/wordnet) or from a user's synonym table (TSV),
// which serves any language: text in a script written without spaces (Chinese, Japanese) is
// split into the table's words by forward maximum matching, other characters one by one.
//
// Differences from the reference, on purpose: the text is not lowercased or stripped of
// punctuation (the tokenizer does that later, as the task configures it); a word's case is
// ignored when looking up synonyms and stopwords; the random numbers come from our own
// generator seeded per example, so a copy depends only on (seed, example index, copy).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace nlpkit {

/// Where synonyms come from.
class SynonymSource {
 public:
  virtual ~SynonymSource() = default;
  /// Synonyms of `word` (lowercase), without the word itself, in a stable order; a synonym may
  /// be several words separated by spaces. Empty when the word is unknown.
  virtual std::vector<std::string> synonyms(const std::string& word) const = 0;
  /// Whether `word` is a multi-character dictionary word that segmentation of unspaced text
  /// should keep whole.
  virtual bool is_word(const std::string& word) const { return false; }
};

/// The WordNet 3.0 database (index.{noun,verb,adj,adv} and data.*): a word's synonyms are the
/// other lemmas of every synset its index entries list, in index order (underscores become
/// spaces, adjective markers such as "(a)" are dropped). Exact lemmas only (no morphological
/// reduction of inflected forms).
class WordNet : public SynonymSource {
 public:
  /// Reads the index files of `dir`; data files are read on lookup. InputError when the folder
  /// or a file is missing ("install the Debian package wordnet-base") or a line is malformed
  /// (file:line).
  static std::shared_ptr<WordNet> load(const std::string& dir);
  std::vector<std::string> synonyms(const std::string& word) const override;

 private:
  std::string dir_;
  /// lemma -> (part of speech file suffix, synset byte offset) in index order.
  std::map<std::string, std::vector<std::pair<std::string, int64_t>>> index_;
  /// Lemmas of each synset already read, by "pos:offset".
  mutable std::map<std::string, std::vector<std::string>> synsets_;
};

/// A synonym table: one entry a line, `word<TAB>synonym<TAB>synonym...` (UTF-8; blank lines and
/// lines starting with # are skipped). Lookups are one-way: a line gives its first field's
/// synonyms. InputError "PATH:LINE: ..." for a line without a synonym.
class SynonymTable : public SynonymSource {
 public:
  static std::shared_ptr<SynonymTable> load(const std::string& path);
  std::vector<std::string> synonyms(const std::string& word) const override;
  bool is_word(const std::string& word) const override;

 private:
  std::map<std::string, std::vector<std::string>> table_;
};

/// The English stopwords EDA skips (the reference's list: pronouns, articles, auxiliaries,
/// prepositions and conjunctions).
const std::set<std::string>& english_stopwords();

/// "english" (the list above), "none", or a file with one word a line (InputError when missing).
std::set<std::string> load_stopwords(const std::string& spec);

/// Options of `Eda`; a rate of 0 turns its operation off.
struct EdaOptions {
  /// Synonym replacement: max(1, rate * words) non-stopwords replaced.
  double synonym_rate = 0.1;
  /// Random insertion: max(1, rate * words) synonyms of random words inserted at random places.
  double insertion_rate = 0.1;
  /// Random swap: max(1, rate * words) swaps of two random words.
  double swap_rate = 0.1;
  /// Random deletion: each word deleted with this probability (one word always survives).
  double deletion_rate = 0.1;
  /// Augmented copies per text.
  int64_t copies = 4;
};

/// A small deterministic generator (splitmix64): the same numbers on every platform, unlike the
/// standard library's distributions.
class EdaRandom {
 public:
  explicit EdaRandom(uint64_t seed) : state_(seed) {}
  uint64_t next();
  /// Uniform in [0, n), n > 0.
  int64_t below(int64_t n);
  /// Uniform in [0, 1).
  double uniform();

 private:
  uint64_t state_;
};

/// EDA over whitespace-separated words (and segmented unspaced scripts, see the top).
///
/// Example:
/// ```
/// nlpkit::Eda eda(nlpkit::EdaOptions{}, {nlpkit::WordNet::load("/usr/share/wordnet")},
///                 nlpkit::english_stopwords());
/// std::vector<std::string> copies = eda.augment("the movie was great fun", /*seed=*/42);
/// ```
class Eda {
 public:
  Eda(EdaOptions options, std::vector<std::shared_ptr<const SynonymSource>> sources,
      std::set<std::string> stopwords);

  /// options.copies augmented versions of `text`, a function of (text, seed) alone. Each copy
  /// applies one operation, cycling through the enabled ones from a random start; a text without
  /// words is returned unchanged.
  std::vector<std::string> augment(const std::string& text, uint64_t seed) const;

  /// The words of `text`: whitespace-separated tokens, unspaced-script runs segmented.
  std::vector<std::string> split(const std::string& text) const;
  /// Joins words with spaces, except between two words of an unspaced script.
  static std::string join(const std::vector<std::string>& words);

  /// Synonyms of a word from every source (first source first, duplicates dropped), looked up in
  /// lowercase; none for stopwords.
  std::vector<std::string> synonyms(const std::string& word) const;

  // The four operations, on words.
  std::vector<std::string> synonym_replacement(std::vector<std::string> words, int64_t n,
                                               EdaRandom& random) const;
  std::vector<std::string> random_insertion(std::vector<std::string> words, int64_t n,
                                            EdaRandom& random) const;
  static std::vector<std::string> random_swap(std::vector<std::string> words, int64_t n,
                                              EdaRandom& random);
  static std::vector<std::string> random_deletion(const std::vector<std::string>& words, double p,
                                                  EdaRandom& random);

 private:
  EdaOptions options_;
  std::vector<std::shared_ptr<const SynonymSource>> sources_;
  std::set<std::string> stopwords_;
};

}  // namespace nlpkit
