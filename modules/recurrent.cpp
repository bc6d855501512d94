#include "modules/recurrent.h"

#include <c10/core/DeviceGuard.h>

#include <cmath>
#include <unordered_set>
#include <utility>

namespace nlpkit {

namespace {

using detail::RecurrentConfig;
using detail::RecurrentMode;
using torch::Tensor;

const char* bool_name(bool value) { return value ? "true" : "false"; }

bool is_rnn(RecurrentMode mode) {
  return mode == RecurrentMode::kRNNTanh || mode == RecurrentMode::kRNNReLU;
}

RecurrentMode rnn_mode(const std::string& nonlinearity, const char* name) {
  TORCH_CHECK(nonlinearity == "tanh" || nonlinearity == "relu", name,
              ": nonlinearity must be \"tanh\" or \"relu\", got \"", nonlinearity, "\"");
  return nonlinearity == "tanh" ? RecurrentMode::kRNNTanh : RecurrentMode::kRNNReLU;
}

// Checks what cells and stacks share.
void check_common(const RecurrentConfig& c) {
  TORCH_CHECK(c.input_size > 0, c.name, ": input_size must be positive, got ", c.input_size);
  TORCH_CHECK(c.hidden_size > 0, c.name, ": hidden_size must be positive, got ", c.hidden_size);
  TORCH_CHECK(c.forget_bias == 0 || c.bias, c.name, ": forget_bias (", c.forget_bias,
              ") needs bias=true");
  TORCH_CHECK(std::isfinite(c.forget_bias), c.name, ": forget_bias must be finite, got ",
              c.forget_bias);
}

// PyTorch's initialisation, then the literature's options. `group` holds one layer-direction's
// (or one cell's) weight_ih, weight_hh[, bias_ih, bias_hh].
void init_group(const RecurrentConfig& c, const std::vector<Tensor>& group) {
  const int64_t h = c.hidden_size;
  if (c.orthogonal_init) {
    // One orthogonal (H, H) block per gate: each gate's recurrence is norm-preserving at init.
    const Tensor& w_hh = group[1];
    for (int64_t g = 0; g < detail::gate_count(c.mode); ++g) {
      torch::nn::init::orthogonal_(w_hh.narrow(0, g * h, h));
    }
  }
  if (c.forget_bias != 0) {
    // The effective forget-gate bias is b_if + b_hf (gate order i, f, g, o): put it all in b_if.
    group[2].narrow(0, h, h).fill_(c.forget_bias);
    group[3].narrow(0, h, h).zero_();
  }
}

// ---------------------------------------------------------------------------------------------
// The cell equations, one time step. gx = W_ih x_t + b_ih (B, G*H) is computed by the caller
// (for a whole sequence at once in the stacks); everything else is the textbook recurrence.

struct State {
  Tensor h;  // (B, H)
  Tensor c;  // (B, H), LSTM only
};

Tensor rnn_step(const Tensor& gx, const Tensor& h, const Tensor& w_hh, const Tensor& b_hh,
                bool relu) {
  const Tensor pre = gx + torch::linear(h, w_hh, b_hh);  // (B, H)
  return relu ? torch::relu(pre) : torch::tanh(pre);
}

State lstm_step(const Tensor& gx, const State& s, const Tensor& w_hh, const Tensor& b_hh) {
  const Tensor gates = gx + torch::linear(s.h, w_hh, b_hh);  // (B, 4H)
  const std::vector<Tensor> chunk = gates.chunk(4, 1);       // i, f, g, o: (B, H) each
  const Tensor i = torch::sigmoid(chunk[0]);                 // input gate
  const Tensor f = torch::sigmoid(chunk[1]);                 // forget gate
  const Tensor c_tilde = torch::tanh(chunk[2]);              // candidate cell C~_t
  const Tensor o = torch::sigmoid(chunk[3]);                 // output gate
  const Tensor c = f * s.c + i * c_tilde;
  const Tensor h = o * torch::tanh(c);
  return {h, c};
}

Tensor gru_step(const Tensor& gx, const Tensor& h, const Tensor& w_hh, const Tensor& b_hh) {
  const std::vector<Tensor> x_part = gx.chunk(3, 1);                            // r, z, n
  const std::vector<Tensor> h_part = torch::linear(h, w_hh, b_hh).chunk(3, 1);  // r, z, n
  const Tensor r = torch::sigmoid(x_part[0] + h_part[0]);                       // reset gate
  const Tensor z = torch::sigmoid(x_part[1] + h_part[1]);  // update gate: share of h kept
  // PyTorch's convention: the reset gate scales (W_hn h + b_hn), not h.
  const Tensor n = torch::tanh(x_part[2] + r * h_part[2]);
  return (1 - z) * n + z * h;
}

State cell_step(RecurrentMode mode, const Tensor& gx, const State& s, const Tensor& w_hh,
                const Tensor& b_hh) {
  switch (mode) {
    case RecurrentMode::kLSTM:
      return lstm_step(gx, s, w_hh, b_hh);
    case RecurrentMode::kGRU:
      return {gru_step(gx, s.h, w_hh, b_hh), Tensor()};
    case RecurrentMode::kRNNTanh:
    case RecurrentMode::kRNNReLU:
      break;
  }
  return {rnn_step(gx, s.h, w_hh, b_hh, mode == RecurrentMode::kRNNReLU), Tensor()};
}

// ---------------------------------------------------------------------------------------------
// Stacks

int64_t weights_per_group(const RecurrentConfig& c) { return c.bias ? 4 : 2; }

// cuDNN's mode numbers (cudnnRNNMode_t), which _cudnn_rnn_flatten_weight takes.
int64_t cudnn_mode(RecurrentMode mode) {
  switch (mode) {
    case RecurrentMode::kRNNReLU:
      return 0;
    case RecurrentMode::kRNNTanh:
      return 1;
    case RecurrentMode::kLSTM:
      return 2;
    case RecurrentMode::kGRU:
      return 3;
  }
  return 1;
}

// "(B, T, input_size=4)" or "(T, B, input_size=4)".
std::string input_shape_text(const RecurrentConfig& c) {
  return std::string(c.batch_first ? "(B, T, " : "(T, B, ") +
         "input_size=" + std::to_string(c.input_size) + ")";
}

// The ATen kernel over a padded (batch_first or time-major) input, or over packed data when
// batch_sizes is defined. hx = {h0} or {h0, c0}. Returns output, h_n, c_n.
std::tuple<Tensor, Tensor, Tensor> fused_kernel(const RecurrentConfig& c,
                                                const std::vector<Tensor>& weights,
                                                const Tensor& input, const Tensor& batch_sizes,
                                                const Tensor& h0, const Tensor& c0, bool training) {
  const bool packed = batch_sizes.defined();
  const int64_t layers = c.num_layers;
  if (c.mode == RecurrentMode::kLSTM) {
    return packed ? at::lstm(input, batch_sizes, {h0, c0}, weights, c.bias, layers, c.dropout,
                             training, c.bidirectional)
                  : at::lstm(input, {h0, c0}, weights, c.bias, layers, c.dropout, training,
                             c.bidirectional, c.batch_first);
  }
  std::tuple<Tensor, Tensor> out;
  if (c.mode == RecurrentMode::kGRU) {
    out = packed ? at::gru(input, batch_sizes, h0, weights, c.bias, layers, c.dropout, training,
                           c.bidirectional)
                 : at::gru(input, h0, weights, c.bias, layers, c.dropout, training, c.bidirectional,
                           c.batch_first);
  } else if (c.mode == RecurrentMode::kRNNTanh) {
    out = packed ? at::rnn_tanh(input, batch_sizes, h0, weights, c.bias, layers, c.dropout,
                                training, c.bidirectional)
                 : at::rnn_tanh(input, h0, weights, c.bias, layers, c.dropout, training,
                                c.bidirectional, c.batch_first);
  } else {
    out = packed ? at::rnn_relu(input, batch_sizes, h0, weights, c.bias, layers, c.dropout,
                                training, c.bidirectional)
                 : at::rnn_relu(input, h0, weights, c.bias, layers, c.dropout, training,
                                c.bidirectional, c.batch_first);
  }
  return {std::get<0>(out), std::get<1>(out), Tensor()};
}

// "fused": one ATen call. With lengths shorter than T somewhere, the batch is packed like
// torch::nn::utils::rnn::pack_padded_sequence(enforce_sorted=false) does, so each direction
// reads only real steps; an already sorted batch skips the sort's copies.
RecurrentOutput run_fused(const RecurrentConfig& c, const std::vector<Tensor>& weights,
                          const Tensor& input, const Tensor& lengths_cpu, const Tensor& h0,
                          const Tensor& c0, bool training) {
  const int64_t t = input.size(c.batch_first ? 1 : 0);
  bool padded = false;
  bool sorted = true;
  if (lengths_cpu.defined()) {
    const int64_t* len = lengths_cpu.data_ptr<int64_t>();
    for (int64_t b = 0; b < lengths_cpu.numel(); ++b) {
      padded = padded || len[b] != t;
      sorted = sorted && (b == 0 || len[b] <= len[b - 1]);
    }
  }
  if (!padded) {
    auto [output, h_n, c_n] = fused_kernel(c, weights, input, Tensor(), h0, c0, training);
    return {output, h_n, c_n};
  }
  namespace rnn = torch::nn::utils::rnn;
  const rnn::PackedSequence packed =
      rnn::pack_padded_sequence(input, lengths_cpu, c.batch_first, /*enforce_sorted=*/sorted);
  const Tensor& order = packed.sorted_indices();  // undefined when already sorted
  const Tensor& unorder = packed.unsorted_indices();
  auto in_order = [&](const Tensor& state) {  // (L*D, B, H) into the packed batch order
    return order.defined() && state.defined() ? state.index_select(1, order) : state;
  };
  auto [data, h_n, c_n] = fused_kernel(c, weights, packed.data(), packed.batch_sizes(),
                                       in_order(h0), in_order(c0), training);
  // ATen's unpacking directly: LibTorch 1.13's pad_packed_sequence indexes its CPU lengths
  // with unsorted_indices on the input's device, which fails for CUDA input.
  Tensor output = std::get<0>(
      torch::_pad_packed_sequence(data, packed.batch_sizes(), c.batch_first, /*padding_value=*/0.0,
                                  /*total_length=*/t));  // (B, T, D*H) or (T, B, D*H), sorted order
  if (unorder.defined()) {
    output = output.index_select(c.batch_first ? 0 : 1, unorder);
    h_n = h_n.index_select(1, unorder);
    if (c_n.defined()) c_n = c_n.index_select(1, unorder);
  }
  return {output, h_n, c_n};
}

// "cells": the loop over the cell equations. mask (T, B, 1) bool marks real steps (undefined:
// all real); past a sequence's end the state is carried unchanged and the output is zero, so
// the forward direction ends at the last valid step and the reverse direction starts there.
RecurrentOutput run_cells(const RecurrentConfig& c, const std::vector<Tensor>& weights,
                          const Tensor& input, const Tensor& mask, const Tensor& h0,
                          const Tensor& c0, bool training) {
  const bool lstm = c.mode == RecurrentMode::kLSTM;
  const int64_t directions = c.bidirectional ? 2 : 1;
  const int64_t per_group = weights_per_group(c);
  Tensor layer_input = c.batch_first ? input.transpose(0, 1) : input;  // (T, B, I)
  const int64_t t_len = layer_input.size(0);
  std::vector<Tensor> h_n, c_n;
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    std::vector<Tensor> direction_outputs;
    for (int64_t direction = 0; direction < directions; ++direction) {
      const int64_t index = layer * directions + direction;
      const Tensor& w_ih = weights[index * per_group];
      const Tensor& w_hh = weights[index * per_group + 1];
      const Tensor b_ih = c.bias ? weights[index * per_group + 2] : Tensor();
      const Tensor b_hh = c.bias ? weights[index * per_group + 3] : Tensor();
      // The input projection of every step at once: one matrix product instead of T.
      // unbind: T views and one backward node, rather than T select nodes.
      const std::vector<Tensor> gx = torch::linear(layer_input, w_ih, b_ih).unbind(0);  // T x (B, G*H)
      State state{h0[index], lstm ? c0[index] : Tensor()};       // (B, H)
      std::vector<Tensor> outputs(t_len);
      for (int64_t step = 0; step < t_len; ++step) {
        const int64_t t = direction == 0 ? step : t_len - 1 - step;
        State next = cell_step(c.mode, gx[t], state, w_hh, b_hh);
        if (mask.defined()) {
          const Tensor& real = mask[t];  // (B, 1)
          outputs[t] = next.h.masked_fill(real.logical_not(), 0);
          next.h = torch::where(real, next.h, state.h);
          if (lstm) next.c = torch::where(real, next.c, state.c);
        } else {
          outputs[t] = next.h;
        }
        state = std::move(next);
      }
      direction_outputs.push_back(torch::stack(outputs));  // (T, B, H)
      h_n.push_back(state.h);
      if (lstm) c_n.push_back(state.c);
    }
    layer_input =
        directions == 1 ? direction_outputs[0] : torch::cat(direction_outputs, 2);  // (T, B, D*H)
    if (layer + 1 < c.num_layers && c.dropout > 0) {
      layer_input = torch::dropout(layer_input, c.dropout, training);
    }
  }
  Tensor output = c.batch_first ? layer_input.transpose(0, 1) : layer_input;
  return {output, torch::stack(h_n), lstm ? torch::stack(c_n) : Tensor()};  // (L*D, B, H)
}

}  // namespace

