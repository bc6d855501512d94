// Recurrent encoder-decoder with attention.
//
//   src (B, S) [reversed within each length when reverse_source, Sutskever et al. 2014]
//     -> embedding -> dropout -> (bi)GRU or (bi)LSTM (modules/recurrent)     outputs (B, S, D*H)
//     -> memory = encoder_proj(outputs) when D*H != H                          (B, S, H)
//   decoder state s_0 = tanh(bridge(final encoder state of each layer, directions concatenated))
//   Bahdanau et al. 2015 (attention before the RNN step):
//     c_t = attn(s_{t-1}, memory);  s_t = RNN([emb(y_{t-1}); c_t], s_{t-1})
//     o_t = tanh(combine([s_t; c_t]));  p(y_t) = softmax(output_proj(dropout(o_t)))
//   Luong et al. 2015 (attention after the RNN step, with input feeding):
//     s_t = RNN([emb(y_{t-1}); o_{t-1}], s_{t-1});  c_t = attn(s_t, memory)
//     o_t = tanh(combine([s_t; c_t]));  p(y_t) = softmax(output_proj(dropout(o_t)))
// Any score function and soft / local / hard attention of modules/attention.h. In training,
// each step feeds the reference token with probability teacher_forcing (Williams & Zipser 1989)
// and the model's own argmax otherwise, one draw per step for the whole batch.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>

#include "modules/attention.h"
#include "modules/recurrent.h"
#include "modules/search.h"

namespace nlpkit {

/// Options for `Seq2Seq`.
struct Seq2SeqOptions {
  Seq2SeqOptions(int64_t src_vocab_size, int64_t tgt_vocab_size)
      : src_vocab_size_(src_vocab_size), tgt_vocab_size_(tgt_vocab_size) {}
  TORCH_ARG(int64_t, src_vocab_size);
  TORCH_ARG(int64_t, tgt_vocab_size);
  TORCH_ARG(int64_t, embedding_dim) = 128;
  /// Decoder width, and encoder width per direction.
  TORCH_ARG(int64_t, hidden_size) = 256;
  /// Layers of the encoder and of the decoder.
  TORCH_ARG(int64_t, num_layers) = 1;
  /// "gru" or "lstm".
  TORCH_ARG(std::string, cell) = "lstm";
  /// Bidirectional encoder.
  TORCH_ARG(bool, bidirectional) = true;
  TORCH_ARG(double, dropout) = 0.1;
  /// "bahdanau" (attention before the RNN step) or "luong" (after, with input feeding).
  TORCH_ARG(std::string, attention_style) = "luong";
  /// A name from attention_score_names().
  TORCH_ARG(std::string, score) = "general";
  /// "soft", "local" or "hard".
  TORCH_ARG(std::string, attention_mode) = "soft";
  /// D of local attention.
  TORCH_ARG(int64_t, window) = 2;
  /// Probability of feeding the reference token in training (1 = always).
  TORCH_ARG(double, teacher_forcing) = 1.0;
  /// Read each source sequence backwards (within its length).
  TORCH_ARG(bool, reverse_source) = false;
  TORCH_ARG(int64_t, pad_id) = 0;
};

/// Output of `Seq2Seq::forward`.
struct Seq2SeqOutput {
  /// (B, T, tgt_vocab_size)
  torch::Tensor logits;
  /// (B, T, S) attention weights of every step, over source positions in their original order.
  torch::Tensor attention;
};

/// Decoder state between steps.
struct Seq2SeqState {
  /// (L, N, H)
  torch::Tensor h;
  /// (L, N, H), LSTM only.
  torch::Tensor c;
  /// (N, H) previous attentional vector o_{t-1} (Luong input feeding).
  torch::Tensor feed;
  /// (N, H) previous step's context c_t; unused by the model, kept for drawing.
  torch::Tensor context;
};

/// Encoder outputs the decoder attends to.
struct Seq2SeqMemory {
  /// (N, S, H)
  torch::Tensor memory;
  /// (N, S) bool, true on real positions.
  torch::Tensor mask;
};

/// Attention Seq2Seq. Parameters: src_embedding, encoder.* (PyTorch GRU/LSTM names),
/// encoder_proj (when D*H != H), bridge, tgt_embedding, decoder.*, attention.*, combine,
/// output_proj.
///
/// Example:
/// ```
/// nlpkit::Seq2Seq model(nlpkit::Seq2SeqOptions(30, 40).hidden_size(64).cell("gru"));
/// auto out = model(src, src_lengths, tgt_in);  // out.logits (B, T, 40)
/// auto decoder = model->step_decoder(src, src_lengths);
/// auto best = nlpkit::greedy_search(*decoder, src.size(0), nlpkit::SearchOptions(1, 2));
/// ```
class Seq2SeqImpl : public torch::nn::Cloneable<Seq2SeqImpl> {
 public:
  explicit Seq2SeqImpl(Seq2SeqOptions options_);
  void reset() override;
  void reset_parameters();
  /// src (B, S) int64; src_lengths (B) int64 in [1, S] on the CPU; tgt_in (B, T) int64 (BOS then
  /// the target shifted right).
  Seq2SeqOutput forward(const torch::Tensor& src, const torch::Tensor& src_lengths,
                        const torch::Tensor& tgt_in);
  /// Encodes and returns the memory and the decoder's initial state.
  std::pair<Seq2SeqMemory, Seq2SeqState> encode(const torch::Tensor& src,
                                                const torch::Tensor& src_lengths);
  /// One decoder step: tokens (N) -> logits (N, V), attention (N, S); updates `state`.
  std::pair<torch::Tensor, torch::Tensor> step(const torch::Tensor& tokens,
                                               const Seq2SeqMemory& memory, Seq2SeqState& state);
  /// A decoder for greedy_search / beam_search over `src`.
  std::unique_ptr<StepDecoder> step_decoder(const torch::Tensor& src,
                                            const torch::Tensor& src_lengths);
  void pretty_print(std::ostream& stream) const override;

  Seq2SeqOptions options;
  torch::nn::Embedding src_embedding{nullptr};
  GRU encoder_gru{nullptr};
  LSTM encoder_lstm{nullptr};
  torch::nn::Linear encoder_proj{nullptr};
  torch::nn::Linear bridge{nullptr};
  torch::nn::Embedding tgt_embedding{nullptr};
  GRU decoder_gru{nullptr};
  LSTM decoder_lstm{nullptr};
  Attention attention{nullptr};
  torch::nn::Linear combine{nullptr};
  torch::nn::Linear output_proj{nullptr};

 private:
  bool lstm_ = true;
  bool luong_ = true;
};

TORCH_MODULE(Seq2Seq);

/// src (B, S) with each row's first lengths[b] tokens reversed, padding left in place.
torch::Tensor reverse_within_lengths(const torch::Tensor& src, const torch::Tensor& lengths);

}  // namespace nlpkit
