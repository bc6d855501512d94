#include "datasets/features.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_set>

namespace nlpkit {
namespace {

/// A sparse (rows, cols) float tensor from COO triplets (duplicates summed).
torch::Tensor sparse(const std::vector<int64_t>& rows, const std::vector<int64_t>& cols,
                     const std::vector<float>& values, int64_t n_rows, int64_t n_cols) {
  const auto nnz = static_cast<int64_t>(values.size());
  torch::Tensor indices = torch::empty({2, nnz}, torch::kInt64);
  if (nnz > 0) {
    std::copy(rows.begin(), rows.end(), indices[0].data_ptr<int64_t>());
    std::copy(cols.begin(), cols.end(), indices[1].data_ptr<int64_t>());
  }
  torch::Tensor v = torch::tensor(values, torch::kFloat32);
  if (nnz == 0) v = torch::empty({0}, torch::kFloat32);
  return torch::sparse_coo_tensor(indices, v, {n_rows, n_cols}).coalesce();
}

void check_unigrams(const FeatureVocabulary& vocab, const char* what) {
  TORCH_CHECK(vocab.options().min_n == 1 && vocab.options().max_n == 1, what,
              ": needs a unigram vocabulary (min_n = max_n = 1), got n-grams ",
              vocab.options().min_n, "..", vocab.options().max_n);
}

}  // namespace

std::vector<std::string> word_ngrams(const std::vector<std::string>& tokens, int64_t min_n,
                                     int64_t max_n) {
  TORCH_CHECK(min_n >= 1 && max_n >= min_n, "word_ngrams: bad n-gram range ", min_n, "..", max_n);
  std::vector<std::string> out;
  const auto len = static_cast<int64_t>(tokens.size());
  for (int64_t n = min_n; n <= max_n; ++n) {
    for (int64_t i = 0; i + n <= len; ++i) {
      std::string gram = tokens[i];
      for (int64_t j = 1; j < n; ++j) gram += " " + tokens[i + j];
      out.push_back(std::move(gram));
    }
  }
  return out;
}

FeatureVocabulary FeatureVocabulary::fit(const std::vector<std::vector<std::string>>& documents,
                                         const FeatureOptions& options) {
  TORCH_CHECK(options.min_freq >= 1 && options.max_features >= 0,
              "FeatureVocabulary: min_freq must be >= 1 and max_features >= 0");
  FeatureVocabulary v;
  v.options_ = options;
  v.num_documents_ = static_cast<int64_t>(documents.size());
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> stats;  // term -> (count, df)
  for (const auto& doc : documents) {
    std::unordered_set<std::string> seen;
    for (auto& term : word_ngrams(doc, options.min_n, options.max_n)) {
      auto& s = stats[term];
      ++s.first;
      if (seen.insert(term).second) ++s.second;
    }
  }
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> sorted;
  for (auto& [term, s] : stats) {
    if (s.first >= options.min_freq) sorted.emplace_back(term, s);
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.first != b.second.first ? a.second.first > b.second.first : a.first < b.first;
  });
  if (options.max_features > 0 && static_cast<int64_t>(sorted.size()) > options.max_features) {
    sorted.resize(static_cast<size_t>(options.max_features));
  }
  for (auto& [term, s] : sorted) {
    v.index_.emplace(term, static_cast<int64_t>(v.terms_.size()));
    v.terms_.push_back(term);
    v.df_.push_back(s.second);
  }
  return v;
}

int64_t FeatureVocabulary::id(const std::string& term) const {
  auto it = index_.find(term);
  return it == index_.end() ? -1 : it->second;
}

torch::Tensor one_hot(const std::vector<std::string>& tokens, const FeatureVocabulary& vocab) {
  check_unigrams(vocab, "one_hot");
  std::vector<int64_t> rows, cols;
  std::vector<float> values;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const int64_t id = vocab.id(tokens[t]);
    if (id < 0) continue;
    rows.push_back(static_cast<int64_t>(t));
    cols.push_back(id);
    values.push_back(1.0f);
  }
  return sparse(rows, cols, values, static_cast<int64_t>(tokens.size()), vocab.size());
}