namespace detail {

int64_t gate_count(RecurrentMode mode) {
  switch (mode) {
    case RecurrentMode::kLSTM:
      return 4;
    case RecurrentMode::kGRU:
      return 3;
    case RecurrentMode::kRNNTanh:
    case RecurrentMode::kRNNReLU:
      break;
  }
  return 1;
}

// ---------------------------------------------------------------------------------------------
// RecurrentCellImplBase

template <typename Derived>
void RecurrentCellImplBase<Derived>::reset() {
  config_ = config();
  check_common(config_);
  const int64_t gh = gate_count(config_.mode) * config_.hidden_size;
  weight_ih = this->register_parameter("weight_ih", torch::empty({gh, config_.input_size}));
  weight_hh = this->register_parameter("weight_hh", torch::empty({gh, config_.hidden_size}));
  if (config_.bias) {
    bias_ih = this->register_parameter("bias_ih", torch::empty({gh}));
    bias_hh = this->register_parameter("bias_hh", torch::empty({gh}));
  } else {
    bias_ih = Tensor();
    bias_hh = Tensor();
  }
  reset_parameters();
}

template <typename Derived>
void RecurrentCellImplBase<Derived>::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
  std::vector<Tensor> group = {weight_ih, weight_hh};
  if (config_.bias) group.insert(group.end(), {bias_ih, bias_hh});
  for (Tensor& p : group) p.uniform_(-bound, bound);
  init_group(config_, group);
}

