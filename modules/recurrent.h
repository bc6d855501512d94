// Recurrent networks: RNNCell, LSTMCell and GRUCell, and the multi-layer (optionally
// bidirectional) RNN, LSTM and GRU stacks built from the same equations.
//
// References:
// - PyTorch's torch.nn.RNN / LSTM / GRU documentation: the equations, the parameter names
//   (weight_ih_l<k>[_reverse], weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>; weight_ih, weight_hh,
//   bias_ih, bias_hh for cells), the gate order inside each matrix (LSTM i, f, g, o; GRU r, z, n)
//   and the initialisation U(-1/sqrt(H), 1/sqrt(H)). Numerics match torch::nn::RNN/LSTM/GRU and
//   their cells, so PyTorch checkpoints load into these modules and back.
// - Elman 1990 (simple recurrent network): h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),
//   or ReLU in place of tanh.
// - Hochreiter & Schmidhuber 1997 (LSTM), with the forget gate of Gers, Schmidhuber & Cummins
//   2000; forget_bias as recommended by Gers et al. 2000 and Jozefowicz, Zaremba & Sutskever 2015:
//     i_t  = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)       input gate
//     f_t  = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)       forget gate
//     C~_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)          candidate cell
//     C_t  = f_t * C_{t-1} + i_t * C~_t
//     o_t  = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)       output gate
//     h_t  = o_t * tanh(C_t)
//   PyTorch (and cuDNN) keep two biases per gate, b_i* and b_h*; the textbook bias is their sum.
// - Cho et al. 2014 (GRU), with PyTorch's numerics where conventions differ:
//     r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)        reset gate
//     z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)        update gate
//     n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
//     h_t = (1 - z_t) * n_t + z_t * h_{t-1}
//   Cho et al. apply the reset gate before the recurrent product, tanh(W x + U (r * h)); PyTorch
//   (and cuDNN) apply it to (W_hn h + b_hn), as here. z_t is the share of the old state kept, as
//   in Cho et al. and PyTorch; some textbooks write z_t for the share of the new state (z <-> 1-z).
// - Saxe, McClelland & Ganguli 2014 (orthogonal initialisation), applied to each gate's (H, H)
//   block of weight_hh when orthogonal_init is set.
//
// Two implementations sit behind one stack module (option `implementation`):
// - "fused" (default): at::lstm / at::gru / at::rnn_tanh / at::rnn_relu with the flat weight
//   list, the kernels torch::nn::LSTM runs (cuDNN on GPU; oneDNN or native on CPU); a batch with
//   lengths is packed (pack_padded_sequence, unsorted lengths handled by sorting and unsorting).
// - "cells": the loop over the cell equations above, time step by time step, masking by lengths:
//   readable, and a reference for the fused kernels.
// Both give the same outputs, final states and gradients (tests check them against LibTorch).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace nlpkit {

/// Output of `RNN`, `LSTM` and `GRU`. D = 2 when bidirectional, else 1; L = num_layers.
struct RecurrentOutput {
  /// (B, T, D*H) with batch_first, else (T, B, D*H): the last layer's hidden state at every
  /// step, directions concatenated (forward first); zero past each sequence's length.
  torch::Tensor output;
  /// (L*D, B, H): each layer's and direction's hidden state at the sequence's last valid step
  /// (for the reverse direction: after reading step 0). Index = layer * D + direction.
  torch::Tensor h_n;
  /// (L*D, B, H) the cell states, like h_n; LSTM only, undefined for RNN and GRU.
  torch::Tensor c_n;
};

