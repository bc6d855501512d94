// Recurrent language model: embedding -> dropout -> RNN/LSTM/GRU stack -> dropout -> softmax
// layer over the vocabulary, optionally with tied input/output embeddings (Press & Wolf 2017;
// Inan et al. 2017). The layout follows PyTorch's word_language_model example: `embedding`,
// `rnn` (PyTorch's parameter names: rnn.weight_ih_l0, ...), `decoder`.
#pragma once

#include <torch/torch.h>

#include <string>

#include "modules/recurrent.h"
#include "modules/regularization.h"

namespace nlpkit {

struct RecurrentLMOptions {
  /* implicit */ RecurrentLMOptions(int64_t vocab_size = 0) : vocab_size_(vocab_size) {}
  TORCH_ARG(int64_t, vocab_size);
  /// rnn, lstm or gru.
  TORCH_ARG(std::string, cell) = "lstm";
  TORCH_ARG(int64_t, embedding_dim) = 128;
  TORCH_ARG(int64_t, hidden_size) = 256;
  TORCH_ARG(int64_t, num_layers) = 2;
  TORCH_ARG(double, dropout) = 0.2;
  /// Output layer shares the embedding matrix (needs embedding_dim == hidden_size). The model
  /// then has `output_bias` instead of `decoder.weight`/`decoder.bias`.
  TORCH_ARG(bool, tie_embeddings) = false;
  /// rnn: tanh or relu.
  TORCH_ARG(std::string, nonlinearity) = "tanh";
  /// fused (at::lstm & co.) or cells (the explicit loop over cells).
  TORCH_ARG(std::string, implementation) = "fused";
  /// lstm: initial forget-gate bias.
  TORCH_ARG(double, forget_bias) = 0.0;
  TORCH_ARG(bool, orthogonal_init) = false;
};

/// Logits for every position and the final recurrent state (to carry into the next batch).
struct LMOutput {
  torch::Tensor logits;  // (B, T, V)
  torch::Tensor h_n;     // (L, B, H)
  torch::Tensor c_n;     // (L, B, H), LSTM only
};

class RecurrentLanguageModelImpl : public torch::nn::Cloneable<RecurrentLanguageModelImpl> {
 public:
  explicit RecurrentLanguageModelImpl(RecurrentLMOptions options_);
  void reset() override;
  void reset_parameters();
  /// ids (B, T) int64; h0/c0 (L, B, H) or undefined (zeros).
  LMOutput forward(const torch::Tensor& ids, const torch::Tensor& h0 = {},
                   const torch::Tensor& c0 = {});
  void pretty_print(std::ostream& stream) const override;

  RecurrentLMOptions options;
  torch::nn::Embedding embedding{nullptr};
  Dropout dropout{nullptr};
  RNN rnn_plain{nullptr};
  LSTM rnn_lstm{nullptr};
  GRU rnn_gru{nullptr};
  torch::nn::Linear decoder{nullptr};
  torch::Tensor output_bias;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(torch::Tensor())})
};
TORCH_MODULE(RecurrentLanguageModel);

}  // namespace nlpkit
