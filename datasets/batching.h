// Documents -> padded batches for hierarchical (sentence, word) classifiers, and seeded,
// platform-independent shuffles and stratified splits.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "datasets/tokenizers.h"
#include "datasets/vocab.h"

namespace nlpkit {

/// Splits text after sentence-ending punctuation: . ! ? and the fullwidth 。！？ (and ｡).
/// A run of them stays together ("wait...", "?!"), as do closing quotes and brackets right
/// after it. An ASCII run ends a sentence only before whitespace, a CJK character or the end,
/// so "3.14" and "e.g." stay whole; CJK marks always end one. Sentences are trimmed and empty
/// ones dropped.
///   split_sentences("Hi there. How are you?!") == {"Hi there.", "How are you?!"}
///   split_sentences("你好。今天好吗？") == {"你好。", "今天好吗？"}
std::vector<std::string> split_sentences(const std::string& text);

/// Limits on a document's shape for hierarchical models.
struct HierarchicalOptions {
  /// Sentences kept per document (the first ones).
  int64_t max_sentences = 16;
  /// Words kept per sentence (the first ones).
  int64_t max_sentence_length = 32;
};

/// Sentences of word ids.
using EncodedDocument = std::vector<std::vector<int64_t>>;

/// Splits `text` into sentences, tokenizes them and maps tokens to ids. Sentences without
/// tokens are dropped; the first max_sentences of the rest are kept, each cut to
/// max_sentence_length ids. A document without any token becomes one sentence holding unk, so
/// every document has at least one non-empty sentence (the vocab must have an unk token).
EncodedDocument encode_document(const std::string& text, const Tokenizer& tokenizer,
                                const Vocab& vocab, const HierarchicalOptions& options = {});

/// A padded batch of documents; D and S are the largest sentence count and sentence length in
/// the batch.
struct DocumentBatch {
  torch::Tensor ids;            ///< (B, D, S) int64, pad_id where there is no word
  torch::Tensor word_mask;      ///< (B, D, S) bool, true on real words
  torch::Tensor sentence_mask;  ///< (B, D) bool, true on real sentences
  torch::Tensor labels;         ///< (B) int64; undefined when no labels were given
};

/// Pads documents into a batch. `labels` has one entry per document, or none (prediction).
/// Every document needs at least one sentence and every sentence at least one word (what
/// encode_document produces), so that no mask row is all false.
///   DocumentBatch b = collate_documents({&doc0, &doc1}, {0, 1}, vocab.pad_id());
DocumentBatch collate_documents(const std::vector<const EncodedDocument*>& docs,
                                const std::vector<int64_t>& labels, int64_t pad_id);

/// A uniform integer in [0, bound) from `rng`, by rejection, so that (unlike
/// std::uniform_int_distribution, whose algorithm the standard leaves open) the same seed gives
/// the same numbers with every standard library. TORCH_CHECKs bound > 0.
uint64_t random_below(std::mt19937_64& rng, uint64_t bound);

/// Shuffles `values` in place with Fisher-Yates and random_below (platform-independent).
void shuffle_in_place(std::vector<int64_t>& values, std::mt19937_64& rng);

/// 0..n-1 in a random order that depends only on `seed`.
std::vector<int64_t> shuffled_indices(int64_t n, uint64_t seed);

/// The training batches of an epoch: 0..n-1 reshuffled each epoch from (seed, epoch) alone (so
/// a resumed run sees the same batches), or in order without `shuffle`, cut into batch_size
/// slices; the last may be shorter.
///
/// In a distributed run each of `shards` ranks takes every shards-th example of the epoch's
/// order, starting at `shard`, after the order is padded by wrapping around to a multiple of
/// `shards` (torch's DistributedSampler): every rank gets the same number of batches, and the
/// ranks' batch b together are exactly batch b of one rank with shards * batch_size examples.
///   EpochBatches batches(n, 32, true, seed);
///   for (int64_t b = 0; b < batches.count(); ++b) step(batches.indices(epoch, b));
class EpochBatches {
 public:
  EpochBatches(int64_t n, int64_t batch_size, bool shuffle, uint64_t seed, int64_t shard = 0,
               int64_t shards = 1);
  /// Batches per epoch (of this shard).
  int64_t count() const { return (per_shard() + batch_size_ - 1) / batch_size_; }
  /// The examples of batch `batch` of epoch `epoch` (the epoch's order is kept until the next).
  std::vector<int64_t> indices(int64_t epoch, int64_t batch);

 private:
  int64_t per_shard() const { return (n_ + shards_ - 1) / shards_; }
  int64_t n_, batch_size_;
  bool shuffle_;
  uint64_t seed_;
  int64_t shard_, shards_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // this shard's examples of epoch_
};

/// The training batches of an epoch of sequence pairs, as indices into `lengths` ((source,
/// target) lengths).
/// Unshuffled: in order. Shuffled (seeded): in random order; with maxi_batch > 1 each pool of
/// maxi_batch batches is sorted by length first and the batches are then shuffled, so a batch
/// holds words of similar length and pads little (Marian's maxi-batch).
std::vector<std::vector<int64_t>> length_grouped_batches(
    const std::vector<std::pair<int64_t, int64_t>>& lengths, int64_t batch_size, int64_t maxi_batch,
    bool shuffled, uint64_t seed);

/// 0..n-1 cut into consecutive slices of batch_size (evaluation batches).
std::vector<std::vector<int64_t>> sequential_batches(int64_t n, int64_t batch_size);

/// Indices of the examples in each part of a split, each part in a seeded random order.
struct SplitIndices {
  std::vector<int64_t> train, valid, test;
};

/// Splits example indices 0..n-1 (n = labels.size()) so that each class keeps its proportions:
/// per class, round(count * test_fraction) go to test, round(count * valid_fraction) to valid,
/// the rest to train. Every index lands in exactly one part. TORCH_CHECKs the fractions lie in
/// [0, 1] and sum to at most 1.
///   SplitIndices s = stratified_split(label_ids, 0.1, 0.1, 1234);  // 80/10/10
SplitIndices stratified_split(const std::vector<int64_t>& labels, double valid_fraction,
                              double test_fraction, uint64_t seed);

/// `count` of the example indices 0..labels.size()-1 keeping each class's proportion: class c
/// gets floor(count * n_c / n) and the leftover places go to the classes with the largest
/// remainders (ties: the smaller label id), every class drawn in a seeded random order; the
/// result is sorted (file order). TORCH_CHECKs 0 < count <= labels.size().
///   std::vector<int64_t> few = stratified_subset(label_ids, 500, 1234);
std::vector<int64_t> stratified_subset(const std::vector<int64_t>& labels, int64_t count,
                                       uint64_t seed);

/// n indices drawn uniformly with replacement from 0..n-1 (a bootstrap sample, as bagging
/// trains each model on), sorted; depends only on `seed`. TORCH_CHECKs n > 0.
std::vector<int64_t> bootstrap_sample(int64_t n, uint64_t seed);

/// k folds for cross-validation: fold i tests on the i-th part, trains on the others, and has
/// no valid part. Each class is dealt round-robin across the folds (continuing from where the
/// previous class stopped), so fold sizes, overall and per class, differ by at most one.
/// TORCH_CHECKs 2 <= k <= labels.size().
std::vector<SplitIndices> stratified_kfold(const std::vector<int64_t>& labels, int64_t k,
                                           uint64_t seed);

}  // namespace nlpkit