template <typename Derived>
void RecurrentCellImplBase<Derived>::pretty_print(std::ostream& stream) const {
  const RecurrentConfig& c = config_;
  stream << c.name << "(input_size=" << c.input_size << ", hidden_size=" << c.hidden_size;
  if (is_rnn(c.mode)) {
    stream << ", nonlinearity=" << (c.mode == RecurrentMode::kRNNTanh ? "tanh" : "relu");
  }
  stream << ", bias=" << bool_name(c.bias);
  if (c.mode == RecurrentMode::kLSTM) stream << ", forget_bias=" << c.forget_bias;
  stream << ", orthogonal_init=" << bool_name(c.orthogonal_init) << ")";
}

template <typename Derived>
Tensor RecurrentCellImplBase<Derived>::checked_state(const Tensor& input, const Tensor& state,
                                                     const char* state_name) const {
  const RecurrentConfig& c = config_;
  TORCH_CHECK(input.dim() == 2 && input.size(1) == c.input_size, c.name,
              ": expected input of shape (B, input_size=", c.input_size, "), got ", input.sizes());
  const int64_t b = input.size(0);
  if (!state.defined()) return torch::zeros({b, c.hidden_size}, input.options());
  TORCH_CHECK(state.dim() == 2 && state.size(0) == b && state.size(1) == c.hidden_size, c.name,
              ": expected ", state_name, " of shape (B=", b, ", hidden_size=", c.hidden_size,
              "), got ", state.sizes());
  return state;
}

