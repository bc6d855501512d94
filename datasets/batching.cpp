#include "datasets/batching.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string_view>
#include <utility>

namespace nlpkit {
namespace {

bool is_ascii_terminator(char32_t cp) { return cp == '.' || cp == '!' || cp == '?'; }

bool is_cjk_terminator(char32_t cp) {
  return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F || cp == 0xFF61;  // 。！？｡
}

// Closing quotes and brackets (" ' ) ] } ’ ” » 〉 》 」 』 】 ）) belong to the sentence they
// follow: 'He said "no."' ends with the quote.
bool is_closing(char32_t cp) {
  constexpr std::u32string_view kClosing =
      U"\"')]}\u2019\u201D\u00BB\u3009\u300B\u300D\u300F\u3011\uFF09";
  return kClosing.find(cp) != std::u32string_view::npos;
}

}  // namespace

std::vector<std::string> split_sentences(const std::string& text) {
  const std::vector<char32_t> cps = utf8_decode(text);
  const size_t n = cps.size();
  std::vector<std::string> sentences;
  auto emit = [&](size_t begin, size_t end) {
    while (begin < end && (is_whitespace(cps[begin]) || is_control(cps[begin]))) ++begin;
    while (end > begin && (is_whitespace(cps[end - 1]) || is_control(cps[end - 1]))) --end;
    if (begin == end) return;
    std::string sentence;
    for (size_t i = begin; i < end; ++i) utf8_append(sentence, cps[i]);
    sentences.push_back(std::move(sentence));
  };
  size_t start = 0;
  size_t i = 0;
  while (i < n) {
    if (!is_ascii_terminator(cps[i]) && !is_cjk_terminator(cps[i])) {
      ++i;
      continue;
    }
    bool cjk = false;
    size_t j = i;
    for (; j < n && (is_ascii_terminator(cps[j]) || is_cjk_terminator(cps[j])); ++j) {
      cjk = cjk || is_cjk_terminator(cps[j]);
    }
    while (j < n && is_closing(cps[j])) ++j;
    // "3.14", "e.g.", "example.com": an ASCII mark inside a word does not end a sentence.
    if (cjk || j == n || is_whitespace(cps[j]) || is_cjk_ideograph(cps[j])) {
      emit(start, j);
      start = j;
    }
    i = j;
  }
  emit(start, n);
  return sentences;
}

EncodedDocument encode_document(const std::string& text, const Tokenizer& tokenizer,
                                const Vocab& vocab, const HierarchicalOptions& options) {
  TORCH_CHECK(options.max_sentences > 0, "HierarchicalOptions: max_sentences (",
              options.max_sentences, ") must be positive");
  TORCH_CHECK(options.max_sentence_length > 0, "HierarchicalOptions: max_sentence_length (",
              options.max_sentence_length, ") must be positive");
  TORCH_CHECK(vocab.unk_id() >= 0, "encode_document: the vocab has no unk token '",
              vocab.unk_token(), "'");
  EncodedDocument document;
  for (const std::string& sentence : split_sentences(text)) {
    if (static_cast<int64_t>(document.size()) >= options.max_sentences) break;
    const std::vector<std::string> tokens = tokenizer.tokenize(sentence);
    if (tokens.empty()) continue;
    const size_t length = std::min(tokens.size(), static_cast<size_t>(options.max_sentence_length));
    std::vector<int64_t> ids;
    ids.reserve(length);
    for (size_t k = 0; k < length; ++k) ids.push_back(vocab.id(tokens[k]));
    document.push_back(std::move(ids));
  }
  if (document.empty()) document.push_back({vocab.unk_id()});
  return document;
}

DocumentBatch collate_documents(const std::vector<const EncodedDocument*>& docs,
                                const std::vector<int64_t>& labels, int64_t pad_id) {
  const int64_t batch_size = static_cast<int64_t>(docs.size());
  TORCH_CHECK(batch_size > 0, "collate_documents: no documents");
  TORCH_CHECK(labels.empty() || labels.size() == docs.size(), "collate_documents: ", labels.size(),
              " labels for ", docs.size(), " documents");
  int64_t max_sentences = 0;
  int64_t max_length = 0;
  for (int64_t b = 0; b < batch_size; ++b) {
    const EncodedDocument* doc = docs[static_cast<size_t>(b)];
    TORCH_CHECK(doc != nullptr, "collate_documents: document ", b, " is null");
    TORCH_CHECK(!doc->empty(), "collate_documents: document ", b, " has no sentences");
    max_sentences = std::max(max_sentences, static_cast<int64_t>(doc->size()));
    for (size_t s = 0; s < doc->size(); ++s) {
      TORCH_CHECK(!(*doc)[s].empty(), "collate_documents: sentence ", s, " of document ", b,
                  " is empty");
      max_length = std::max(max_length, static_cast<int64_t>((*doc)[s].size()));
    }
  }
  DocumentBatch batch;
  batch.ids = torch::full({batch_size, max_sentences, max_length}, pad_id, torch::kInt64);
  batch.word_mask = torch::zeros({batch_size, max_sentences, max_length}, torch::kBool);
  batch.sentence_mask = torch::zeros({batch_size, max_sentences}, torch::kBool);
  auto ids = batch.ids.accessor<int64_t, 3>();
  auto word_mask = batch.word_mask.accessor<bool, 3>();
  auto sentence_mask = batch.sentence_mask.accessor<bool, 2>();
  for (int64_t b = 0; b < batch_size; ++b) {
    const EncodedDocument& doc = *docs[static_cast<size_t>(b)];
    for (size_t s = 0; s < doc.size(); ++s) {
      sentence_mask[b][s] = true;
      for (size_t w = 0; w < doc[s].size(); ++w) {
        ids[b][s][w] = doc[s][w];
        word_mask[b][s][w] = true;
      }
    }
  }
  if (!labels.empty()) batch.labels = torch::tensor(labels, torch::kInt64);  // (B)
  return batch;
}

uint64_t random_below(std::mt19937_64& rng, uint64_t bound) {
  TORCH_CHECK(bound > 0, "random_below: bound must be positive");
  // Drop the lowest 2^64 mod bound outputs so the remaining ones fall evenly into the bound
  // residues; at most half of the draws are rejected, almost always none.
  const uint64_t threshold = (0 - bound) % bound;
  while (true) {
    const uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

void shuffle_in_place(std::vector<int64_t>& values, std::mt19937_64& rng) {
  for (size_t i = values.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(random_below(rng, i));
    std::swap(values[i - 1], values[j]);
  }
}

EpochBatches::EpochBatches(int64_t n, int64_t batch_size, bool shuffle, uint64_t seed,
                           int64_t shard, int64_t shards)
    : n_(n), batch_size_(batch_size), shuffle_(shuffle), seed_(seed), shard_(shard),
      shards_(shards) {
  TORCH_CHECK(n >= 0 && batch_size > 0, "EpochBatches: need n >= 0 and batch_size > 0, got ", n,
              " and ", batch_size);
  TORCH_CHECK(shards >= 1 && shard >= 0 && shard < shards, "EpochBatches: shard ", shard,
              " of ", shards, " does not exist");
}

std::vector<int64_t> EpochBatches::indices(int64_t epoch, int64_t batch) {
  if (epoch != epoch_) {
    std::vector<int64_t> order;
    if (shuffle_) {
      order = shuffled_indices(n_, seed_ * 1000003u + static_cast<uint64_t>(epoch));
    } else {
      order.resize(n_);
      std::iota(order.begin(), order.end(), 0);
    }
    // Every rank shuffles the same way (the order depends on seed and epoch only) and keeps its
    // own stride of it.
    order_.clear();
    for (int64_t i = shard_; i < per_shard() * shards_ && n_ > 0; i += shards_) {
      order_.push_back(order[i % n_]);
    }
    epoch_ = epoch;
  }
  const int64_t m = static_cast<int64_t>(order_.size());
  const int64_t begin = batch * batch_size_;
  TORCH_CHECK(batch >= 0 && begin < m, "batch ", batch, " is past the end of the epoch (",
              count(), " batches)");
  const int64_t end = std::min(m, begin + batch_size_);
  return std::vector<int64_t>(order_.begin() + begin, order_.begin() + end);
}

std::vector<std::vector<int64_t>> sequential_batches(int64_t n, int64_t batch_size) {
  TORCH_CHECK(batch_size > 0, "sequential_batches: batch_size must be positive");
  std::vector<std::vector<int64_t>> out;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    std::vector<int64_t> idx(std::min(n, begin + batch_size) - begin);
    std::iota(idx.begin(), idx.end(), begin);
    out.push_back(std::move(idx));
  }
  return out;
}

std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed) {
  TORCH_CHECK(n >= 0, "shuffled_indices: n (", n, ") must be >= 0");
  std::vector<int64_t> indices(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) indices[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  shuffle_in_place(indices, rng);
  return indices;
}

std::vector<std::vector<int64_t>> length_grouped_batches(
    const std::vector<std::pair<int64_t, int64_t>>& lengths, int64_t batch_size, int64_t maxi_batch,
    bool shuffled, uint64_t seed) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  const auto n = static_cast<int64_t>(order.size());
  std::vector<int64_t> runs((n + batch_size - 1) / batch_size);  // the n-th batch's run
  std::iota(runs.begin(), runs.end(), 0);
  if (shuffled) {
    std::mt19937_64 rng(seed);
    shuffle_in_place(order, rng);
    if (maxi_batch > 1) {
      // Padding is work: a batch of random words is about twice as long as its average word.
      // Sorting pools of maxi_batch batches by length groups similar words; shuffling the
      // batches afterwards keeps long and short ones mixed through the epoch.
      const int64_t pool = maxi_batch * batch_size;
      for (int64_t p = 0; p < n; p += pool) {
        std::stable_sort(order.begin() + p, order.begin() + std::min(p + pool, n),
                         [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
      }
      shuffle_in_place(runs, rng);
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t run : runs) {
    const int64_t begin = run * batch_size;
    batches.emplace_back(order.begin() + begin, order.begin() + std::min(begin + batch_size, n));
  }
  return batches;
}

namespace {

// Example indices per label, labels in ascending order (a fixed order keeps splits
// reproducible).
std::map<int64_t, std::vector<int64_t>> group_by_label(const std::vector<int64_t>& labels) {
  std::map<int64_t, std::vector<int64_t>> groups;
  for (size_t i = 0; i < labels.size(); ++i) {
    groups[labels[i]].push_back(static_cast<int64_t>(i));
  }
  return groups;
}

}  // namespace

SplitIndices stratified_split(const std::vector<int64_t>& labels, double valid_fraction,
                              double test_fraction, uint64_t seed) {
  TORCH_CHECK(valid_fraction >= 0 && valid_fraction <= 1, "stratified_split: valid_fraction (",
              valid_fraction, ") must lie in [0, 1]");
  TORCH_CHECK(test_fraction >= 0 && test_fraction <= 1, "stratified_split: test_fraction (",
              test_fraction, ") must lie in [0, 1]");
  TORCH_CHECK(valid_fraction + test_fraction <= 1.0 + 1e-9, "stratified_split: valid_fraction (",
              valid_fraction, ") + test_fraction (", test_fraction, ") must be at most 1");
  std::mt19937_64 rng(seed);
  SplitIndices split;
  for (auto& [label, indices] : group_by_label(labels)) {
    shuffle_in_place(indices, rng);
    const int64_t n = static_cast<int64_t>(indices.size());
    const int64_t n_test = std::min<int64_t>(n, std::llround(n * test_fraction));
    const int64_t n_valid = std::min<int64_t>(n - n_test, std::llround(n * valid_fraction));
    for (int64_t i = 0; i < n; ++i) {
      auto& part = i < n_test ? split.test : i < n_test + n_valid ? split.valid : split.train;
      part.push_back(indices[static_cast<size_t>(i)]);
    }
  }
  // Mix the classes, which were appended one after another.
  shuffle_in_place(split.train, rng);
  shuffle_in_place(split.valid, rng);
  shuffle_in_place(split.test, rng);
  return split;
}

std::vector<int64_t> stratified_subset(const std::vector<int64_t>& labels, int64_t count,
                                       uint64_t seed) {
  const auto n = static_cast<int64_t>(labels.size());
  TORCH_CHECK(count > 0 && count <= n, "stratified_subset: count (", count,
              ") must lie in [1, number of examples (", n, ")]");
  std::mt19937_64 rng(seed);
  std::map<int64_t, std::vector<int64_t>> groups = group_by_label(labels);
  // Largest remainder: floor quotas first, then one more for the largest fractional parts.
  std::vector<std::pair<int64_t, int64_t>> remainders;  // (-(count * n_c mod n), label)
  std::map<int64_t, int64_t> quota;
  int64_t given = 0;
  for (const auto& [label, indices] : groups) {
    const int64_t share = count * static_cast<int64_t>(indices.size());
    quota[label] = share / n;
    given += share / n;
    remainders.emplace_back(-(share % n), label);
  }
  std::sort(remainders.begin(), remainders.end());
  for (int64_t i = 0; i < count - given; ++i) ++quota[remainders[static_cast<size_t>(i)].second];
  std::vector<int64_t> subset;
  for (auto& [label, indices] : groups) {
    shuffle_in_place(indices, rng);
    subset.insert(subset.end(), indices.begin(), indices.begin() + quota[label]);
  }
  std::sort(subset.begin(), subset.end());
  return subset;
}

std::vector<int64_t> bootstrap_sample(int64_t n, uint64_t seed) {
  TORCH_CHECK(n > 0, "bootstrap_sample: n (", n, ") must be positive");
  std::mt19937_64 rng(seed);
  std::vector<int64_t> sample(static_cast<size_t>(n));
  for (auto& index : sample) index = static_cast<int64_t>(random_below(rng, static_cast<uint64_t>(n)));
  std::sort(sample.begin(), sample.end());
  return sample;
}

std::vector<SplitIndices> stratified_kfold(const std::vector<int64_t>& labels, int64_t k,
                                           uint64_t seed) {
  TORCH_CHECK(k >= 2, "stratified_kfold: k (", k, ") must be at least 2");
  TORCH_CHECK(k <= static_cast<int64_t>(labels.size()), "stratified_kfold: k (", k,
              ") must not exceed the number of examples (", labels.size(), ")");
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> parts(static_cast<size_t>(k));
  size_t next = 0;
  for (auto& [label, indices] : group_by_label(labels)) {
    shuffle_in_place(indices, rng);
    for (int64_t index : indices) {
      parts[next].push_back(index);
      next = (next + 1) % parts.size();
    }
  }
  std::vector<SplitIndices> folds(static_cast<size_t>(k));
  for (size_t f = 0; f < parts.size(); ++f) {
    folds[f].test = parts[f];
    for (size_t g = 0; g < parts.size(); ++g) {
      if (g != f) folds[f].train.insert(folds[f].train.end(), parts[g].begin(), parts[g].end());
    }
    shuffle_in_place(folds[f].train, rng);
    shuffle_in_place(folds[f].test, rng);
  }
  return folds;
}

}  // namespace nlpkit
