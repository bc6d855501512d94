#include "modules/text_classifier.h"

#include <algorithm>
#include <limits>
#include <string>

namespace nlpkit {

namespace {

void print_list(std::ostream& stream, const std::vector<int64_t>& values) {
  stream << "[";
  for (size_t i = 0; i < values.size(); ++i) stream << (i ? ", " : "") << values[i];
  stream << "]";
}

const char* bool_name(bool value) { return value ? "true" : "false"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// WordCNNEncoder

WordCNNEncoderImpl::WordCNNEncoderImpl(WordCNNEncoderOptions options_)
    : options(std::move(options_)) {
  reset();
}

void WordCNNEncoderImpl::reset() {
  TORCH_CHECK(options.embedding_dim() > 0, "WordCNNEncoder: embedding_dim must be positive, got ",
              options.embedding_dim());
  TORCH_CHECK(options.cnn_hidden_size() > 0,
              "WordCNNEncoder: cnn_hidden_size must be positive, got ", options.cnn_hidden_size());
  TORCH_CHECK(!options.kernel_sizes().empty(), "WordCNNEncoder: kernel_sizes must not be empty");
  convs = torch::nn::ModuleList();
  for (int64_t k : options.kernel_sizes()) {
    TORCH_CHECK(k > 0, "WordCNNEncoder: kernel_sizes must be positive, got ", k);
    convs->push_back(torch::nn::Conv2d(
        torch::nn::Conv2dOptions(1, options.cnn_hidden_size(), {k, options.embedding_dim()})));
  }
  register_module("convs", convs);
}

void WordCNNEncoderImpl::reset_parameters() {
  for (const auto& conv : *convs) conv->as<torch::nn::Conv2d>()->reset_parameters();
}

torch::Tensor WordCNNEncoderImpl::forward(const torch::Tensor& embedded,
                                          const torch::Tensor& word_mask) {
  TORCH_CHECK(embedded.dim() == 3 && embedded.size(2) == options.embedding_dim(),
              "WordCNNEncoder: expected embedded words of shape (N, S, embedding_dim=",
              options.embedding_dim(), "), got ", embedded.sizes());
  TORCH_CHECK(
      word_mask.scalar_type() == torch::kBool && word_mask.sizes() == embedded.sizes().slice(0, 2),
      "WordCNNEncoder: expected a bool word_mask of shape ", embedded.sizes().slice(0, 2), ", got ",
      word_mask.scalar_type(), " of shape ", word_mask.sizes());
  const int64_t s = embedded.size(1);
  const int64_t max_k =
      *std::max_element(options.kernel_sizes().begin(), options.kernel_sizes().end());
  // Padding words are zero vectors, and max_k - 1 of them follow every sentence so that each
  // position starts a full window.
  torch::Tensor x = embedded.masked_fill(~word_mask.unsqueeze(-1), 0);  // (N, S, E)
  x = torch::constant_pad_nd(x, {0, 0, 0, max_k - 1}).unsqueeze(1);     // (N, 1, S+max_k-1, E)
  const torch::Tensor window_mask = word_mask.unsqueeze(1).to(x.scalar_type());  // (N, 1, S)
  std::vector<torch::Tensor> pooled;
  for (const auto& module : *convs) {
    torch::Tensor h =
        torch::relu(module->as<torch::nn::Conv2d>()->forward(x));  // (N, C, S+max_k-k, 1)
    h = h.squeeze(3).narrow(2, 0, s);                              // (N, C, S)
    // Windows starting on padding drop out; ReLU >= 0 makes 0 as good as -inf for the max.
    pooled.push_back(std::get<0>((h * window_mask).max(2)));  // (N, C)
  }
  return torch::cat(pooled, 1);  // (N, K*C)
}

void WordCNNEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "WordCNNEncoder(embedding_dim=" << options.embedding_dim()
         << ", cnn_hidden_size=" << options.cnn_hidden_size() << ", kernel_sizes=";
  print_list(stream, options.kernel_sizes());
  stream << ")";
}

// ---------------------------------------------------------------------------------------------
// SentEncoder

SentEncoderImpl::SentEncoderImpl(SentEncoderOptions options_) : options(std::move(options_)) {
  reset();
}

void SentEncoderImpl::reset() {
  TORCH_CHECK(options.input_size() > 0, "SentEncoder: input_size must be positive, got ",
              options.input_size());
  TORCH_CHECK(options.hidden_size() > 0, "SentEncoder: hidden_size must be positive, got ",
              options.hidden_size());
  TORCH_CHECK(options.num_layers() > 0, "SentEncoder: num_layers must be positive, got ",
              options.num_layers());
  TORCH_CHECK(options.dropout() >= 0 && options.dropout() < 1,
              "SentEncoder: dropout must be in [0, 1), got ", options.dropout());
  // LibTorch warns about dropout on a single layer, where it would do nothing anyway.
  const double between_layers = options.num_layers() > 1 ? options.dropout() : 0.0;
  lstm = register_module(
      "lstm", torch::nn::LSTM(torch::nn::LSTMOptions(options.input_size(), options.hidden_size())
                                  .num_layers(options.num_layers())
                                  .dropout(between_layers)
                                  .batch_first(true)
                                  .bidirectional(true)));
}

void SentEncoderImpl::reset_parameters() { lstm->reset_parameters(); }

torch::Tensor SentEncoderImpl::forward(const torch::Tensor& sentences,
                                       const torch::Tensor& sentence_mask) {
  TORCH_CHECK(sentences.dim() == 3 && sentences.size(2) == options.input_size(),
              "SentEncoder: expected sentences of shape (B, D, input_size=", options.input_size(),
              "), got ", sentences.sizes());
  TORCH_CHECK(sentence_mask.scalar_type() == torch::kBool &&
                  sentence_mask.sizes() == sentences.sizes().slice(0, 2),
              "SentEncoder: expected a bool sentence_mask of shape ", sentences.sizes().slice(0, 2),
              ", got ", sentence_mask.scalar_type(), " of shape ", sentence_mask.sizes());
  const int64_t d = sentences.size(1);
  const torch::Tensor lengths = sentence_mask.sum(1).to(torch::kCPU, torch::kLong);  // (B)
  const torch::Tensor positions = torch::arange(d, sentence_mask.options().dtype(torch::kLong));
  TORCH_CHECK(torch::equal(sentence_mask,
                           positions.unsqueeze(0) < lengths.to(positions.device()).unsqueeze(1)),
              "SentEncoder: sentence_mask must mark the real sentences first in each document "
              "(padding only at the end)");
  // Packing needs lengths >= 1; an empty document runs over its first (padding) sentence, and
  // the mask below zeroes that output.
  namespace rnn = torch::nn::utils::rnn;
  const rnn::PackedSequence packed = rnn::pack_padded_sequence(
      sentences, lengths.clamp_min(1), /*batch_first=*/true, /*enforce_sorted=*/false);
  const rnn::PackedSequence output = std::get<0>(lstm->forward_with_packed_input(packed));
  torch::Tensor hidden = std::get<0>(rnn::pad_packed_sequence(
      output, /*batch_first=*/true, /*padding_value=*/0.0, d));  // (B, D, 2H)
  return hidden * sentence_mask.unsqueeze(2).to(hidden.scalar_type());
}

void SentEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "SentEncoder(input_size=" << options.input_size()
         << ", hidden_size=" << options.hidden_size() << ", num_layers=" << options.num_layers()
         << ", dropout=" << options.dropout() << ")";
}

// ---------------------------------------------------------------------------------------------
// SentAttention

SentAttentionImpl::SentAttentionImpl(SentAttentionOptions options_) : options(std::move(options_)) {
  reset();
}

void SentAttentionImpl::reset() {
  const int64_t h = options.hidden_size();
  TORCH_CHECK(h > 0, "SentAttention: hidden_size must be positive, got ", h);
  key = register_module("key", torch::nn::Linear(h, h));
  query = register_parameter("query", torch::empty({h}));
  reset_parameters();
}

void SentAttentionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  key->weight.normal_(0.0, 0.05);
  key->bias.zero_();
  query.normal_(0.0, 0.05);
}