namespace detail {

/// The recurrence a module computes: one per ATen kernel (at::rnn_tanh, at::rnn_relu,
/// at::lstm, at::gru).
enum class RecurrentMode { kRNNTanh, kRNNReLU, kLSTM, kGRU };

/// Everything the shared code needs to know about one recurrent module, built from the
/// module's own options by `config()`.
struct RecurrentConfig {
  std::string name;  // "LSTM", "GRUCell", ...: error messages and pretty_print
  RecurrentMode mode = RecurrentMode::kLSTM;
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = true;
  double dropout = 0.0;
  bool bidirectional = false;
  double forget_bias = 0.0;
  bool orthogonal_init = false;
  std::string implementation = "fused";
};

/// Number of gate blocks stacked in weight_ih / weight_hh: 4 (LSTM), 3 (GRU), 1 (RNN).
int64_t gate_count(RecurrentMode mode);

/// Shared by RNNCell, LSTMCell and GRUCell: parameters weight_ih (G*H, I), weight_hh (G*H, H),
/// bias_ih (G*H), bias_hh (G*H), and their initialisation.
template <typename Derived>
class RecurrentCellImplBase : public torch::nn::Cloneable<Derived> {
 public:
  /// Checks the options and registers the parameters.
  void reset() override;
  /// U(-1/sqrt(H), 1/sqrt(H)) for every parameter (PyTorch's init, in registration order, so
  /// that a seed gives the same weights as torch::nn's cell), then orthogonal_init and
  /// forget_bias when set.
  void reset_parameters();
  /// Prints e.g. `LSTMCell(input_size=4, hidden_size=8, bias=true, forget_bias=1,
  /// orthogonal_init=false)`.
  void pretty_print(std::ostream& stream) const override;

  /// (G*H, input_size)
  torch::Tensor weight_ih;
  /// (G*H, hidden_size)
  torch::Tensor weight_hh;
  /// (G*H), undefined without bias.
  torch::Tensor bias_ih;
  /// (G*H), undefined without bias.
  torch::Tensor bias_hh;

 protected:
  virtual RecurrentConfig config() const = 0;
  /// Checks input (B, input_size) and a state (B, hidden_size) named `state_name`; an undefined
  /// state becomes zeros. Returns the state.
  torch::Tensor checked_state(const torch::Tensor& input, const torch::Tensor& state,
                              const char* state_name) const;
  RecurrentConfig config_;
};

/// Shared by the RNN, LSTM and GRU stacks, whose maths differ only in the cell: the parameters,
/// their initialisation, input checks, and the fused and cells implementations.
template <typename Derived>
class RecurrentImplBase : public torch::nn::Cloneable<Derived> {
 public:
  /// Checks the options and registers the parameters in PyTorch's order: for each layer k, for
  /// each direction ("" then "_reverse"): weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>,
  /// bias_hh_l<k>.
  void reset() override;
  /// U(-1/sqrt(H), 1/sqrt(H)) for every parameter, in registration order (a seed gives the same
  /// weights as torch::nn's module), then orthogonal_init and forget_bias when set.
  void reset_parameters();
  /// Prints e.g. `LSTM(input_size=4, hidden_size=8, num_layers=2, bias=true, batch_first=true,
  /// dropout=0.1, bidirectional=true, forget_bias=1, orthogonal_init=false,
  /// implementation=fused)`.
  void pretty_print(std::ostream& stream) const override;

  /// Puts the weights into one contiguous cuDNN buffer (the parameters become views of it), so
  /// that cuDNN does not copy them at every call. A no-op off CUDA or without cuDNN. `forward`
  /// calls it when the weights are on the GPU and not yet flattened (after `to(kCUDA)`, say).
  void flatten_parameters();

  /// The parameters in PyTorch's flat order (the `params` list of at::lstm).
  const std::vector<torch::Tensor>& flat_weights() const { return flat_weights_; }

 protected:
  virtual RecurrentConfig config() const = 0;
  /// The whole forward pass; c0 is used by LSTM only.
  RecurrentOutput forward_impl(const torch::Tensor& input, const torch::Tensor& lengths,
                               const torch::Tensor& h0, const torch::Tensor& c0);

  RecurrentConfig config_;
  std::vector<torch::Tensor> flat_weights_;

