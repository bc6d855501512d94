// Greedy and beam search over any autoregressive decoder that can take one step at a time:
// the attention Seq2Seq and the Transformer share this one implementation through
// `StepDecoder`.
//
// Beam search follows the common batched formulation (fairseq's SequenceGenerator, GNMT):
// every example keeps beam_size live hypotheses; at each step the 2 * beam_size best
// continuations of all its beams are ranked, those that end in EOS among the first beam_size
// are finished, the best others stay live. Finished scores are length-normalised with GNMT's
// penalty lp(len) = ((5 + len) / 6)^length_penalty (Wu et al. 2016; 0 = raw log-probability);
// an example stops once it has beam_size finished hypotheses; at max_length the live ones are
// finished as they are.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace nlpkit {

/// One step of a decoder.
struct StepScores {
  /// (N, V) log-probabilities of the next token.
  torch::Tensor log_probs;
  /// (N, S) attention over the source for this step, or undefined.
  torch::Tensor attention;
};

/// A decoder driven one token at a time over N rows (examples, or examples x beams). The
/// model holds the state: encoder outputs, recurrent state or key/value caches.
class StepDecoder {
 public:
  virtual ~StepDecoder() = default;
  /// tokens (N) int64: the previous token of every row (BOS at the first step).
  virtual StepScores step(const torch::Tensor& tokens) = 0;
  /// Keeps rows `index` (N') int64, in that order: beam reordering and expansion.
  virtual void select(const torch::Tensor& index) = 0;
};

/// Options of `greedy_search` and `beam_search`.
struct SearchOptions {
  SearchOptions(int64_t bos_id, int64_t eos_id) : bos_id_(bos_id), eos_id_(eos_id) {}
  TORCH_ARG(int64_t, bos_id);
  TORCH_ARG(int64_t, eos_id);
  /// Live hypotheses per example; >= 1.
  TORCH_ARG(int64_t, beam_size) = 5;
  /// Most tokens generated per hypothesis, EOS included.
  TORCH_ARG(int64_t, max_length) = 50;
  /// alpha of GNMT's length penalty ((5 + len) / 6)^alpha; 0 = none.
  TORCH_ARG(double, length_penalty) = 0.0;
};

/// One decoded sequence.
struct Hypothesis {
  /// Generated tokens, without BOS and EOS.
  std::vector<int64_t> tokens;
  /// Sum of the log-probabilities (EOS included), divided by the length penalty.
  double score = 0.0;
  /// (steps, S) the attention of every step (EOS included), or undefined.
  torch::Tensor attention;
};

/// The most probable token at each step. `decoder` holds `batch` rows. Returns one hypothesis
/// per example.
std::vector<Hypothesis> greedy_search(StepDecoder& decoder, int64_t batch,
                                      const SearchOptions& options);

/// Batched beam search. `decoder` holds `batch` rows and is expanded to batch * beam_size.
/// Returns, per example, up to beam_size hypotheses, best first. beam_size < 1 throws.
std::vector<std::vector<Hypothesis>> beam_search(StepDecoder& decoder, int64_t batch,
                                                 const SearchOptions& options);

/// GNMT's length penalty ((5 + length) / 6)^alpha.
double length_penalty(int64_t length, double alpha);

}  // namespace nlpkit
