// Word vector files in the word2vec formats (text and binary, as word2vec.c's -binary 0/1
// writes them and gensim's KeyedVectors reads them) and the queries people run on them: nearest
// neighbours and analogies by cosine similarity.
#pragma once

#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nlpkit {

/// Words and their vectors, row i for words[i].
struct WordVectors {
  std::vector<std::string> words;
  torch::Tensor vectors;  // (N, D) float32
  /// Where the vectors came from, for error messages.
  std::string source;

  int64_t size() const { return static_cast<int64_t>(words.size()); }
  int64_t dim() const { return vectors.defined() ? vectors.size(1) : 0; }
  /// The row of `word`; InputError "unknown word 'x' (not among the N words of SOURCE)".
  int64_t index(const std::string& word) const;
  bool contains(const std::string& word) const { return index_.count(word) > 0; }
  /// Builds the word -> row index (the loaders call it; call it after filling words by hand).
  void build_index();

 private:
  std::unordered_map<std::string, int64_t> index_;
};

/// "text" (a header "N D", then "word v1 ... vD" lines), "binary" (the header line, then for
/// each word "word " and D little-endian float32s and a '\n'), or "auto": binary when the path
/// ends in .bin.
std::string word_vectors_format(const std::string& path, const std::string& format = "auto");

/// Writes `vectors` (N, D) for `words` atomically (nothing half-written on failure).
///   save_word_vectors("vectors.txt", words, w2v->input_embeddings, "text");
void save_word_vectors(const std::string& path, const std::vector<std::string>& words,
                       const torch::Tensor& vectors, const std::string& format = "auto");

/// Reads a file in either format (see word_vectors_format). Throws InputError naming the file
/// and line: a vector whose length differs from the header's (or, without a header, from the
/// first line's), a bad number, a header count that does not match, no vectors at all.
WordVectors load_word_vectors(const std::string& path, const std::string& format = "auto");

/// One query answer: a word and its cosine similarity.
using ScoredWord = std::pair<std::string, float>;

/// The k words most cosine-similar to `word` (itself excluded), best first.
std::vector<ScoredWord> nearest_neighbors(const WordVectors& vectors, const std::string& word,
                                          int64_t k);

/// a : b :: c : ?  -- the k words closest to unit(b) - unit(a) + unit(c) (word2vec.c's
/// word-analogy, 3CosAdd), the three query words excluded.
///   analogy(v, "man", "king", "woman", 1)[0].first == "queen"  // on good vectors
std::vector<ScoredWord> analogy(const WordVectors& vectors, const std::string& a,
                                const std::string& b, const std::string& c, int64_t k);

}  // namespace nlpkit