 private:
  bool weights_flattened() const;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Cells: one time step

/// Options for `RNNCell`.
struct RNNCellOptions {
  RNNCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  /// Learn bias_ih and bias_hh.
  TORCH_ARG(bool, bias) = true;
  /// "tanh" or "relu".
  TORCH_ARG(std::string, nonlinearity) = "tanh";
  /// Orthogonal weight_hh (Saxe et al. 2014) instead of PyTorch's uniform init.
  TORCH_ARG(bool, orthogonal_init) = false;
};

/// Elman cell: h' = nonlinearity(W_ih x + b_ih + W_hh h + b_hh), as torch::nn::RNNCell.
///
/// Example:
/// ```
/// nlpkit::RNNCell cell(nlpkit::RNNCellOptions(4, 8).nonlinearity("relu"));
/// torch::Tensor h = cell(torch::randn({2, 4}));  // (2, 8)
/// ```
class RNNCellImpl : public detail::RecurrentCellImplBase<RNNCellImpl> {
 public:
  RNNCellImpl(int64_t input_size, int64_t hidden_size)
      : RNNCellImpl(RNNCellOptions(input_size, hidden_size)) {}
  explicit RNNCellImpl(RNNCellOptions options_);

  /// input: (B, input_size); h: (B, hidden_size), zeros when undefined. Returns h' (B, H).
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& h = {});

  RNNCellOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
  detail::RecurrentConfig config() const override;
};

TORCH_MODULE(RNNCell);

/// Options for `LSTMCell`.
struct LSTMCellOptions {
  LSTMCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  /// Learn bias_ih and bias_hh.
  TORCH_ARG(bool, bias) = true;
  /// Initial forget-gate bias: when non-zero, bias_ih's forget block is set to it and bias_hh's
  /// to 0, so that the effective bias b_if + b_hf equals it (1.0 is the usual choice). 0 keeps
  /// PyTorch's init. Needs bias.
  TORCH_ARG(double, forget_bias) = 0.0;
  /// Orthogonal (H, H) blocks of weight_hh, one per gate (Saxe et al. 2014).
  TORCH_ARG(bool, orthogonal_init) = false;
};

/// Output of `LSTMCell`.
struct LSTMCellOutput {
  /// (B, H) hidden state h_t.
  torch::Tensor h;
  /// (B, H) cell state C_t.
  torch::Tensor c;
};

/// LSTM cell (see the top of this file), as torch::nn::LSTMCell.
///
/// Example:
/// ```
/// nlpkit::LSTMCell cell(nlpkit::LSTMCellOptions(4, 8).forget_bias(1.0));
/// nlpkit::LSTMCellOutput state = cell(torch::randn({2, 4}));
/// state = cell(torch::randn({2, 4}), state.h, state.c);
/// ```
class LSTMCellImpl : public detail::RecurrentCellImplBase<LSTMCellImpl> {
 public:
  LSTMCellImpl(int64_t input_size, int64_t hidden_size)
      : LSTMCellImpl(LSTMCellOptions(input_size, hidden_size)) {}
  explicit LSTMCellImpl(LSTMCellOptions options_);

  /// input: (B, input_size); h, c: (B, hidden_size), zeros when undefined.
  LSTMCellOutput forward(const torch::Tensor& input, const torch::Tensor& h = {},
                         const torch::Tensor& c = {});

  LSTMCellOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(torch::Tensor())})
  detail::RecurrentConfig config() const override;
};

TORCH_MODULE(LSTMCell);

/// Options for `GRUCell`.
struct GRUCellOptions {
  GRUCellOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  /// Learn bias_ih and bias_hh.
  TORCH_ARG(bool, bias) = true;
  /// Orthogonal (H, H) blocks of weight_hh, one per gate (Saxe et al. 2014).
  TORCH_ARG(bool, orthogonal_init) = false;
};