SentAttentionOutput SentAttentionImpl::forward(const torch::Tensor& hidden,
                                               const torch::Tensor& sentence_mask) {
  TORCH_CHECK(hidden.dim() == 3 && hidden.size(2) == options.hidden_size(),
              "SentAttention: expected hidden of shape (B, D, hidden_size=", options.hidden_size(),
              "), got ", hidden.sizes());
  TORCH_CHECK(sentence_mask.scalar_type() == torch::kBool &&
                  sentence_mask.sizes() == hidden.sizes().slice(0, 2),
              "SentAttention: expected a bool sentence_mask of shape ", hidden.sizes().slice(0, 2),
              ", got ", sentence_mask.scalar_type(), " of shape ", sentence_mask.sizes());
  const torch::Tensor padding = ~sentence_mask;  // (B, D)
  // An empty document would softmax over -inf only (NaN); give it uniform scores instead and
  // zero its weights below.
  const torch::Tensor empty = padding.all(1, /*keepdim=*/true);  // (B, 1)
  torch::Tensor scores = torch::matmul(key(hidden), query);      // (B, D)
  scores = scores.masked_fill(padding & ~empty, -std::numeric_limits<double>::infinity());
  scores = scores.masked_fill(empty, 0);
  torch::Tensor attention = torch::softmax(scores, 1).masked_fill(padding, 0);     // (B, D)
  torch::Tensor document = torch::bmm(attention.unsqueeze(1), hidden).squeeze(1);  // (B, H)
  return {document, attention};
}

void SentAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "SentAttention(hidden_size=" << options.hidden_size() << ")";
}

// ---------------------------------------------------------------------------------------------
// TextClassifier

TextClassifierImpl::TextClassifierImpl(TextClassifierOptions options_)
    : options(std::move(options_)) {
  reset();
}

void TextClassifierImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.vocab_size() > 0, "TextClassifier: vocab_size must be positive, got ",
              o.vocab_size());
  TORCH_CHECK(o.num_classes() > 0, "TextClassifier: num_classes must be positive, got ",
              o.num_classes());
  TORCH_CHECK(o.embedding_dim() > 0, "TextClassifier: embedding_dim must be positive, got ",
              o.embedding_dim());
  TORCH_CHECK(o.cnn_hidden_size() > 0, "TextClassifier: cnn_hidden_size must be positive, got ",
              o.cnn_hidden_size());
  TORCH_CHECK(!o.kernel_sizes().empty(), "TextClassifier: kernel_sizes must not be empty");
  for (int64_t k : o.kernel_sizes()) {
    TORCH_CHECK(k > 0, "TextClassifier: kernel_sizes must be positive, got ", k);
  }
  TORCH_CHECK(o.hidden_size() > 0, "TextClassifier: hidden_size must be positive, got ",
              o.hidden_size());
  TORCH_CHECK(o.num_layers() > 0, "TextClassifier: num_layers must be positive, got ",
              o.num_layers());
  TORCH_CHECK(o.dropout() >= 0 && o.dropout() < 1,
              "TextClassifier: dropout must be in [0, 1), got ", o.dropout());
  TORCH_CHECK(o.pad_id() >= 0 && o.pad_id() < o.vocab_size(), "TextClassifier: pad_id (",
              o.pad_id(), ") must be in [0, vocab_size=", o.vocab_size(), ")");

  word_embedding = register_module(
      "word_embedding",
      torch::nn::Embedding(
          torch::nn::EmbeddingOptions(o.vocab_size(), o.embedding_dim()).padding_idx(o.pad_id())));
  if (o.use_pretrained()) {
    pretrained_embedding =
        register_buffer("pretrained_embedding", torch::zeros({o.vocab_size(), o.embedding_dim()}));
  } else {
    pretrained_embedding = torch::Tensor();
  }
  dropout = register_module("dropout", Dropout(o.dropout()));
  word_encoder = register_module(
      "word_encoder", WordCNNEncoder(WordCNNEncoderOptions(o.embedding_dim(), o.cnn_hidden_size(),
                                                           o.kernel_sizes())));
  const int64_t sentence_size = o.cnn_hidden_size() * static_cast<int64_t>(o.kernel_sizes().size());
  sent_encoder =
      register_module("sent_encoder", SentEncoder(SentEncoderOptions(sentence_size, o.hidden_size())
                                                      .num_layers(o.num_layers())
                                                      .dropout(o.dropout())));
  sent_attention = register_module("sent_attention", SentAttention(2 * o.hidden_size()));
  fc = register_module("fc", torch::nn::Linear(2 * o.hidden_size(), o.num_classes()));
}

void TextClassifierImpl::reset_parameters() {
  word_embedding->reset_parameters();
  word_encoder->reset_parameters();
  sent_encoder->reset_parameters();
  sent_attention->reset_parameters();
  fc->reset_parameters();
}

void TextClassifierImpl::set_pretrained(const torch::Tensor& vectors) {
  TORCH_CHECK(options.use_pretrained(),
              "TextClassifier::set_pretrained: the model was built with use_pretrained=false");
  TORCH_CHECK(vectors.dim() == 2 && vectors.size(0) == options.vocab_size() &&
                  vectors.size(1) == options.embedding_dim(),
              "TextClassifier::set_pretrained: expected vectors of shape (vocab_size=",
              options.vocab_size(), ", embedding_dim=", options.embedding_dim(), "), got ",
              vectors.sizes());
  torch::NoGradGuard no_grad;
  pretrained_embedding.copy_(vectors);
}

