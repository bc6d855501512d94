// TextCNN-BiLSTM-Attention hierarchical document classifier: the "Word2Vec + TextCNN + BiLSTM +
// Attention" model of the Tianchi news-classification tutorial (Datawhale, "零基础入门NLP -
// 新闻文本分类"), built from TextCNN (Kim 2014) sentence encoders and HAN-style attention pooling
// (Yang et al. 2016) over a BiLSTM.
//
//   ids (B, D, S) -> word embedding (fixed word2vec + trainable, summed) -> dropout
//     -> WordCNNEncoder: per sentence, Conv2d over (k words x full embedding) for each k, ReLU,
//        max over positions, concatenated                                   (B*D, K*cnn_hidden)
//     -> SentEncoder: BiLSTM over the sentences of each document            (B, D, 2*hidden)
//     -> SentAttention: key = Linear(h), score = key . query, softmax over sentences,
//        document = sum of attention * h                                     (B, 2*hidden)
//     -> dropout -> fc                                                       (B, num_classes)
//
// Where this differs from the tutorial's PyTorch code, on purpose, so that padding never changes
// a result (appending padded sentences or words leaves the logits unchanged, as tests check):
// - WordCNNEncoder: the tutorial max-pools over every window, padding included. Here a window
//   counts only when it starts on a real word; words past the end of the sentence are zero
//   vectors (the sentence is zero-padded by max(kernel_sizes) - 1 inside the encoder, so a
//   sentence shorter than a kernel still has a window). Because ReLU outputs are >= 0, zeroing
//   the other windows equals masking them with -inf and mapping all-padding rows to 0.
// - SentEncoder: the tutorial runs the LSTM over the padded sentences and multiplies the outputs
//   by the sentence mask, so its backward direction reads the padding first. Here the sentences
//   are packed (torch::nn::utils::rnn::pack_padded_sequence, available in LibTorch 1.13), so each
//   direction sees only real sentences; outputs at padded sentences are still zeroed by the mask.
// - SentAttention: the tutorial sums the keys; here the value is the BiLSTM output itself, as in
//   HAN. Dropout sits after the embedding, between LSTM layers and before fc.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>
#include <vector>

#include "modules/regularization.h"

namespace nlpkit {

// ---------------------------------------------------------------------------------------------
// WordCNNEncoder: words of one sentence -> one sentence vector

/// Options for `WordCNNEncoder`.
struct WordCNNEncoderOptions {
  WordCNNEncoderOptions(int64_t embedding_dim, int64_t cnn_hidden_size,
                        std::vector<int64_t> kernel_sizes)
      : embedding_dim_(embedding_dim),
        cnn_hidden_size_(cnn_hidden_size),
        kernel_sizes_(std::move(kernel_sizes)) {}
  /// E, the width of every convolution kernel.
  TORCH_ARG(int64_t, embedding_dim);
  /// Output channels of each convolution.
  TORCH_ARG(int64_t, cnn_hidden_size);
  /// Kernel heights in words, one convolution each.
  TORCH_ARG(std::vector<int64_t>, kernel_sizes);
};

/// TextCNN sentence encoder: for each k, Conv2d(1, cnn_hidden_size, {k, embedding_dim}), ReLU
/// and a max over the windows that start on a real word; the results are concatenated.
/// Submodules: convs.0, convs.1, ... in kernel_sizes order.
class WordCNNEncoderImpl : public torch::nn::Cloneable<WordCNNEncoderImpl> {
 public:
  explicit WordCNNEncoderImpl(WordCNNEncoderOptions options_);

  void reset() override;
  void reset_parameters();

  /// embedded: (N, S, E) word vectors; word_mask: (N, S) bool, true on real words.
  /// Returns (N, len(kernel_sizes) * cnn_hidden_size); a sentence without words maps to zeros.
  torch::Tensor forward(const torch::Tensor& embedded, const torch::Tensor& word_mask);