/// GRU cell (see the top of this file for PyTorch's conventions), as torch::nn::GRUCell.
///
/// Example:
/// ```
/// nlpkit::GRUCell cell(nlpkit::GRUCellOptions(4, 8));
/// torch::Tensor h = cell(torch::randn({2, 4}));  // (2, 8)
/// ```
class GRUCellImpl : public detail::RecurrentCellImplBase<GRUCellImpl> {
 public:
  GRUCellImpl(int64_t input_size, int64_t hidden_size)
      : GRUCellImpl(GRUCellOptions(input_size, hidden_size)) {}
  explicit GRUCellImpl(GRUCellOptions options_);

  /// input: (B, input_size); h: (B, hidden_size), zeros when undefined. Returns h' (B, H).
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& h = {});

  GRUCellOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())})
  detail::RecurrentConfig config() const override;
};

TORCH_MODULE(GRUCell);

// ---------------------------------------------------------------------------------------------
// Stacks: whole sequences, num_layers deep, one or two directions

/// Options for `RNN`.
struct RNNOptions {
  RNNOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  /// "tanh" or "relu".
  TORCH_ARG(std::string, nonlinearity) = "tanh";
  /// Learn bias_ih_l<k> and bias_hh_l<k>.
  TORCH_ARG(bool, bias) = true;
  /// Input and output are (B, T, *) when true (nlpkit's convention), (T, B, *) when false.
  TORCH_ARG(bool, batch_first) = true;
  /// Dropout on each layer's output but the last's, in training only.
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bidirectional) = false;
  /// Orthogonal recurrent weights weight_hh_l<k> (Saxe et al. 2014).
  TORCH_ARG(bool, orthogonal_init) = false;
  /// "fused" (ATen's kernels, cuDNN on GPU) or "cells" (a loop over time steps).
  TORCH_ARG(std::string, implementation) = "fused";
};

/// Options for `LSTM`.
struct LSTMOptions {
  LSTMOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  /// Learn bias_ih_l<k> and bias_hh_l<k>.
  TORCH_ARG(bool, bias) = true;
  /// Input and output are (B, T, *) when true (nlpkit's convention), (T, B, *) when false.
  TORCH_ARG(bool, batch_first) = true;
  /// Dropout on each layer's output but the last's, in training only.
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bidirectional) = false;
  /// Initial forget-gate bias of every layer and direction: when non-zero, bias_ih's forget
  /// block is set to it and bias_hh's to 0 (effective bias = forget_bias; 1.0 is the usual
  /// choice). 0 keeps PyTorch's init. Needs bias.
  TORCH_ARG(double, forget_bias) = 0.0;
  /// Orthogonal (H, H) blocks of weight_hh_l<k>, one per gate (Saxe et al. 2014).
  TORCH_ARG(bool, orthogonal_init) = false;
  /// "fused" (ATen's kernels, cuDNN on GPU) or "cells" (a loop over time steps).
  TORCH_ARG(std::string, implementation) = "fused";
};

/// Options for `GRU`.
struct GRUOptions {
  GRUOptions(int64_t input_size, int64_t hidden_size)
      : input_size_(input_size), hidden_size_(hidden_size) {}
  TORCH_ARG(int64_t, input_size);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_layers) = 1;
  /// Learn bias_ih_l<k> and bias_hh_l<k>.
  TORCH_ARG(bool, bias) = true;
  /// Input and output are (B, T, *) when true (nlpkit's convention), (T, B, *) when false.
  TORCH_ARG(bool, batch_first) = true;
  /// Dropout on each layer's output but the last's, in training only.
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bidirectional) = false;
  /// Orthogonal (H, H) blocks of weight_hh_l<k>, one per gate (Saxe et al. 2014).
  TORCH_ARG(bool, orthogonal_init) = false;
  /// "fused" (ATen's kernels, cuDNN on GPU) or "cells" (a loop over time steps).
  TORCH_ARG(std::string, implementation) = "fused";
};

