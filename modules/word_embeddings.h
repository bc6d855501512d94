// Word embeddings learned from raw text.
//
// Word2Vec (Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space"
// and "Distributed Representations of Words and Phrases and their Compositionality"): skip-gram
// and CBOW, trained with negative sampling (noise drawn from unigram counts^0.75) or
// hierarchical softmax (a Huffman tree over the counts), subsampling of frequent words, a dynamic
// window and a linearly decaying learning rate. The numerics follow the original word2vec.c
// (sigmoid table over [-6, 6], its gradient clamps, its subsampling formula, lr floor of
// 1e-4 * lr); the training loop is our own: lock-free (Hogwild, Recht et al. 2011) threads
// updating the parameters' plain float arrays, as word2vec.c and fastText do.
//
// FastText classifier (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification";
// facebookresearch/fastText's supervised mode): the mean of word and hashed word n-gram
// embeddings -> one linear layer -> softmax.
//
// NNLM (Bengio et al. 2003, "A Neural Probabilistic Language Model"): the embeddings of the
// previous n - 1 words, concatenated -> tanh hidden layer -> softmax over the vocabulary, with
// optional direct connections from the embeddings to the output: y = b + W x + U tanh(d + H x).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "modules/language_model.h"

namespace nlpkit {

// ============================================================================== Word2Vec

struct Word2VecOptions {
  Word2VecOptions(int64_t vocab_size, int64_t embedding_dim)
      : vocab_size_(vocab_size), embedding_dim_(embedding_dim) {}
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, embedding_dim);
  /// skip_gram (predict each context word from the centre word) or cbow (predict the centre
  /// word from the mean of its context).
  TORCH_ARG(std::string, architecture) = "skip_gram";
  /// negative_sampling or hierarchical_softmax.
  TORCH_ARG(std::string, loss) = "negative_sampling";
  /// negative_sampling: noise words per positive word.
  TORCH_ARG(int64_t, negative) = 5;
  /// Largest distance between the centre word and a context word (the window actually used is
  /// drawn uniformly from 1..window for each centre word).
  TORCH_ARG(int64_t, window) = 5;
};

/// Word2Vec's two matrices: `input_embeddings` (V, D), the word vectors (word2vec.c's syn0),
/// and `output_embeddings`, the output layer: (V, D) for negative sampling (syn1neg) or
/// (V - 1, D), one row per inner node of the Huffman tree, for hierarchical softmax (syn1).
///   Word2Vec w2v(Word2VecOptions(vocab.size(), 100).architecture("cbow"));
///   train_word2vec(w2v, corpus, counts, Word2VecTrainOptions().threads(8));
///   torch::Tensor vectors = w2v->input_embeddings;  // (V, 100)
class Word2VecImpl : public torch::nn::Cloneable<Word2VecImpl> {
 public:
  explicit Word2VecImpl(Word2VecOptions options_);
  void reset() override;
  /// word2vec.c's initialisation: inputs uniform in (-0.5 / D, 0.5 / D), outputs zero.
  void reset_parameters();
  /// ids (any shape) int64 -> their word vectors (..., D).
  torch::Tensor forward(const torch::Tensor& ids);
  void pretty_print(std::ostream& stream) const override;

  Word2VecOptions options;
  torch::Tensor input_embeddings;
  torch::Tensor output_embeddings;
};
TORCH_MODULE(Word2Vec);

/// A corpus as word ids: sentence i is ids[offsets[i] .. offsets[i + 1]). Words outside the
/// vocabulary are left out before (as word2vec.c does), not mapped to an unknown id.
struct Word2VecCorpus {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets = {0};
  int64_t sentences() const { return static_cast<int64_t>(offsets.size()) - 1; }
  /// Appends one sentence.
  void add(const std::vector<int32_t>& sentence) {
    ids.insert(ids.end(), sentence.begin(), sentence.end());
    offsets.push_back(static_cast<int64_t>(ids.size()));
  }
};