// ---------------------------------------------------------------------------------------------
// RecurrentImplBase

template <typename Derived>
void RecurrentImplBase<Derived>::reset() {
  config_ = config();
  const RecurrentConfig& c = config_;
  check_common(c);
  TORCH_CHECK(c.num_layers > 0, c.name, ": num_layers must be positive, got ", c.num_layers);
  TORCH_CHECK(c.dropout >= 0 && c.dropout < 1, c.name, ": dropout must be in [0, 1), got ",
              c.dropout);
  TORCH_CHECK(c.implementation == "fused" || c.implementation == "cells", c.name,
              ": implementation must be \"fused\" or \"cells\", got \"", c.implementation, "\"");
  const int64_t gh = gate_count(c.mode) * c.hidden_size;
  const int64_t directions = c.bidirectional ? 2 : 1;
  flat_weights_.clear();
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const int64_t layer_input = layer == 0 ? c.input_size : c.hidden_size * directions;
    for (int64_t direction = 0; direction < directions; ++direction) {
      const std::string suffix = "_l" + std::to_string(layer) + (direction == 1 ? "_reverse" : "");
      flat_weights_.push_back(
          this->register_parameter("weight_ih" + suffix, torch::empty({gh, layer_input})));
      flat_weights_.push_back(
          this->register_parameter("weight_hh" + suffix, torch::empty({gh, c.hidden_size})));
      if (c.bias) {
        flat_weights_.push_back(this->register_parameter("bias_ih" + suffix, torch::empty({gh})));
        flat_weights_.push_back(this->register_parameter("bias_hh" + suffix, torch::empty({gh})));
      }
    }
  }
  reset_parameters();
}

