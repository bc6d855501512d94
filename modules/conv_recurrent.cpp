#include "modules/conv_recurrent.h"

#include <string>

namespace nlpkit {

namespace {

const char* bool_name(bool value) { return value ? "true" : "false"; }

void print_kernel(std::ostream& stream, const KernelSize2d& kernel) {
  stream << "[" << kernel[0] << ", " << kernel[1] << "]";
}

void print_list(std::ostream& stream, const std::vector<int64_t>& values) {
  stream << "[";
  for (size_t i = 0; i < values.size(); ++i) stream << (i ? ", " : "") << values[i];
  stream << "]";
}

void print_kernels(std::ostream& stream, const std::vector<KernelSize2d>& kernels) {
  stream << "[";
  for (size_t i = 0; i < kernels.size(); ++i) {
    if (i) stream << ", ";
    print_kernel(stream, kernels[i]);
  }
  stream << "]";
}

bool odd_positive(const KernelSize2d& kernel) {
  return kernel[0] > 0 && kernel[1] > 0 && kernel[0] % 2 == 1 && kernel[1] % 2 == 1;
}

void check_cell_options(const char* name, const ConvRNNCellOptions& o) {
  TORCH_CHECK(o.input_size() > 0, name, ": input_size must be positive, got ", o.input_size());
  TORCH_CHECK(o.hidden_size() > 0, name, ": hidden_size must be positive, got ", o.hidden_size());
  TORCH_CHECK(odd_positive(o.kernel_size()), name,
              ": kernel_size must be odd and positive, so that padding (kh/2, kw/2) keeps H and "
              "W; got [",
              o.kernel_size()[0], ", ", o.kernel_size()[1], "]");
}

// Padding (kh/2, kw/2) with stride 1 keeps H and W for odd kernels, as the reference.
torch::nn::Conv2d same_size_conv(int64_t in_channels, int64_t out_channels,
                                 const KernelSize2d& kernel, bool bias) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, {kernel[0], kernel[1]})
          .padding(torch::ExpandingArray<2>({kernel[0] / 2, kernel[1] / 2}))
          .bias(bias));
}

// Checks a (B, C, H, W) input of a cell and a state against it.
void check_cell_input(const char* name, const torch::Tensor& input, int64_t input_size) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == input_size, name,
              ": expected input of shape (B, input_size=", input_size, ", H, W), got ",
              input.sizes());
}

void check_state(const std::string& what, const torch::Tensor& state,
                 const std::vector<int64_t>& expected) {
  TORCH_CHECK(state.defined(), what, ": expected a tensor of shape ", torch::IntArrayRef(expected),
              " (B, hidden_size, H, W), got an undefined tensor");
  TORCH_CHECK(state.sizes() == torch::IntArrayRef(expected), what, ": expected shape ",
              torch::IntArrayRef(expected), " (B, hidden_size, H, W), got ", state.sizes());
}

// Per-layer hidden sizes and kernels of a stack, with a single entry broadcast to every layer.
struct Layers {
  std::vector<int64_t> hidden_sizes;
  std::vector<KernelSize2d> kernel_sizes;
};

Layers resolve_layers(const char* name, int64_t input_size,
                      const std::vector<int64_t>& hidden_sizes,
                      const std::vector<KernelSize2d>& kernel_sizes, int64_t num_layers) {
  TORCH_CHECK(input_size > 0, name, ": input_size must be positive, got ", input_size);
  TORCH_CHECK(num_layers > 0, name, ": num_layers must be positive, got ", num_layers);
  const auto n = static_cast<size_t>(num_layers);
  TORCH_CHECK(hidden_sizes.size() == n || hidden_sizes.size() == 1, name, ": hidden_sizes has ",
              hidden_sizes.size(), " entries, expected num_layers=", num_layers,
              " (or 1, shared by every layer)");
  TORCH_CHECK(kernel_sizes.size() == n || kernel_sizes.size() == 1, name, ": kernel_sizes has ",
              kernel_sizes.size(), " entries, expected num_layers=", num_layers,
              " (or 1, shared by every layer)");
  Layers layers;
  for (size_t l = 0; l < n; ++l) {
    const int64_t hidden = hidden_sizes[hidden_sizes.size() == 1 ? 0 : l];
    const KernelSize2d kernel = kernel_sizes[kernel_sizes.size() == 1 ? 0 : l];
    TORCH_CHECK(hidden > 0, name, ": hidden_sizes[", l, "] must be positive, got ", hidden);
    TORCH_CHECK(odd_positive(kernel), name, ": kernel_sizes[", l,
                "] must be odd and positive, so that padding (kh/2, kw/2) keeps H and W; got [",
                kernel[0], ", ", kernel[1], "]");
    layers.hidden_sizes.push_back(hidden);
    layers.kernel_sizes.push_back(kernel);
  }
  return layers;
}

