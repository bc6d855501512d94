// Convolutional recurrent networks: ConvLSTM (Shi et al. 2015, "Convolutional LSTM Network: A
// Machine Learning Approach for Precipitation Nowcasting") and ConvGRU (Ballas et al. 2016; the
// ConvGRU baseline of Shi et al. 2017), their multi-layer stacks, and the encoder-forecaster
// frame predictor of Shi et al. 2015.
//
// Numerics and parameter names of ConvLSTMCell/ConvLSTM match ndrplz/ConvLSTM_pytorch
// (convlstm.py; tests/data/golden/convlstm_tiny checks every layer against it):
//   z = conv(cat(x_t, h_{t-1}))            one convolution, input channels first, padding
//                                         (kh/2, kw/2) so that odd kernels keep H and W
//   i, f, o, g = split(z, hidden_size)     in this order
//   c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
//   h_t = sigmoid(o) * tanh(c_t)
// Unlike Shi et al. there are no peephole (Hadamard W_c . c) terms, as in the reference.
//
// ConvGRUCell (same padding, parameters conv_gates and conv_candidate):
//   r, u = split(sigmoid(conv_gates(cat(x_t, h_{t-1}))), hidden_size)   reset first, then update
//   n    = tanh(conv_candidate(cat(x_t, r * h_{t-1})))
//   h_t  = (1 - u) * n + u * h_{t-1}
// The update gate keeps the old state where it is 1, as in PyTorch's GRU and Shi et al. 2017
// (happyjin/ConvGRU-pytorch swaps the roles of u and 1 - u).
//
// All tensors are batch first: sequences (B, T, C, H, W), states and frames (B, C, H, W).
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <vector>

namespace nlpkit {

/// A 2-D kernel size (kh, kw); both must be odd.
using KernelSize2d = std::array<int64_t, 2>;

// ---------------------------------------------------------------------------------------------
// Cells

/// Options for `ConvLSTMCell` and `ConvGRUCell`.
///
/// Example:
/// ```
/// nlpkit::ConvLSTMCell cell(nlpkit::ConvLSTMCellOptions(/*input_size=*/1, /*hidden_size=*/64,
///                                                       /*kernel_size=*/{5, 5}));
/// ```
struct ConvRNNCellOptions {
  ConvRNNCellOptions(int64_t input_size, int64_t hidden_size, KernelSize2d kernel_size)
      : input_size_(input_size), hidden_size_(hidden_size), kernel_size_(kernel_size) {}
  /// Channels of the input frames.
  TORCH_ARG(int64_t, input_size);
  /// Channels of the hidden (and cell) state.
  TORCH_ARG(int64_t, hidden_size);
  /// (kh, kw), odd, so that padding (kh/2, kw/2) keeps H and W.
  TORCH_ARG(KernelSize2d, kernel_size);
  /// Learn the convolutions' biases.
  TORCH_ARG(bool, bias) = true;
};
using ConvLSTMCellOptions = ConvRNNCellOptions;
using ConvGRUCellOptions = ConvRNNCellOptions;

/// Hidden and cell state of a ConvLSTM layer, each (B, hidden_size, H, W).
struct ConvLSTMState {
  torch::Tensor h;
  torch::Tensor c;
};

/// One ConvLSTM step (equations at the top of this file). Parameters: conv.weight
/// (4 * hidden_size, input_size + hidden_size, kh, kw) with output channels in gate order
/// i, f, o, g, and conv.bias (4 * hidden_size); PyTorch's default Conv2d initialisation.
class ConvLSTMCellImpl : public torch::nn::Cloneable<ConvLSTMCellImpl> {
 public:
  explicit ConvLSTMCellImpl(ConvLSTMCellOptions options_);

  void reset() override;
  void reset_parameters();

  /// input: (B, input_size, H, W); state: (h, c), each (B, hidden_size, H, W), zeros if absent.
  /// Returns the new (h, c).
  ConvLSTMState forward(const torch::Tensor& input,
                        const std::optional<ConvLSTMState>& state = std::nullopt);

  /// Prints `ConvLSTMCell(input_size=3, hidden_size=8, kernel_size=[3, 3], bias=true)`.
  void pretty_print(std::ostream& stream) const override;

  ConvLSTMCellOptions options;
  torch::nn::Conv2d conv{nullptr};
};

TORCH_MODULE(ConvLSTMCell);

/// One ConvGRU step (equations at the top of this file). Parameters: conv_gates.weight
/// (2 * hidden_size, input_size + hidden_size, kh, kw) with output channels in order reset,
/// update; conv_gates.bias (2 * hidden_size); conv_candidate.weight (hidden_size, input_size +
/// hidden_size, kh, kw); conv_candidate.bias (hidden_size). PyTorch's default initialisation.
class ConvGRUCellImpl : public torch::nn::Cloneable<ConvGRUCellImpl> {
 public:
  explicit ConvGRUCellImpl(ConvGRUCellOptions options_);