template <typename Derived>
void RecurrentImplBase<Derived>::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
  for (Tensor& p : flat_weights_) p.uniform_(-bound, bound);
  const int64_t per_group = weights_per_group(config_);
  for (size_t first = 0; first < flat_weights_.size(); first += per_group) {
    init_group(config_, std::vector<Tensor>(flat_weights_.begin() + first,
                                            flat_weights_.begin() + first + per_group));
  }
}

template <typename Derived>
void RecurrentImplBase<Derived>::pretty_print(std::ostream& stream) const {
  const RecurrentConfig& c = config_;
  stream << c.name << "(input_size=" << c.input_size << ", hidden_size=" << c.hidden_size
         << ", num_layers=" << c.num_layers;
  if (is_rnn(c.mode)) {
    stream << ", nonlinearity=" << (c.mode == RecurrentMode::kRNNTanh ? "tanh" : "relu");
  }
  stream << ", bias=" << bool_name(c.bias) << ", batch_first=" << bool_name(c.batch_first)
         << ", dropout=" << c.dropout << ", bidirectional=" << bool_name(c.bidirectional);
  if (c.mode == RecurrentMode::kLSTM) stream << ", forget_bias=" << c.forget_bias;
  stream << ", orthogonal_init=" << bool_name(c.orthogonal_init)
         << ", implementation=" << c.implementation << ")";
}

template <typename Derived>
bool RecurrentImplBase<Derived>::weights_flattened() const {
  for (const Tensor& w : flat_weights_) {
    if (!w.is_alias_of(flat_weights_.front())) return false;
  }
  return true;
}

template <typename Derived>
void RecurrentImplBase<Derived>::flatten_parameters() {
  // As torch::nn::LSTM does: only weights cuDNN accepts, all of one dtype, none shared.
  if (flat_weights_.empty()) return;
  const Tensor& first = flat_weights_.front();
  std::unordered_set<void*> data;
  for (const Tensor& w : flat_weights_) {
    if (w.scalar_type() != first.scalar_type() || !w.is_cuda() || !torch::cudnn_is_acceptable(w)) {
      return;
    }
    data.insert(w.data_ptr());
  }
  if (data.size() != flat_weights_.size() || !torch::_use_cudnn_rnn_flatten_weight()) return;
  c10::DeviceGuard device_guard(first.device());
  torch::NoGradGuard no_grad;  // the parameters' storage is swapped in place
  const RecurrentConfig& c = config_;
  torch::_cudnn_rnn_flatten_weight(flat_weights_, weights_per_group(c), c.input_size,
                                   cudnn_mode(c.mode), c.hidden_size, /*proj_size=*/0, c.num_layers,
                                   c.batch_first, c.bidirectional);
}