TextClassifierOutput TextClassifierImpl::forward(const torch::Tensor& ids,
                                                 const torch::Tensor& word_mask,
                                                 const torch::Tensor& sentence_mask) {
  TORCH_CHECK(ids.dim() == 3, "TextClassifier: expected ids of shape (B, D, S), got ", ids.sizes());
  TORCH_CHECK(ids.scalar_type() == torch::kLong, "TextClassifier: expected int64 ids, got ",
              ids.scalar_type());
  const int64_t b = ids.size(0), d = ids.size(1), s = ids.size(2);
  TORCH_CHECK(b > 0 && d > 0 && s > 0, "TextClassifier: ids must not have an empty dimension, got ",
              ids.sizes());
  TORCH_CHECK(word_mask.scalar_type() == torch::kBool && word_mask.sizes() == ids.sizes(),
              "TextClassifier: expected a bool word_mask of shape ", ids.sizes(), " like ids, got ",
              word_mask.scalar_type(), " of shape ", word_mask.sizes());
  TORCH_CHECK(
      sentence_mask.scalar_type() == torch::kBool &&
          sentence_mask.sizes() == ids.sizes().slice(0, 2),
      "TextClassifier: expected a bool sentence_mask of shape (B, D) = ", ids.sizes().slice(0, 2),
      ", got ", sentence_mask.scalar_type(), " of shape ", sentence_mask.sizes());
  const int64_t min_id = ids.min().item<int64_t>();
  const int64_t max_id = ids.max().item<int64_t>();
  TORCH_CHECK(min_id >= 0 && max_id < options.vocab_size(),
              "TextClassifier: token ids must be in [0, vocab_size=", options.vocab_size(),
              "), got ids in [", min_id, ", ", max_id, "]");
  TORCH_CHECK(!(word_mask.any(2) & ~sentence_mask).any().item<bool>(),
              "TextClassifier: word_mask marks words in sentences that sentence_mask marks as "
              "padding");

  torch::Tensor words = word_embedding(ids);  // (B, D, S, E)
  if (options.use_pretrained()) words = words + torch::embedding(pretrained_embedding, ids);
  if (embedding_hook) words = embedding_hook(words);
  words = dropout(words);
  const int64_t e = options.embedding_dim();
  // Only real sentences go through the CNN: a padded sentence (no words) encodes to zeros and
  // the packed BiLSTM never reads it, so skipping it changes no value, and saves the CNN's
  // share of the step in proportion to the padding (about half of a typical batch's rows).
  // Dropout above still draws over the whole padded batch, so a seed gives the same masks.
  const torch::Tensor real = sentence_mask.reshape({b * d}).nonzero().squeeze(1);  // (N)
  torch::Tensor sentences;
  if (real.size(0) == b * d) {
    sentences = word_encoder(words.reshape({b * d, s, e}), word_mask.reshape({b * d, s}));
  } else {
    torch::Tensor encoded =
        word_encoder(words.reshape({b * d, s, e}).index_select(0, real),
                     word_mask.reshape({b * d, s}).index_select(0, real));  // (N, K*C)
    sentences = torch::zeros({b * d, encoded.size(1)}, encoded.options())
                    .index_copy(0, real, encoded);  // (B*D, K*C)
  }
  sentences = sentences.view({b, d, -1});                              // (B, D, K*C)
  torch::Tensor hidden = sent_encoder(sentences, sentence_mask);       // (B, D, 2H)
  SentAttentionOutput pooled = sent_attention(hidden, sentence_mask);  // (B, 2H)
  torch::Tensor document = pooled.document;                            // (B, 2H)
  if (document_hook) document = document_hook(document);
  torch::Tensor logits = fc(dropout(document));  // (B, C)
  return {logits, pooled.attention};
}

void TextClassifierImpl::pretty_print(std::ostream& stream) const {
  const auto& o = options;
  stream << "TextClassifier(vocab_size=" << o.vocab_size() << ", num_classes=" << o.num_classes()
         << ", embedding_dim=" << o.embedding_dim() << ", cnn_hidden_size=" << o.cnn_hidden_size()
         << ", kernel_sizes=";
  print_list(stream, o.kernel_sizes());
  stream << ", hidden_size=" << o.hidden_size() << ", num_layers=" << o.num_layers()
         << ", dropout=" << o.dropout() << ", pad_id=" << o.pad_id()
         << ", use_pretrained=" << bool_name(o.use_pretrained()) << ")";
}

}  // namespace nlpkit