  void reset() override;
  void reset_parameters();

  /// input: (B, input_size, H, W); h: (B, hidden_size, H, W), zeros if absent.
  /// Returns the new h (B, hidden_size, H, W).
  torch::Tensor forward(const torch::Tensor& input,
                        const std::optional<torch::Tensor>& h = std::nullopt);

  /// Prints `ConvGRUCell(input_size=3, hidden_size=8, kernel_size=[3, 3], bias=true)`.
  void pretty_print(std::ostream& stream) const override;

  ConvGRUCellOptions options;
  torch::nn::Conv2d conv_gates{nullptr};
  torch::nn::Conv2d conv_candidate{nullptr};
};

TORCH_MODULE(ConvGRUCell);

// ---------------------------------------------------------------------------------------------
// Stacks

/// Options for `ConvLSTM` and `ConvGRU`. `hidden_sizes` and `kernel_sizes` hold one entry per
/// layer, or a single entry that every layer uses; num_layers defaults to len(hidden_sizes).
///
/// Example (the convlstm_tiny fixture's model):
/// ```
/// nlpkit::ConvLSTM lstm(nlpkit::ConvLSTMOptions(/*input_size=*/3, /*hidden_sizes=*/{8, 6},
///                                               /*kernel_sizes=*/{{3, 3}, {5, 3}})
///                           .return_all_layers(true));
/// nlpkit::ConvLSTMOutput out = lstm(x);  // x: (B, T, 3, H, W)
/// ```
struct ConvRNNOptions {
  ConvRNNOptions(int64_t input_size, std::vector<int64_t> hidden_sizes,
                 std::vector<KernelSize2d> kernel_sizes)
      : input_size_(input_size),
        hidden_sizes_(std::move(hidden_sizes)),
        kernel_sizes_(std::move(kernel_sizes)) {
    num_layers_ = static_cast<int64_t>(hidden_sizes_.size());
  }
  /// Channels of the input frames (layer 0's input; layer l > 0 reads layer l-1's hidden).
  TORCH_ARG(int64_t, input_size);
  /// Hidden channels per layer (or one value for all layers).
  TORCH_ARG(std::vector<int64_t>, hidden_sizes);
  /// (kh, kw) per layer (or one for all layers); odd.
  TORCH_ARG(std::vector<KernelSize2d>, kernel_sizes);
  TORCH_ARG(int64_t, num_layers);
  /// Learn the convolutions' biases.
  TORCH_ARG(bool, bias) = true;
  /// Return every layer's outputs and final state; otherwise only the last layer's.
  TORCH_ARG(bool, return_all_layers) = false;
};
using ConvLSTMOptions = ConvRNNOptions;
using ConvGRUOptions = ConvRNNOptions;

/// Output of `ConvLSTM`: one entry per layer with return_all_layers, else the last layer's only.
struct ConvLSTMOutput {
  /// (B, T, hidden_size_l, H, W): the layer's h at every step.
  std::vector<torch::Tensor> outputs;
  /// The layer's final (h, c), each (B, hidden_size_l, H, W).
  std::vector<ConvLSTMState> final_states;
};

/// Output of `ConvGRU`: one entry per layer with return_all_layers, else the last layer's only.
struct ConvGRUOutput {
  /// (B, T, hidden_size_l, H, W): the layer's h at every step.
  std::vector<torch::Tensor> outputs;
  /// The layer's final h (B, hidden_size_l, H, W).
  std::vector<torch::Tensor> final_states;
};

/// Multi-layer ConvLSTM over batch-first sequences, as ndrplz/ConvLSTM_pytorch's ConvLSTM: layer
/// l + 1 reads layer l's whole output sequence. State dict: cell_list.<l>.conv.{weight,bias}.
class ConvLSTMImpl : public torch::nn::Cloneable<ConvLSTMImpl> {
 public:
  explicit ConvLSTMImpl(ConvLSTMOptions options_);

  void reset() override;
  void reset_parameters();

  /// input: (B, T, input_size, H, W) with T >= 1. initial_states: empty (zeros) or one (h, c)
  /// per layer, each (B, hidden_size_l, H, W).
  ConvLSTMOutput forward(const torch::Tensor& input,
                         const std::vector<ConvLSTMState>& initial_states = {});

  /// Hidden channels of layer l.
  int64_t hidden_size(int64_t layer) const;

  /// Prints `ConvLSTM(input_size=3, hidden_sizes=[8, 6], kernel_sizes=[[3, 3], [5, 3]],
  /// num_layers=2, bias=true, return_all_layers=true)`.
  void pretty_print(std::ostream& stream) const override;