  /// Prints `WordCNNEncoder(embedding_dim=100, cnn_hidden_size=100, kernel_sizes=[2, 3, 4])`.
  void pretty_print(std::ostream& stream) const override;

  WordCNNEncoderOptions options;
  torch::nn::ModuleList convs{nullptr};
};

TORCH_MODULE(WordCNNEncoder);

// ---------------------------------------------------------------------------------------------
// SentEncoder: sentence vectors of one document -> contextual sentence vectors

/// Options for `SentEncoder`.
struct SentEncoderOptions {
  SentEncoderOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  /// Size of each sentence vector.
  TORCH_ARG(int64_t, input_size);
  /// LSTM hidden size per direction.
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  /// Dropout between LSTM layers (unused with one layer).
  TORCH_ARG(double, dropout) = 0.0;
};

/// Multi-layer bidirectional LSTM (submodule `lstm`, PyTorch parameter names) over the real
/// sentences of each document, packed so that padding is never read.
class SentEncoderImpl : public torch::nn::Cloneable<SentEncoderImpl> {
 public:
  explicit SentEncoderImpl(SentEncoderOptions options_);

  void reset() override;
  void reset_parameters();

  /// sentences: (B, D, input_size); sentence_mask: (B, D) bool with the real sentences first.
  /// Returns (B, D, 2 * hidden_size), zero at padded sentences.
  torch::Tensor forward(const torch::Tensor& sentences, const torch::Tensor& sentence_mask);

  /// Prints `SentEncoder(input_size=300, hidden_size=128, num_layers=2, dropout=0.15)`.
  void pretty_print(std::ostream& stream) const override;

  SentEncoderOptions options;
  torch::nn::LSTM lstm{nullptr};
};

TORCH_MODULE(SentEncoder);

// ---------------------------------------------------------------------------------------------
// SentAttention: contextual sentence vectors -> one document vector

/// Options for `SentAttention`.
struct SentAttentionOptions {
  /* implicit */ SentAttentionOptions(int64_t hidden_size) : hidden_size_(hidden_size) {}
  /// Size of each input vector (2 * the LSTM hidden size).
  TORCH_ARG(int64_t, hidden_size);
};

/// Output of `SentAttention`.
struct SentAttentionOutput {
  /// (B, hidden_size) attention-weighted sum of the inputs.
  torch::Tensor document;
  /// (B, D) weights: sum to 1 over real sentences, 0 on padding (all 0 for an empty document).
  torch::Tensor attention;
};

/// Attention pooling with a learned query: key = Linear(h) (submodule `key`), score = key . query
/// (parameter `query`), softmax over the real sentences, document = sum of weights * h.
class SentAttentionImpl : public torch::nn::Cloneable<SentAttentionImpl> {
 public:
  explicit SentAttentionImpl(SentAttentionOptions options_);

  void reset() override;
  /// As the tutorial: key.weight and query ~ N(0, 0.05), key.bias = 0.
  void reset_parameters();

  /// hidden: (B, D, hidden_size); sentence_mask: (B, D) bool.
  SentAttentionOutput forward(const torch::Tensor& hidden, const torch::Tensor& sentence_mask);

  /// Prints `SentAttention(hidden_size=256)`.
  void pretty_print(std::ostream& stream) const override;