/// Multi-layer Elman RNN, as torch::nn::RNN (parameter names, numerics), batch-first by
/// default, with variable-length batches.
///
/// Example:
/// ```
/// nlpkit::RNN rnn(nlpkit::RNNOptions(4, 8).num_layers(2).nonlinearity("relu"));
/// nlpkit::RecurrentOutput out = rnn(torch::randn({3, 5, 4}), torch::tensor({5, 2, 4},
/// torch::kLong));
/// ```
class RNNImpl : public detail::RecurrentImplBase<RNNImpl> {
 public:
  RNNImpl(int64_t input_size, int64_t hidden_size) : RNNImpl(RNNOptions(input_size, hidden_size)) {}
  explicit RNNImpl(RNNOptions options_);

  /// input: (B, T, input_size) (batch_first) or (T, B, input_size); T >= 1.
  /// lengths: int64 (B) in [1, T], on the CPU (no device sync) or the input's device; undefined =
  /// every sequence is T long. h0: (L*D, B, H), zeros when undefined.
  RecurrentOutput forward(const torch::Tensor& input, const torch::Tensor& lengths = {},
                          const torch::Tensor& h0 = {});

  RNNOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(torch::Tensor())})
  detail::RecurrentConfig config() const override;
};

TORCH_MODULE(RNN);

/// Multi-layer LSTM, as torch::nn::LSTM (parameter names, numerics), batch-first by default,
/// with variable-length batches.
///
/// Example:
/// ```
/// nlpkit::LSTM lstm(nlpkit::LSTMOptions(4, 8).num_layers(2).bidirectional(true)
///                       .forget_bias(1.0));
/// nlpkit::RecurrentOutput out = lstm(torch::randn({3, 5, 4}), torch::tensor({5, 2, 4},
/// torch::kLong));
/// // out.output (3, 5, 16), out.h_n (4, 3, 8), out.c_n (4, 3, 8)
/// ```
class LSTMImpl : public detail::RecurrentImplBase<LSTMImpl> {
 public:
  LSTMImpl(int64_t input_size, int64_t hidden_size)
      : LSTMImpl(LSTMOptions(input_size, hidden_size)) {}
  explicit LSTMImpl(LSTMOptions options_);

  /// input: (B, T, input_size) (batch_first) or (T, B, input_size); T >= 1.
  /// lengths: int64 (B) in [1, T], on the CPU (no device sync) or the input's device; undefined =
  /// every sequence is T long. h0, c0: (L*D, B, H), zeros when undefined.
  RecurrentOutput forward(const torch::Tensor& input, const torch::Tensor& lengths = {},
                          const torch::Tensor& h0 = {}, const torch::Tensor& c0 = {});

  LSTMOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(torch::Tensor())},
                           {3, torch::nn::AnyValue(torch::Tensor())})
  detail::RecurrentConfig config() const override;
};

TORCH_MODULE(LSTM);

/// Multi-layer GRU, as torch::nn::GRU (parameter names, numerics), batch-first by default,
/// with variable-length batches.
///
/// Example:
/// ```
/// nlpkit::GRU gru(nlpkit::GRUOptions(4, 8).bidirectional(true));
/// nlpkit::RecurrentOutput out = gru(torch::randn({3, 5, 4}));  // output (3, 5, 16)
/// ```
class GRUImpl : public detail::RecurrentImplBase<GRUImpl> {
 public:
  GRUImpl(int64_t input_size, int64_t hidden_size) : GRUImpl(GRUOptions(input_size, hidden_size)) {}
  explicit GRUImpl(GRUOptions options_);

  /// input: (B, T, input_size) (batch_first) or (T, B, input_size); T >= 1.
  /// lengths: int64 (B) in [1, T], on the CPU (no device sync) or the input's device; undefined =
  /// every sequence is T long. h0: (L*D, B, H), zeros when undefined.
  RecurrentOutput forward(const torch::Tensor& input, const torch::Tensor& lengths = {},
                          const torch::Tensor& h0 = {});

  GRUOptions options;

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(torch::Tensor())},
                           {2, torch::nn::AnyValue(torch::Tensor())})
  detail::RecurrentConfig config() const override;
};

TORCH_MODULE(GRU);

}  // namespace nlpkit