  ConvLSTMOptions options;
  /// ConvLSTMCell per layer.
  torch::nn::ModuleList cell_list{nullptr};
};

TORCH_MODULE(ConvLSTM);

/// Multi-layer ConvGRU over batch-first sequences; layer l + 1 reads layer l's whole output
/// sequence. State dict: cell_list.<l>.conv_gates.{weight,bias},
/// cell_list.<l>.conv_candidate.{weight,bias}.
class ConvGRUImpl : public torch::nn::Cloneable<ConvGRUImpl> {
 public:
  explicit ConvGRUImpl(ConvGRUOptions options_);

  void reset() override;
  void reset_parameters();

  /// input: (B, T, input_size, H, W) with T >= 1. initial_states: empty (zeros) or one h per
  /// layer, each (B, hidden_size_l, H, W).
  ConvGRUOutput forward(const torch::Tensor& input,
                        const std::vector<torch::Tensor>& initial_states = {});

  /// Hidden channels of layer l.
  int64_t hidden_size(int64_t layer) const;

  /// Prints `ConvGRU(input_size=1, hidden_sizes=[4], kernel_sizes=[[3, 5]], num_layers=2,
  /// bias=true, return_all_layers=false)`.
  void pretty_print(std::ostream& stream) const override;

  ConvGRUOptions options;
  /// ConvGRUCell per layer.
  torch::nn::ModuleList cell_list{nullptr};
};

TORCH_MODULE(ConvGRU);

// ---------------------------------------------------------------------------------------------
// Encoder-forecaster (Shi et al. 2015, section 3.2)

/// Options for `ConvLSTMEncoderForecaster`; the encoder and the forecaster stacks both use them.
///
/// Example (Moving MNIST, 10 frames in, 10 out):
/// ```
/// nlpkit::ConvLSTMEncoderForecaster model(nlpkit::ConvLSTMEncoderForecasterOptions(
///     /*input_size=*/1, /*hidden_sizes=*/{64, 64}, /*kernel_sizes=*/{{5, 5}}));
/// torch::Tensor logits = model(frames, /*future=*/10);  // (B, 10, 1, 64, 64)
/// ```
struct ConvLSTMEncoderForecasterOptions {
  ConvLSTMEncoderForecasterOptions(int64_t input_size, std::vector<int64_t> hidden_sizes,
                                   std::vector<KernelSize2d> kernel_sizes)
      : input_size_(input_size),
        hidden_sizes_(std::move(hidden_sizes)),
        kernel_sizes_(std::move(kernel_sizes)) {
    num_layers_ = static_cast<int64_t>(hidden_sizes_.size());
  }
  /// C, channels of the input and of the predicted frames.
  TORCH_ARG(int64_t, input_size);
  /// Hidden channels per layer (or one value for all layers).
  TORCH_ARG(std::vector<int64_t>, hidden_sizes);
  /// (kh, kw) per layer (or one for all layers); odd.
  TORCH_ARG(std::vector<KernelSize2d>, kernel_sizes);
  TORCH_ARG(int64_t, num_layers);
  /// Learn the convolutions' biases.
  TORCH_ARG(bool, bias) = true;
};

/// Frame predictor of Shi et al. 2015: a ConvLSTM `encoder` reads the input frames; a
/// `forecaster` ConvLSTM of the same shape starts from the encoder's final (h, c), layer by
/// layer, and runs `future` steps; at each step `output_conv`, a 1x1 convolution, maps the
/// concatenation of every forecaster layer's h (sum(hidden_sizes) channels, as in the paper) to
/// input_size channels.
///
/// The forecaster is unconditioned, as in the paper: its input is zeros at every step, so the
/// input_size slice of forecaster.cell_list.0.conv.weight multiplies zeros and gets no gradient
/// (it is kept so that both stacks have the same shape and checkpoints the same layout).
/// State dict: encoder.cell_list.<l>.conv.{weight,bias},
/// forecaster.cell_list.<l>.conv.{weight,bias}, output_conv.{weight,bias}.
class ConvLSTMEncoderForecasterImpl : public torch::nn::Cloneable<ConvLSTMEncoderForecasterImpl> {
 public:
  explicit ConvLSTMEncoderForecasterImpl(ConvLSTMEncoderForecasterOptions options_);

  void reset() override;
  void reset_parameters();

  /// frames: (B, T_in, input_size, H, W) with T_in >= 1; future >= 1 frames to predict.
  /// Returns (B, future, input_size, H, W) logits: no sigmoid (apply it, or use
  /// binary_cross_entropy_with_logits, for frames in [0, 1]).
  torch::Tensor forward(const torch::Tensor& frames, int64_t future);

  /// Prints `ConvLSTMEncoderForecaster(input_size=1, hidden_sizes=[8, 8],
  /// kernel_sizes=[[3, 3]], num_layers=2, bias=true)`.
  void pretty_print(std::ostream& stream) const override;

  ConvLSTMEncoderForecasterOptions options;
  ConvLSTM encoder{nullptr};
  ConvLSTM forecaster{nullptr};
  torch::nn::Conv2d output_conv{nullptr};
};

TORCH_MODULE(ConvLSTMEncoderForecaster);

}  // namespace nlpkit