struct Word2VecTrainOptions {
  /// Starting learning rate (word2vec.c: 0.025 for skip-gram, 0.05 for CBOW); it decays
  /// linearly with the words processed to min_lr_ratio * lr.
  TORCH_ARG(double, lr) = 0.025;
  TORCH_ARG(double, min_lr_ratio) = 1e-4;
  TORCH_ARG(int64_t, epochs) = 5;
  /// Lock-free worker threads; each takes a contiguous share of the sentences.
  TORCH_ARG(int64_t, threads) = 1;
  /// Subsampling threshold t: a word of frequency f = count / total is kept with probability
  /// (sqrt(f / t) + 1) * t / f; 0 = keep every word.
  TORCH_ARG(double, sample) = 1e-3;
  TORCH_ARG(uint64_t, seed) = 1;
  /// Seconds between two progress reports.
  TORCH_ARG(double, progress_every) = 1.0;
};

/// Where training is, for progress output.
struct Word2VecProgress {
  int64_t words_done = 0;   // corpus words read so far (subsampled ones included), all epochs
  int64_t words_total = 0;  // epochs * corpus words
  double lr = 0;
  double seconds = 0;
  double words_per_second = 0;             // all threads together
  double words_per_second_per_thread = 0;  // what word2vec.c prints as Words/thread/sec
};

/// Trains `model` in place (its parameters must be float32 on the CPU) over `corpus` for
/// options.epochs() passes. `counts[w]` is the corpus frequency of word w; it sets the
/// subsampling, the noise distribution and the Huffman tree. `progress` (optional) is called
/// from the calling thread every progress_every seconds and once at the end. With threads 1 the
/// result is a function of the seed; with more it depends on the scheduling (Hogwild).
Word2VecProgress train_word2vec(Word2Vec& model, const Word2VecCorpus& corpus,
                                const std::vector<int64_t>& counts,
                                const Word2VecTrainOptions& options,
                                const std::function<void(const Word2VecProgress&)>& progress = {});

// ============================================================================== FastText

struct FastTextOptions {
  FastTextOptions(int64_t vocab_size, int64_t num_classes)
      : vocab_size_(vocab_size), num_classes_(num_classes) {}
  /// Words; the embedding table holds vocab_size + buckets rows (words, then n-gram buckets).
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim) = 100;
  /// Longest word n-gram (1 = words only, fastText's -wordNgrams).
  TORCH_ARG(int64_t, word_ngrams) = 2;
  /// Hash buckets shared by all n-grams (fastText's -bucket).
  TORCH_ARG(int64_t, buckets) = 200000;
};

/// Averaged word + n-gram embeddings -> linear. Parameters: `embedding.weight` (V + buckets, D)
/// and `fc.weight`/`fc.bias` (C, D)/(C), initialised as fastText does (uniform(-1/D, 1/D) and
/// zeros).
class FastTextImpl : public torch::nn::Cloneable<FastTextImpl> {
 public:
  explicit FastTextImpl(FastTextOptions options_);
  void reset() override;
  void reset_parameters();
  /// ids (N) int64, the ids of all documents one after the other (fasttext_input_ids);
  /// offsets (B) int64, where each document starts -> logits (B, C). An empty document
  /// (offsets equal) gets the zero vector, hence fc.bias.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& offsets);
  void pretty_print(std::ostream& stream) const override;