  SentAttentionOptions options;
  torch::nn::Linear key{nullptr};
  /// (hidden_size)
  torch::Tensor query;
};

TORCH_MODULE(SentAttention);

// ---------------------------------------------------------------------------------------------
// TextClassifier

/// Options for `TextClassifier`; the names are also the YAML keys of model.type
/// text_cnn_bilstm_attention.
///
/// Example:
/// ```
/// nlpkit::TextClassifier model(nlpkit::TextClassifierOptions(/*vocab_size=*/5000,
///                                                            /*num_classes=*/14)
///                                  .hidden_size(64)
///                                  .use_pretrained(true));
/// model->set_pretrained(word2vec_vectors);  // (5000, 100)
/// ```
struct TextClassifierOptions {
  TextClassifierOptions(int64_t vocab_size, int64_t num_classes)
      : vocab_size_(vocab_size), num_classes_(num_classes) {}
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, num_classes);
  /// Word vector size E (the pretrained vectors must have it too).
  TORCH_ARG(int64_t, embedding_dim) = 100;
  /// Convolution channels per kernel size.
  TORCH_ARG(int64_t, cnn_hidden_size) = 100;
  /// Convolution heights in words.
  TORCH_ARG(std::vector<int64_t>, kernel_sizes) = std::vector<int64_t>{2, 3, 4};
  /// Sentence BiLSTM hidden size per direction.
  TORCH_ARG(int64_t, hidden_size) = 128;
  /// Sentence BiLSTM layers.
  TORCH_ARG(int64_t, num_layers) = 2;
  /// Dropout after the embedding, between LSTM layers and before fc.
  TORCH_ARG(double, dropout) = 0.15;
  /// Padding token id: its trainable embedding row is zero and receives no gradient.
  TORCH_ARG(int64_t, pad_id) = 0;
  /// Add fixed pretrained vectors (buffer `pretrained_embedding`, see set_pretrained) to the
  /// trainable embedding.
  TORCH_ARG(bool, use_pretrained) = false;
};

/// Output of `TextClassifier`.
struct TextClassifierOutput {
  /// (B, num_classes) unnormalized class scores.
  torch::Tensor logits;
  /// (B, D) sentence attention weights, 0 on padded sentences.
  torch::Tensor attention;
};

/// Hierarchical TextCNN-BiLSTM-Attention document classifier (see the top of this file).
/// State dict: word_embedding.weight, word_encoder.convs.<i>.{weight,bias},
/// sent_encoder.lstm.{weight,bias}_{ih,hh}_l<n>[_reverse], sent_attention.{query,key.weight,
/// key.bias}, fc.{weight,bias}, and the buffer pretrained_embedding when use_pretrained.
class TextClassifierImpl : public torch::nn::Cloneable<TextClassifierImpl> {
 public:
  explicit TextClassifierImpl(TextClassifierOptions options_);

  void reset() override;
  void reset_parameters();

  /// Copies word vectors (vocab_size, embedding_dim) into the fixed `pretrained_embedding`
  /// buffer; requires use_pretrained.
  void set_pretrained(const torch::Tensor& vectors);

  /// ids: (B, D, S) int64 token ids in [0, vocab_size); word_mask: (B, D, S) bool, true on real
  /// words; sentence_mask: (B, D) bool, true on real sentences, which come first in each
  /// document. Words of padded sentences must be masked out. Documents without sentences are
  /// allowed (their logits are fc's bias).
  TextClassifierOutput forward(const torch::Tensor& ids, const torch::Tensor& word_mask,
                               const torch::Tensor& sentence_mask);

  /// Prints `TextClassifier(vocab_size=..., num_classes=..., embedding_dim=100, ...)`.
  void pretty_print(std::ostream& stream) const override;

  TextClassifierOptions options;
  torch::nn::Embedding word_embedding{nullptr};
  /// (vocab_size, embedding_dim) fixed vectors; undefined unless use_pretrained.
  torch::Tensor pretrained_embedding;
  Dropout dropout{nullptr};
  WordCNNEncoder word_encoder{nullptr};
  SentEncoder sent_encoder{nullptr};
  SentAttention sent_attention{nullptr};
  torch::nn::Linear fc{nullptr};
  /// Applied to the word vectors (B, D, S, E) before the dropout when set: the site of SiFT's
  /// perturbation and of embedding-level Mixup (trainers/regularizers.h). Not part of the state.
  TensorHook embedding_hook;
  /// Applied to the document vectors (B, 2 * hidden_size) before the dropout and fc when set:
  /// the site of sentence-level Mixup. Not part of the state.
  TensorHook document_hook;
};

TORCH_MODULE(TextClassifier);

}  // namespace nlpkit