template <typename Derived>
RecurrentOutput RecurrentImplBase<Derived>::forward_impl(const Tensor& input, const Tensor& lengths,
                                                         const Tensor& h0, const Tensor& c0) {
  const RecurrentConfig& c = config_;
  TORCH_CHECK(input.dim() == 3 && input.size(2) == c.input_size, c.name,
              ": expected input of shape ", input_shape_text(c), ", got ", input.sizes());
  const int64_t b = input.size(c.batch_first ? 0 : 1);
  const int64_t t = input.size(c.batch_first ? 1 : 0);
  TORCH_CHECK(t > 0, c.name, ": expected at least one time step in input of shape ",
              input_shape_text(c), ", got ", input.sizes(), " (T = 0)");
  TORCH_CHECK(b > 0, c.name, ": expected at least one sequence in input of shape ",
              input_shape_text(c), ", got ", input.sizes(), " (B = 0)");

  // Lengths are read on the host (packing needs them there): free for CPU lengths, one copy
  // for device lengths.
  Tensor lengths_cpu;
  if (lengths.defined()) {
    TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == b, c.name,
                ": expected lengths of shape (B=", b, "), got ", lengths.sizes());
    TORCH_CHECK(c10::isIntegralType(lengths.scalar_type(), /*includeBool=*/false), c.name,
                ": expected int64 lengths, got ", lengths.scalar_type());
    TORCH_CHECK(lengths.device().is_cpu() || lengths.device() == input.device(), c.name,
                ": lengths must be on the CPU or on the input's device (", input.device(),
                "), got ", lengths.device());
    lengths_cpu = lengths.to(torch::kCPU, torch::kLong).contiguous();
    const int64_t* len = lengths_cpu.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      TORCH_CHECK(len[i] >= 1 && len[i] <= t, c.name, ": lengths must be in [1, T=", t,
                  "], got lengths[", i, "] = ", len[i]);
    }
  }

  const int64_t states = c.num_layers * (c.bidirectional ? 2 : 1);
  const bool lstm = c.mode == RecurrentMode::kLSTM;
  auto initial = [&](const Tensor& given, const char* name) {
    if (!given.defined()) return torch::zeros({states, b, c.hidden_size}, input.options());
    TORCH_CHECK(given.dim() == 3 && given.size(0) == states && given.size(1) == b &&
                    given.size(2) == c.hidden_size,
                c.name, ": expected ", name, " of shape (num_layers*num_directions=", states,
                ", B=", b, ", hidden_size=", c.hidden_size, "), got ", given.sizes());
    return given;
  };
  const Tensor h = initial(h0, "h0");
  const Tensor cell = lstm ? initial(c0, "c0") : Tensor();

  if (c.implementation == "cells") {
    Tensor mask;
    if (lengths.defined()) {
      // Lengths already on the input's device stay there; CPU lengths are copied over once.
      const Tensor on_device = (lengths.device() == input.device() ? lengths : lengths_cpu)
                                   .to(input.device(), torch::kLong);
      const Tensor steps = torch::arange(t, on_device.options());  // (T)
      mask = steps.unsqueeze(1) < on_device.unsqueeze(0);          // (T, B)
      mask = mask.unsqueeze(2);                                    // (T, B, 1)
    }
    return run_cells(c, flat_weights_, input, mask, h, cell, this->is_training());
  }
  if (flat_weights_.front().is_cuda() && !weights_flattened()) flatten_parameters();
  return run_fused(c, flat_weights_, input, lengths_cpu, h, cell, this->is_training());
}

template class RecurrentCellImplBase<RNNCellImpl>;
template class RecurrentCellImplBase<LSTMCellImpl>;
template class RecurrentCellImplBase<GRUCellImpl>;
template class RecurrentImplBase<RNNImpl>;
template class RecurrentImplBase<LSTMImpl>;
template class RecurrentImplBase<GRUImpl>;

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Cells

RNNCellImpl::RNNCellImpl(RNNCellOptions options_) : options(std::move(options_)) { reset(); }

detail::RecurrentConfig RNNCellImpl::config() const {
  RecurrentConfig c;
  c.name = "RNNCell";
  c.mode = rnn_mode(options.nonlinearity(), "RNNCell");
  c.input_size = options.input_size();
  c.hidden_size = options.hidden_size();
  c.bias = options.bias();
  c.orthogonal_init = options.orthogonal_init();
  return c;
}