  FastTextOptions options;
  torch::nn::EmbeddingBag embedding{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(FastText);

/// A document's input ids: its word ids, then for n = 2..word_ngrams the bucket of each n-gram
/// of consecutive words, vocab_size + hash % buckets (fastText's hash of word ids:
/// h = h * 116049371 + id). Words outside the vocabulary (negative ids) are left out and break
/// n-grams.
std::vector<int64_t> fasttext_input_ids(const std::vector<int64_t>& word_ids, int64_t vocab_size,
                                        int64_t word_ngrams, int64_t buckets);

// ============================================================================== NNLM

struct NNLMOptions {
  /* implicit */ NNLMOptions(int64_t vocab_size = 0) : vocab_size_(vocab_size) {}
  TORCH_ARG(int64_t, vocab_size);
  /// n - 1: the words each prediction sees.
  TORCH_ARG(int64_t, context_size) = 4;
  TORCH_ARG(int64_t, embedding_dim) = 64;
  TORCH_ARG(int64_t, hidden_size) = 128;
  /// Bengio's W: a linear map from the concatenated embeddings straight to the output.
  TORCH_ARG(bool, direct_connections) = false;
  TORCH_ARG(double, dropout) = 0.0;
  /// Id that fills the context before the first word (history undefined).
  TORCH_ARG(int64_t, pad_id) = 0;
};

/// Parameters: `embedding.weight` (V, E) (Bengio's C), `hidden` (H, (n-1)E and d), `output`
/// (U and b: (V, H), (V)), and with direct connections `direct.weight` (V, (n-1)E), no bias.
class NNLMImpl : public torch::nn::Cloneable<NNLMImpl> {
 public:
  explicit NNLMImpl(NNLMOptions options_);
  void reset() override;
  void reset_parameters();
  /// ids (B, T) int64; history (B, n-1) int64, the words before ids[:, 0] (undefined = pad)
  /// -> logits (B, T, V) of each next word, and h_n = the last n-1 words (B, n-1) to pass as
  /// the history of the next window (the language_model task carries it like an RNN state).
  LMOutput forward(const torch::Tensor& ids, const torch::Tensor& history = {});
  void pretty_print(std::ostream& stream) const override;

  NNLMOptions options;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::Linear hidden{nullptr};
  torch::nn::Linear output{nullptr};
  torch::nn::Linear direct{nullptr};
  torch::nn::Dropout dropout{nullptr};

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(NNLM);

namespace detail {

/// word2vec.c's sigmoid table: 1000 entries over [-6, 6].
constexpr int kExpTableSize = 1000;
constexpr float kMaxExp = 6.0f;
/// sigmoid(x) from the table, for -6 < x < 6.
float table_sigmoid(float x);

/// The Huffman tree of word2vec's hierarchical softmax: for word w, points[w][d] is the inner
/// node (0 .. V - 2, root V - 2) at depth d of its path and codes[w][d] the branch (0 or 1)
/// taken there. Frequent words get short codes.
struct HuffmanTree {
  std::vector<std::vector<int32_t>> points;
  std::vector<std::vector<uint8_t>> codes;
};
HuffmanTree build_huffman_tree(const std::vector<int64_t>& counts);

/// The noise distribution of negative sampling, P(w) = counts[w]^power / sum, as Walker's alias
/// table: slot i keeps word i with probability keep[i] and gives word alias[i] otherwise, so a
/// draw reads two entries of 8 bytes per word. word2vec.c and fastText fill a table of 1e8 /
/// 1e7 word ids in proportion instead; its random reads miss the cache on every negative and
/// cost more than the dot products.
struct NoiseSampler {
  std::vector<float> keep;
  std::vector<int32_t> alias;
  /// A word from two independent uniform 32-bit numbers (slot, coin).
  int32_t sample(uint32_t slot_bits, uint32_t coin_bits) const {
    const auto i = static_cast<int32_t>((static_cast<uint64_t>(slot_bits) * keep.size()) >> 32);
    return static_cast<float>(coin_bits >> 8) * (1.0f / 16777216.0f) < keep[i] ? i : alias[i];
  }
  /// The exact probability of each word under the table (what `sample` draws).
  std::vector<double> probabilities() const;
};
NoiseSampler build_noise_sampler(const std::vector<int64_t>& counts, double power = 0.75);

/// Probability that subsampling keeps a word seen `count` times among `total` words.
double keep_probability(int64_t count, int64_t total, double sample);

}  // namespace detail

}  // namespace nlpkit