// Checks a (B, T, C, H, W) sequence with T >= 1.
void check_sequence(const char* name, const char* what, const torch::Tensor& input,
                    int64_t input_size) {
  TORCH_CHECK(input.dim() == 5, name, ": expected ", what,
              " of shape (B, T, input_size=", input_size, ", H, W), got ", input.dim(), "-D ", what,
              " of shape ", input.sizes());
  TORCH_CHECK(input.size(2) == input_size, name, ": expected ", what,
              " of shape (B, T, input_size=", input_size, ", H, W), got ", input.size(2),
              " channels in ", what, " of shape ", input.sizes());
  TORCH_CHECK(input.size(1) > 0, name, ": expected ", what,
              " with at least one time step, got T=0 in ", what, " of shape ", input.sizes());
}

void print_stack(std::ostream& stream, const char* name, const ConvRNNOptions& o) {
  stream << name << "(input_size=" << o.input_size() << ", hidden_sizes=";
  print_list(stream, o.hidden_sizes());
  stream << ", kernel_sizes=";
  print_kernels(stream, o.kernel_sizes());
  stream << ", num_layers=" << o.num_layers() << ", bias=" << bool_name(o.bias())
         << ", return_all_layers=" << bool_name(o.return_all_layers()) << ")";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ConvLSTMCell

ConvLSTMCellImpl::ConvLSTMCellImpl(ConvLSTMCellOptions options_) : options(std::move(options_)) {
  reset();
}

void ConvLSTMCellImpl::reset() {
  check_cell_options("ConvLSTMCell", options);
  conv = register_module(
      "conv", same_size_conv(options.input_size() + options.hidden_size(),
                             4 * options.hidden_size(), options.kernel_size(), options.bias()));
}

void ConvLSTMCellImpl::reset_parameters() { conv->reset_parameters(); }

ConvLSTMState ConvLSTMCellImpl::forward(const torch::Tensor& input,
                                        const std::optional<ConvLSTMState>& state) {
  check_cell_input("ConvLSTMCell", input, options.input_size());
  const std::vector<int64_t> state_shape = {input.size(0), options.hidden_size(), input.size(2),
                                            input.size(3)};
  torch::Tensor h, c;
  if (state) {
    check_state("ConvLSTMCell: h", state->h, state_shape);
    check_state("ConvLSTMCell: c", state->c, state_shape);
    h = state->h;
    c = state->c;
  } else {
    h = torch::zeros(state_shape, input.options());
    c = torch::zeros(state_shape, input.options());
  }
  const torch::Tensor z = conv(torch::cat({input, h}, 1));  // (B, 4*hidden, H, W)
  const std::vector<torch::Tensor> gates = z.chunk(4, 1);   // i, f, o, g: (B, hidden, H, W)
  const torch::Tensor i = torch::sigmoid(gates[0]);
  const torch::Tensor f = torch::sigmoid(gates[1]);
  const torch::Tensor o = torch::sigmoid(gates[2]);
  const torch::Tensor g = torch::tanh(gates[3]);
  torch::Tensor c_next = f * c + i * g;
  torch::Tensor h_next = o * torch::tanh(c_next);
  return {h_next, c_next};
}

void ConvLSTMCellImpl::pretty_print(std::ostream& stream) const {
  stream << "ConvLSTMCell(input_size=" << options.input_size()
         << ", hidden_size=" << options.hidden_size() << ", kernel_size=";
  print_kernel(stream, options.kernel_size());
  stream << ", bias=" << bool_name(options.bias()) << ")";
}

// ---------------------------------------------------------------------------------------------
// ConvGRUCell

ConvGRUCellImpl::ConvGRUCellImpl(ConvGRUCellOptions options_) : options(std::move(options_)) {
  reset();
}

void ConvGRUCellImpl::reset() {
  check_cell_options("ConvGRUCell", options);
  const int64_t in = options.input_size() + options.hidden_size();
  conv_gates = register_module("conv_gates", same_size_conv(in, 2 * options.hidden_size(),
                                                            options.kernel_size(), options.bias()));
  conv_candidate = register_module(
      "conv_candidate",
      same_size_conv(in, options.hidden_size(), options.kernel_size(), options.bias()));
}

void ConvGRUCellImpl::reset_parameters() {
  conv_gates->reset_parameters();
  conv_candidate->reset_parameters();
}

torch::Tensor ConvGRUCellImpl::forward(const torch::Tensor& input,
                                       const std::optional<torch::Tensor>& h) {
  check_cell_input("ConvGRUCell", input, options.input_size());
  const std::vector<int64_t> state_shape = {input.size(0), options.hidden_size(), input.size(2),
                                            input.size(3)};
  torch::Tensor h_prev;
  if (h) {
    check_state("ConvGRUCell: h", *h, state_shape);
    h_prev = *h;
  } else {
    h_prev = torch::zeros(state_shape, input.options());
  }
  const torch::Tensor gates =
      torch::sigmoid(conv_gates(torch::cat({input, h_prev}, 1)));  // (B, 2*hidden, H, W)
  const std::vector<torch::Tensor> ru = gates.chunk(2, 1);         // reset, update
  const torch::Tensor& r = ru[0];
  const torch::Tensor& u = ru[1];
  const torch::Tensor n =
      torch::tanh(conv_candidate(torch::cat({input, r * h_prev}, 1)));  // (B, hidden, H, W)
  return (1 - u) * n + u * h_prev;
}

void ConvGRUCellImpl::pretty_print(std::ostream& stream) const {
  stream << "ConvGRUCell(input_size=" << options.input_size()
         << ", hidden_size=" << options.hidden_size() << ", kernel_size=";
  print_kernel(stream, options.kernel_size());
  stream << ", bias=" << bool_name(options.bias()) << ")";
}

// ---------------------------------------------------------------------------------------------
// ConvLSTM

ConvLSTMImpl::ConvLSTMImpl(ConvLSTMOptions options_) : options(std::move(options_)) { reset(); }

void ConvLSTMImpl::reset() {
  const Layers layers = resolve_layers("ConvLSTM", options.input_size(), options.hidden_sizes(),
                                       options.kernel_sizes(), options.num_layers());
  cell_list = torch::nn::ModuleList();
  int64_t in = options.input_size();
  for (int64_t l = 0; l < options.num_layers(); ++l) {
    cell_list->push_back(
        ConvLSTMCell(ConvLSTMCellOptions(in, layers.hidden_sizes[l], layers.kernel_sizes[l])
                         .bias(options.bias())));
    in = layers.hidden_sizes[l];
  }
  register_module("cell_list", cell_list);
}

void ConvLSTMImpl::reset_parameters() {
  for (const auto& cell : *cell_list) cell->as<ConvLSTMCellImpl>()->reset_parameters();
}

int64_t ConvLSTMImpl::hidden_size(int64_t layer) const {
  TORCH_CHECK(layer >= 0 && layer < options.num_layers(), "ConvLSTM: layer ", layer,
              " out of range [0, num_layers=", options.num_layers(), ")");
  return cell_list->at<ConvLSTMCellImpl>(layer).options.hidden_size();
}

ConvLSTMOutput ConvLSTMImpl::forward(const torch::Tensor& input,
                                     const std::vector<ConvLSTMState>& initial_states) {
  check_sequence("ConvLSTM", "input", input, options.input_size());
  const int64_t num_layers = options.num_layers();
  TORCH_CHECK(initial_states.empty() || static_cast<int64_t>(initial_states.size()) == num_layers,
              "ConvLSTM: expected no initial states or one per layer (num_layers=", num_layers,
              "), got ", initial_states.size());
  const int64_t b = input.size(0), t = input.size(1), height = input.size(3), width = input.size(4);
  ConvLSTMOutput output;
  torch::Tensor layer_input = input;  // (B, T, C_l, H, W)
  for (int64_t l = 0; l < num_layers; ++l) {
    ConvLSTMCellImpl& cell = *cell_list[l]->as<ConvLSTMCellImpl>();
    const std::vector<int64_t> state_shape = {b, cell.options.hidden_size(), height, width};
    ConvLSTMState state;
    if (initial_states.empty()) {
      state.h = torch::zeros(state_shape, input.options());
      state.c = torch::zeros(state_shape, input.options());
    } else {
      const std::string where = "ConvLSTM: initial_states[" + std::to_string(l) + "]";
      check_state(where + ".h", initial_states[l].h, state_shape);
      check_state(where + ".c", initial_states[l].c, state_shape);
      state = initial_states[l];
    }
    // One unbind rather than a select per step: T views made at once, and one backward node.
    const std::vector<torch::Tensor> inputs = layer_input.unbind(1);
    std::vector<torch::Tensor> steps;
    steps.reserve(t);
    for (int64_t s = 0; s < t; ++s) {
      state = cell.forward(inputs[s], state);  // (B, hidden_l, H, W)
      steps.push_back(state.h);
    }
    layer_input = torch::stack(steps, 1);  // (B, T, hidden_l, H, W)
    if (options.return_all_layers() || l == num_layers - 1) {
      output.outputs.push_back(layer_input);
      output.final_states.push_back(state);
    }
  }
  return output;
}

void ConvLSTMImpl::pretty_print(std::ostream& stream) const {
  print_stack(stream, "ConvLSTM", options);
}

// ---------------------------------------------------------------------------------------------
// ConvGRU

ConvGRUImpl::ConvGRUImpl(ConvGRUOptions options_) : options(std::move(options_)) { reset(); }

void ConvGRUImpl::reset() {
  const Layers layers = resolve_layers("ConvGRU", options.input_size(), options.hidden_sizes(),
                                       options.kernel_sizes(), options.num_layers());
  cell_list = torch::nn::ModuleList();
  int64_t in = options.input_size();
  for (int64_t l = 0; l < options.num_layers(); ++l) {
    cell_list->push_back(
        ConvGRUCell(ConvGRUCellOptions(in, layers.hidden_sizes[l], layers.kernel_sizes[l])
                        .bias(options.bias())));
    in = layers.hidden_sizes[l];
  }
  register_module("cell_list", cell_list);
}

void ConvGRUImpl::reset_parameters() {
  for (const auto& cell : *cell_list) cell->as<ConvGRUCellImpl>()->reset_parameters();
}

int64_t ConvGRUImpl::hidden_size(int64_t layer) const {
  TORCH_CHECK(layer >= 0 && layer < options.num_layers(), "ConvGRU: layer ", layer,
              " out of range [0, num_layers=", options.num_layers(), ")");
  return cell_list->at<ConvGRUCellImpl>(layer).options.hidden_size();
}

ConvGRUOutput ConvGRUImpl::forward(const torch::Tensor& input,
                                   const std::vector<torch::Tensor>& initial_states) {
  check_sequence("ConvGRU", "input", input, options.input_size());
  const int64_t num_layers = options.num_layers();
  TORCH_CHECK(initial_states.empty() || static_cast<int64_t>(initial_states.size()) == num_layers,
              "ConvGRU: expected no initial states or one per layer (num_layers=", num_layers,
              "), got ", initial_states.size());
  const int64_t b = input.size(0), t = input.size(1), height = input.size(3), width = input.size(4);
  ConvGRUOutput output;
  torch::Tensor layer_input = input;  // (B, T, C_l, H, W)
  for (int64_t l = 0; l < num_layers; ++l) {
    ConvGRUCellImpl& cell = *cell_list[l]->as<ConvGRUCellImpl>();
    const std::vector<int64_t> state_shape = {b, cell.options.hidden_size(), height, width};
    torch::Tensor h;
    if (initial_states.empty()) {
      h = torch::zeros(state_shape, input.options());
    } else {
      check_state("ConvGRU: initial_states[" + std::to_string(l) + "]", initial_states[l],
                  state_shape);
      h = initial_states[l];
    }
    const std::vector<torch::Tensor> inputs = layer_input.unbind(1);
    std::vector<torch::Tensor> steps;
    steps.reserve(t);
    for (int64_t s = 0; s < t; ++s) {
      h = cell.forward(inputs[s], h);  // (B, hidden_l, H, W)
      steps.push_back(h);
    }
    layer_input = torch::stack(steps, 1);  // (B, T, hidden_l, H, W)
    if (options.return_all_layers() || l == num_layers - 1) {
      output.outputs.push_back(layer_input);
      output.final_states.push_back(h);
    }
  }
  return output;
}

void ConvGRUImpl::pretty_print(std::ostream& stream) const {
  print_stack(stream, "ConvGRU", options);
}

// ---------------------------------------------------------------------------------------------
// ConvLSTMEncoderForecaster

ConvLSTMEncoderForecasterImpl::ConvLSTMEncoderForecasterImpl(
    ConvLSTMEncoderForecasterOptions options_)
    : options(std::move(options_)) {
  reset();
}

void ConvLSTMEncoderForecasterImpl::reset() {
  const auto& o = options;
  const Layers layers = resolve_layers("ConvLSTMEncoderForecaster", o.input_size(),
                                       o.hidden_sizes(), o.kernel_sizes(), o.num_layers());
  // Both stacks return every layer: the forecaster starts from all of the encoder's final
  // states, and the output convolution reads all of the forecaster's hidden states.
  const ConvLSTMOptions stack = ConvLSTMOptions(o.input_size(), o.hidden_sizes(), o.kernel_sizes())
                                    .num_layers(o.num_layers())
                                    .bias(o.bias())
                                    .return_all_layers(true);
  encoder = register_module("encoder", ConvLSTM(stack));
  forecaster = register_module("forecaster", ConvLSTM(stack));
  int64_t total_hidden = 0;
  for (int64_t h : layers.hidden_sizes) total_hidden += h;
  output_conv = register_module(
      "output_conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(total_hidden, o.input_size(), 1).bias(o.bias())));
}

void ConvLSTMEncoderForecasterImpl::reset_parameters() {
  encoder->reset_parameters();
  forecaster->reset_parameters();
  output_conv->reset_parameters();
}

torch::Tensor ConvLSTMEncoderForecasterImpl::forward(const torch::Tensor& frames, int64_t future) {
  check_sequence("ConvLSTMEncoderForecaster", "frames", frames, options.input_size());
  TORCH_CHECK(future > 0, "ConvLSTMEncoderForecaster: future must be positive, got ", future);
  const int64_t b = frames.size(0), c = frames.size(2), height = frames.size(3),
                width = frames.size(4);
  const ConvLSTMOutput encoded = encoder(frames);
  // The unconditioned forecaster of Shi et al.: no frame goes in, only the copied states.
  const torch::Tensor no_input = torch::zeros({b, future, c, height, width}, frames.options());
  const ConvLSTMOutput forecast = forecaster(no_input, encoded.final_states);
  const torch::Tensor hidden = torch::cat(forecast.outputs, 2);    // (B, future, sum hidden, H, W)
  const torch::Tensor logits = output_conv(hidden.flatten(0, 1));  // (B*future, C, H, W)
  return logits.view({b, future, c, height, width});
}

void ConvLSTMEncoderForecasterImpl::pretty_print(std::ostream& stream) const {
  const auto& o = options;
  stream << "ConvLSTMEncoderForecaster(input_size=" << o.input_size() << ", hidden_sizes=";
  print_list(stream, o.hidden_sizes());
  stream << ", kernel_sizes=";
  print_kernels(stream, o.kernel_sizes());
  stream << ", num_layers=" << o.num_layers() << ", bias=" << bool_name(o.bias()) << ")";
}

}  // namespace nlpkit