namespace {
/// Per document: the counts of its vocabulary terms and its total number of terms.
template <typename F>
void for_each_count(const std::vector<std::vector<std::string>>& documents,
                    const FeatureVocabulary& vocab, F&& f) {
  for (size_t d = 0; d < documents.size(); ++d) {
    std::map<int64_t, int64_t> counts;  // ordered: coalesced output needs no sort later
    const std::vector<std::string> terms = vocab.terms_of(documents[d]);
    for (const auto& term : terms) {
      const int64_t id = vocab.id(term);
      if (id >= 0) ++counts[id];
    }
    f(static_cast<int64_t>(d), counts, static_cast<int64_t>(terms.size()));
  }
}
}  // namespace

torch::Tensor bag_of_words(const std::vector<std::vector<std::string>>& documents,
                           const FeatureVocabulary& vocab, bool binary) {
  std::vector<int64_t> rows, cols;
  std::vector<float> values;
  for_each_count(documents, vocab,
                 [&](int64_t d, const std::map<int64_t, int64_t>& counts, int64_t) {
                   for (const auto& [id, count] : counts) {
                     rows.push_back(d);
                     cols.push_back(id);
                     values.push_back(binary ? 1.0f : static_cast<float>(count));
                   }
                 });
  return sparse(rows, cols, values, static_cast<int64_t>(documents.size()), vocab.size());
}

torch::Tensor inverse_document_frequency(const FeatureVocabulary& vocab) {
  torch::Tensor idf = torch::empty({vocab.size()}, torch::kFloat32);
  float* p = idf.data_ptr<float>();
  const double n = static_cast<double>(vocab.num_documents());
  for (int64_t i = 0; i < vocab.size(); ++i) {
    p[i] = static_cast<float>(std::log(n / (vocab.document_frequency(i) + 1.0)));
  }
  return idf;
}

torch::Tensor tfidf(const std::vector<std::vector<std::string>>& documents,
                    const FeatureVocabulary& vocab) {
  const torch::Tensor idf_tensor = inverse_document_frequency(vocab);
  const float* idf = idf_tensor.data_ptr<float>();
  std::vector<int64_t> rows, cols;
  std::vector<float> values;
  for_each_count(documents, vocab,
                 [&](int64_t d, const std::map<int64_t, int64_t>& counts, int64_t length) {
                   for (const auto& [id, count] : counts) {
                     rows.push_back(d);
                     cols.push_back(id);
                     values.push_back(static_cast<float>(count) / length * idf[id]);
                   }
                 });
  return sparse(rows, cols, values, static_cast<int64_t>(documents.size()), vocab.size());
}

torch::Tensor cooccurrence_matrix(const std::vector<std::vector<std::string>>& documents,
                                  const FeatureVocabulary& vocab, int64_t window) {
  check_unigrams(vocab, "cooccurrence_matrix");
  TORCH_CHECK(window >= 1, "cooccurrence_matrix: window must be >= 1, got ", window);
  std::vector<int64_t> rows, cols;
  std::vector<float> values;
  for (const auto& doc : documents) {
    std::vector<int64_t> ids;
    for (const auto& t : doc) ids.push_back(vocab.id(t));
    const auto len = static_cast<int64_t>(ids.size());
    for (int64_t i = 0; i < len; ++i) {
      if (ids[i] < 0) continue;
      for (int64_t j = std::max<int64_t>(0, i - window); j <= std::min(len - 1, i + window); ++j) {
        if (j == i || ids[j] < 0) continue;
        rows.push_back(ids[i]);
        cols.push_back(ids[j]);
        values.push_back(1.0f);
      }
    }
  }
  return sparse(rows, cols, values, vocab.size(), vocab.size());
}

}  // namespace nlpkit
