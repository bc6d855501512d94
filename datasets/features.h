// Classic text representations as sparse tensors: one-hot tokens, bag of words, word n-grams,
// TF-IDF and a word-word co-occurrence matrix, over a vocabulary of n-grams with frequency and
// size limits. The textbook definitions (Jurafsky & Martin, "Speech and Language Processing",
// ch. 6): TF(t, d) = count(t, d) / length(d), IDF(t) = log(N / (df(t) + 1)).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace nlpkit {

/// The word n-grams of `tokens` for n = min_n..max_n, n-grams joined by a space, in order of n
/// then position: word_ngrams({"a", "b", "c"}, 1, 2) == {"a", "b", "c", "a b", "b c"}.
std::vector<std::string> word_ngrams(const std::vector<std::string>& tokens, int64_t min_n,
                                     int64_t max_n);

struct FeatureOptions {
  /// n-gram range: terms are the n-grams with min_n <= n <= max_n.
  int64_t min_n = 1;
  int64_t max_n = 1;
  /// Terms seen fewer times in the corpus are left out.
  int64_t min_freq = 1;
  /// Largest vocabulary (the most frequent terms, ties by byte order); 0 = no limit.
  int64_t max_features = 0;
};

/// Terms (n-grams) -> columns, with the corpus statistics TF-IDF needs.
///   auto v = FeatureVocabulary::fit(tokenized_docs, {.max_n = 2, .max_features = 50000});
///   torch::Tensor x = tfidf(tokenized_docs, v);  // sparse (D, v.size())
class FeatureVocabulary {
 public:
  static FeatureVocabulary fit(const std::vector<std::vector<std::string>>& documents,
                               const FeatureOptions& options = {});
  int64_t size() const { return static_cast<int64_t>(terms_.size()); }
  /// The column of `term`, -1 when it is not in the vocabulary.
  int64_t id(const std::string& term) const;
  const std::string& term(int64_t id) const { return terms_.at(static_cast<size_t>(id)); }
  /// Documents of the fitted corpus holding the term.
  int64_t document_frequency(int64_t id) const { return df_.at(static_cast<size_t>(id)); }
  /// Documents the vocabulary was fitted on (N of the IDF).
  int64_t num_documents() const { return num_documents_; }
  const FeatureOptions& options() const { return options_; }
  /// The terms of a tokenized document (its n-grams in the vocabulary's range).
  std::vector<std::string> terms_of(const std::vector<std::string>& tokens) const {
    return word_ngrams(tokens, options_.min_n, options_.max_n);
  }

 private:
  FeatureOptions options_;
  std::vector<std::string> terms_;
  std::vector<int64_t> df_;
  std::unordered_map<std::string, int64_t> index_;
  int64_t num_documents_ = 0;
};

/// One-hot rows of a token sequence: sparse (T, V) float, row t has a 1 in the column of token
/// t (unigram vocabulary); a row stays empty for a token outside the vocabulary.
torch::Tensor one_hot(const std::vector<std::string>& tokens, const FeatureVocabulary& vocab);

/// Bag of n-grams: sparse (D, V) float of term counts; with `binary`, 1 for present terms.
torch::Tensor bag_of_words(const std::vector<std::vector<std::string>>& documents,
                           const FeatureVocabulary& vocab, bool binary = false);

/// TF-IDF: sparse (D, V) float, TF(t, d) * IDF(t) with TF = count(t, d) / (number of terms of
/// d, those outside the vocabulary included) and IDF = log(N / (df(t) + 1)) from the fitted
/// corpus. A term in (nearly) every document gets an IDF <= 0: the textbook formula, kept.
torch::Tensor tfidf(const std::vector<std::vector<std::string>>& documents,
                    const FeatureVocabulary& vocab);

/// The IDF of every column (V) float.
torch::Tensor inverse_document_frequency(const FeatureVocabulary& vocab);

/// Word-word co-occurrence counts over a symmetric window: sparse (V, V) float, entry (i, j) =
/// how often word j occurs within `window` tokens of word i (unigram vocabulary; tokens outside
/// it are skipped but still count as positions). Symmetric; the diagonal counts a word near
/// itself.
torch::Tensor cooccurrence_matrix(const std::vector<std::vector<std::string>>& documents,
                                  const FeatureVocabulary& vocab, int64_t window);

}  // namespace nlpkit