Tensor RNNCellImpl::forward(const Tensor& input, const Tensor& h) {
  const Tensor state = checked_state(input, h, "h");
  return rnn_step(torch::linear(input, weight_ih, bias_ih), state, weight_hh, bias_hh,
                  config_.mode == RecurrentMode::kRNNReLU);
}

LSTMCellImpl::LSTMCellImpl(LSTMCellOptions options_) : options(std::move(options_)) { reset(); }

detail::RecurrentConfig LSTMCellImpl::config() const {
  RecurrentConfig c;
  c.name = "LSTMCell";
  c.mode = RecurrentMode::kLSTM;
  c.input_size = options.input_size();
  c.hidden_size = options.hidden_size();
  c.bias = options.bias();
  c.forget_bias = options.forget_bias();
  c.orthogonal_init = options.orthogonal_init();
  return c;
}

LSTMCellOutput LSTMCellImpl::forward(const Tensor& input, const Tensor& h, const Tensor& c) {
  const State state{checked_state(input, h, "h"), checked_state(input, c, "c")};
  const State next = lstm_step(torch::linear(input, weight_ih, bias_ih), state, weight_hh, bias_hh);
  return {next.h, next.c};
}

GRUCellImpl::GRUCellImpl(GRUCellOptions options_) : options(std::move(options_)) { reset(); }

detail::RecurrentConfig GRUCellImpl::config() const {
  RecurrentConfig c;
  c.name = "GRUCell";
  c.mode = RecurrentMode::kGRU;
  c.input_size = options.input_size();
  c.hidden_size = options.hidden_size();
  c.bias = options.bias();
  c.orthogonal_init = options.orthogonal_init();
  return c;
}

Tensor GRUCellImpl::forward(const Tensor& input, const Tensor& h) {
  const Tensor state = checked_state(input, h, "h");
  return gru_step(torch::linear(input, weight_ih, bias_ih), state, weight_hh, bias_hh);
}

// ---------------------------------------------------------------------------------------------
// Stacks

namespace {

// The options every stack shares.
template <typename Options>
RecurrentConfig stack_config(const char* name, RecurrentMode mode, const Options& o) {
  RecurrentConfig c;
  c.name = name;
  c.mode = mode;
  c.input_size = o.input_size();
  c.hidden_size = o.hidden_size();
  c.num_layers = o.num_layers();
  c.bias = o.bias();
  c.batch_first = o.batch_first();
  c.dropout = o.dropout();
  c.bidirectional = o.bidirectional();
  c.orthogonal_init = o.orthogonal_init();
  c.implementation = o.implementation();
  return c;
}

}  // namespace

RNNImpl::RNNImpl(RNNOptions options_) : options(std::move(options_)) { reset(); }

RecurrentOutput RNNImpl::forward(const Tensor& input, const Tensor& lengths, const Tensor& h0) {
  return forward_impl(input, lengths, h0, Tensor());
}

detail::RecurrentConfig RNNImpl::config() const {
  return stack_config("RNN", rnn_mode(options.nonlinearity(), "RNN"), options);
}

LSTMImpl::LSTMImpl(LSTMOptions options_) : options(std::move(options_)) { reset(); }

RecurrentOutput LSTMImpl::forward(const Tensor& input, const Tensor& lengths, const Tensor& h0,
                                  const Tensor& c0) {
  return forward_impl(input, lengths, h0, c0);
}

detail::RecurrentConfig LSTMImpl::config() const {
  RecurrentConfig c = stack_config("LSTM", RecurrentMode::kLSTM, options);
  c.forget_bias = options.forget_bias();
  return c;
}

GRUImpl::GRUImpl(GRUOptions options_) : options(std::move(options_)) { reset(); }

RecurrentOutput GRUImpl::forward(const Tensor& input, const Tensor& lengths, const Tensor& h0) {
  return forward_impl(input, lengths, h0, Tensor());
}

detail::RecurrentConfig GRUImpl::config() const {
  return stack_config("GRU", RecurrentMode::kGRU, options);
}

}  // namespace nlpkit
