#include "modules/conv_recurrent.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "trainers/safetensors.h"

namespace nlpkit {
namespace {

const std::string kGoldenDir = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/golden/convlstm_tiny";

torch::Tensor find(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [key, value] : tensors) {
    if (key == name) return value;
  }
  throw std::runtime_error("no tensor named " + name);
}

// |actual - expected| <= atol + rtol * |expected| everywhere, with the largest difference in the
// failure message.
testing::AssertionResult Close(const torch::Tensor& actual, const torch::Tensor& expected,
                               double rtol = 1e-4, double atol = 1e-5) {
  if (actual.sizes() != expected.sizes()) {
    return testing::AssertionFailure()
           << "shape " << actual.sizes() << " vs expected " << expected.sizes();
  }
  if (torch::allclose(actual, expected, rtol, atol)) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << "max |difference| " << (actual - expected).abs().max().item<double>();
}

// Cross-correlation with zero padding (kh/2, kw/2), written as a sum over kernel offsets of
// shifted input slices, independent of torch's convolution and its padding.
torch::Tensor conv_ref(const torch::Tensor& x, const torch::Tensor& weight,
                       const torch::Tensor& bias) {
  const int64_t kh = weight.size(2), kw = weight.size(3), h = x.size(2), w = x.size(3);
  const torch::Tensor padded = torch::constant_pad_nd(x, {kw / 2, kw / 2, kh / 2, kh / 2});
  torch::Tensor out = torch::zeros({x.size(0), weight.size(0), h, w}, x.options());
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
      const torch::Tensor patch = padded.narrow(2, i, h).narrow(3, j, w);  // (B, C, H, W)
      out = out + torch::einsum("oc,bchw->bohw", {weight.select(3, j).select(2, i), patch});
    }
  }
  if (bias.defined()) out = out + bias.view({1, -1, 1, 1});
  return out;
}

// The ConvLSTM equations, step by step.
ConvLSTMState lstm_step_ref(ConvLSTMCellImpl& cell, const torch::Tensor& x,
                            const ConvLSTMState& state) {
  const int64_t n = cell.options.hidden_size();
  const torch::Tensor z = conv_ref(torch::cat({x, state.h}, 1), cell.conv->weight, cell.conv->bias);
  const torch::Tensor i = torch::sigmoid(z.narrow(1, 0, n));
  const torch::Tensor f = torch::sigmoid(z.narrow(1, n, n));
  const torch::Tensor o = torch::sigmoid(z.narrow(1, 2 * n, n));
  const torch::Tensor g = torch::tanh(z.narrow(1, 3 * n, n));
  const torch::Tensor c = f * state.c + i * g;
  return {o * torch::tanh(c), c};
}

// The ConvGRU equations, step by step.
torch::Tensor gru_step_ref(ConvGRUCellImpl& cell, const torch::Tensor& x, const torch::Tensor& h) {
  const int64_t n = cell.options.hidden_size();
  const torch::Tensor gates = conv_ref(torch::cat({x, h}, 1), cell.conv_gates->weight,
                                       cell.conv_gates->bias);  // (B, 2n, H, W)
  const torch::Tensor r = torch::sigmoid(gates.narrow(1, 0, n));
  const torch::Tensor u = torch::sigmoid(gates.narrow(1, n, n));
  const torch::Tensor candidate = torch::tanh(
      conv_ref(torch::cat({x, r * h}, 1), cell.conv_candidate->weight, cell.conv_candidate->bias));
  return (1 - u) * candidate + u * h;
}

// ---------------------------------------------------------------------------------------------
// Parity with ndrplz/ConvLSTM_pytorch (tests/data/golden/convlstm_tiny/README.md)

TEST(ConvLSTMTest, MatchesReferenceFixture) {
  nlohmann::json config;
  std::ifstream(kGoldenDir + "/config.json") >> config;
  ASSERT_TRUE(config.value("batch_first", false));
  std::vector<KernelSize2d> kernels;
  for (const auto& k : config["kernel_size"])
    kernels.push_back({k[0].get<int64_t>(), k[1].get<int64_t>()});
  ConvLSTM model(ConvLSTMOptions(config["input_dim"].get<int64_t>(),
                                 config["hidden_dim"].get<std::vector<int64_t>>(), kernels)
                     .num_layers(config["num_layers"].get<int64_t>())
                     .bias(config["bias"].get<bool>())
                     .return_all_layers(config["return_all_layers"].get<bool>()));
  ASSERT_EQ(printed(*model),
            "ConvLSTM(input_size=3, hidden_sizes=[8, 6], kernel_sizes=[[3, 3], [5, 3]], "
            "num_layers=2, bias=true, return_all_layers=true)");

  // The weights load through nlpkit's own safetensors reader, under the reference's names.
  const std::string weights_path = kGoldenDir + "/model.safetensors";
  const SafetensorsFile weights = load_safetensors(weights_path);
  std::vector<std::string> file_keys;
  for (const auto& item : weights.tensors) file_keys.push_back(item.first);
  EXPECT_EQ(file_keys, state_keys(*model));
  load_module_state(*model, weights.tensors, weights_path);
  EXPECT_TRUE(torch::equal(model->cell_list[1]->as<ConvLSTMCell>()->conv->weight,
                           find(weights.tensors, "cell_list.1.conv.weight")));

  const NamedTensors io = load_safetensors(kGoldenDir + "/io.safetensors").tensors;
  const torch::Tensor x = find(io, "in/x");
  ASSERT_EQ(x.sizes(), torch::IntArrayRef({2, 4, 3, 7, 9}));
  model->eval();
  torch::NoGradGuard no_grad;
  const ConvLSTMOutput out = model(x);
  ASSERT_EQ(out.outputs.size(), 2u);
  ASSERT_EQ(out.final_states.size(), 2u);
  for (size_t l = 0; l < 2; ++l) {
    const std::string layer = "out/layer" + std::to_string(l);
    EXPECT_TRUE(Close(out.outputs[l], find(io, layer + "_output"))) << layer;
    EXPECT_TRUE(Close(out.final_states[l].h, find(io, layer + "_h"))) << layer;
    EXPECT_TRUE(Close(out.final_states[l].c, find(io, layer + "_c"))) << layer;
  }
  // Without return_all_layers only the last layer comes back, with the same values.
  ConvLSTM last_only(ConvLSTMOptions(3, {8, 6}, kernels));
  load_module_state(*last_only, weights.tensors, weights_path);
  const ConvLSTMOutput last = last_only(x);
  ASSERT_EQ(last.outputs.size(), 1u);
  ASSERT_EQ(last.final_states.size(), 1u);
  EXPECT_TRUE(torch::equal(last.outputs[0], out.outputs[1]));
  EXPECT_TRUE(torch::equal(last.final_states[0].c, out.final_states[1].c));
}

// ---------------------------------------------------------------------------------------------
// Cells and stacks against their equations

TEST(ConvLSTMCellTest, MatchesEquations) {
  torch::manual_seed(0);
  ConvLSTMCell cell(ConvLSTMCellOptions(2, 3, {3, 5}));
  const torch::Tensor x = torch::randn({2, 2, 5, 6});
  const ConvLSTMState state{torch::randn({2, 3, 5, 6}), torch::randn({2, 3, 5, 6})};
  const ConvLSTMState out = cell(x, state);
  const ConvLSTMState expected = lstm_step_ref(*cell, x, state);
  EXPECT_TRUE(Close(out.h, expected.h, 1e-5, 1e-6));
  EXPECT_TRUE(Close(out.c, expected.c, 1e-5, 1e-6));
  // No state means zeros.
  const ConvLSTMState from_zero = cell(x);
  const ConvLSTMState zero_ref =
      lstm_step_ref(*cell, x, {torch::zeros({2, 3, 5, 6}), torch::zeros({2, 3, 5, 6})});
  EXPECT_TRUE(Close(from_zero.h, zero_ref.h, 1e-5, 1e-6));
  EXPECT_TRUE(Close(from_zero.c, zero_ref.c, 1e-5, 1e-6));
}

TEST(ConvGRUCellTest, MatchesEquations) {
  torch::manual_seed(1);
  ConvGRUCell cell(ConvGRUCellOptions(2, 3, {5, 3}));
  const torch::Tensor x = torch::randn({2, 2, 6, 4});
  const torch::Tensor h = torch::randn({2, 3, 6, 4});
  EXPECT_TRUE(Close(cell(x, h), gru_step_ref(*cell, x, h), 1e-5, 1e-6));
  EXPECT_TRUE(Close(cell(x), gru_step_ref(*cell, x, torch::zeros({2, 3, 6, 4})), 1e-5, 1e-6));
  // Update gate 1 everywhere keeps the state (h' = h), whatever the candidate.
  {
    torch::NoGradGuard no_grad;
    cell->conv_gates->weight.zero_();
    cell->conv_gates->bias.narrow(0, 3, 3).fill_(100);  // update logits: sigmoid = 1
  }
  EXPECT_TRUE(Close(cell(x, h), h, 0, 1e-6));
}

TEST(ConvGRUTest, MatchesStepByStepReference) {
  torch::manual_seed(2);
  ConvGRU gru(ConvGRUOptions(2, {4, 3}, {{3, 3}, {1, 5}}).return_all_layers(true));
  const torch::Tensor x = torch::randn({2, 3, 2, 5, 7});
  const ConvGRUOutput out = gru(x);
  ASSERT_EQ(out.outputs.size(), 2u);
  torch::Tensor layer_input = x;
  for (int64_t l = 0; l < 2; ++l) {
    ConvGRUCellImpl& cell = *gru->cell_list[l]->as<ConvGRUCellImpl>();
    torch::Tensor h = torch::zeros({2, cell.options.hidden_size(), 5, 7});
    std::vector<torch::Tensor> steps;
    for (int64_t t = 0; t < 3; ++t) {
      h = gru_step_ref(cell, layer_input.select(1, t), h);
      steps.push_back(h);
    }
    layer_input = torch::stack(steps, 1);
    EXPECT_TRUE(Close(out.outputs[l], layer_input, 1e-5, 1e-6)) << "layer " << l;
    EXPECT_TRUE(Close(out.final_states[l], h, 1e-5, 1e-6)) << "layer " << l;
  }
}

TEST(ConvLSTMTest, MatchesStepByStepReferenceWithInitialStates) {
  torch::manual_seed(3);
  ConvLSTM lstm(ConvLSTMOptions(1, {3, 2}, {{3, 5}, {5, 1}}).return_all_layers(true));
  const torch::Tensor x = torch::randn({2, 3, 1, 6, 5});
  std::vector<ConvLSTMState> initial = {{torch::randn({2, 3, 6, 5}), torch::randn({2, 3, 6, 5})},
                                        {torch::randn({2, 2, 6, 5}), torch::randn({2, 2, 6, 5})}};
  const ConvLSTMOutput out = lstm(x, initial);
  torch::Tensor layer_input = x;
  for (int64_t l = 0; l < 2; ++l) {
    ConvLSTMState state = initial[l];
    std::vector<torch::Tensor> steps;
    for (int64_t t = 0; t < 3; ++t) {
      state = lstm_step_ref(*lstm->cell_list[l]->as<ConvLSTMCellImpl>(), layer_input.select(1, t),
                            state);
      steps.push_back(state.h);
    }
    layer_input = torch::stack(steps, 1);
    EXPECT_TRUE(Close(out.outputs[l], layer_input, 1e-5, 1e-6)) << "layer " << l;
    EXPECT_TRUE(Close(out.final_states[l].h, state.h, 1e-5, 1e-6)) << "layer " << l;
    EXPECT_TRUE(Close(out.final_states[l].c, state.c, 1e-5, 1e-6)) << "layer " << l;
  }
}

TEST(ConvRecurrentTest, InitialStatesContinueASequence) {
  // Running T steps equals running the first steps and then the rest from their final states.
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({2, 5, 2, 4, 4});
  const torch::Tensor head = x.narrow(1, 0, 2), tail = x.narrow(1, 2, 3);
  ConvLSTM lstm(ConvLSTMOptions(2, {3, 4}, {{3, 3}}).return_all_layers(true));
  const ConvLSTMOutput whole = lstm(x);
  const ConvLSTMOutput rest = lstm(tail, lstm(head).final_states);
  ConvGRU gru(ConvGRUOptions(2, {3, 4}, {{3, 3}}).return_all_layers(true));
  const ConvGRUOutput gru_whole = gru(x);
  const ConvGRUOutput gru_rest = gru(tail, gru(head).final_states);
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_TRUE(Close(rest.outputs[l], whole.outputs[l].narrow(1, 2, 3), 1e-5, 1e-6));
    EXPECT_TRUE(Close(rest.final_states[l].c, whole.final_states[l].c, 1e-5, 1e-6));
    EXPECT_TRUE(Close(gru_rest.outputs[l], gru_whole.outputs[l].narrow(1, 2, 3), 1e-5, 1e-6));
    EXPECT_TRUE(Close(gru_rest.final_states[l], gru_whole.final_states[l], 1e-5, 1e-6));
  }
}

// ---------------------------------------------------------------------------------------------
// Shapes and parameters

TEST(ConvRecurrentTest, OutputShapesKeepHeightAndWidth) {
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({3, 4, 2, 5, 9});
  for (bool all : {false, true}) {
    ConvLSTM lstm(ConvLSTMOptions(2, {6, 4, 5}, {{3, 3}, {5, 1}, {1, 7}}).return_all_layers(all));
    ConvGRU gru(ConvGRUOptions(2, {6, 4, 5}, {{3, 3}, {5, 1}, {1, 7}}).return_all_layers(all));
    const ConvLSTMOutput a = lstm(x);
    const ConvGRUOutput b = gru(x);
    const std::vector<int64_t> hidden =
        all ? std::vector<int64_t>{6, 4, 5} : std::vector<int64_t>{5};
    ASSERT_EQ(a.outputs.size(), hidden.size());
    ASSERT_EQ(a.final_states.size(), hidden.size());
    ASSERT_EQ(b.outputs.size(), hidden.size());
    ASSERT_EQ(b.final_states.size(), hidden.size());
    for (size_t l = 0; l < hidden.size(); ++l) {
      const int64_t n = hidden[l];
      EXPECT_EQ(a.outputs[l].sizes(), torch::IntArrayRef({3, 4, n, 5, 9}));
      EXPECT_EQ(a.final_states[l].h.sizes(), torch::IntArrayRef({3, n, 5, 9}));
      EXPECT_EQ(a.final_states[l].c.sizes(), torch::IntArrayRef({3, n, 5, 9}));
      EXPECT_EQ(b.outputs[l].sizes(), torch::IntArrayRef({3, 4, n, 5, 9}));
      EXPECT_EQ(b.final_states[l].sizes(), torch::IntArrayRef({3, n, 5, 9}));
      // The final h is the last step of the output sequence.
      EXPECT_TRUE(torch::equal(a.outputs[l].select(1, 3), a.final_states[l].h));
      EXPECT_TRUE(torch::equal(b.outputs[l].select(1, 3), b.final_states[l]));
    }
  }
  // One entry in hidden_sizes and kernel_sizes serves every layer.
  ConvLSTM shared(ConvLSTMOptions(2, {4}, {{3, 5}}).num_layers(3));
  EXPECT_EQ(shared->cell_list->size(), 3u);
  for (int64_t l = 0; l < 3; ++l) EXPECT_EQ(shared->hidden_size(l), 4);
  EXPECT_EQ(shared->cell_list[2]->as<ConvLSTMCell>()->conv->weight.sizes(),
            torch::IntArrayRef({16, 8, 3, 5}));
  EXPECT_EQ(shared(x).outputs[0].sizes(), torch::IntArrayRef({3, 4, 4, 5, 9}));
}

TEST(ConvRecurrentTest, StateDictKeysAndShapes) {
  ConvLSTM lstm(ConvLSTMOptions(3, {8, 6}, {{3, 3}, {5, 3}}));
  EXPECT_EQ(state_keys(*lstm),
            (std::vector<std::string>{"cell_list.0.conv.weight", "cell_list.0.conv.bias",
                                      "cell_list.1.conv.weight", "cell_list.1.conv.bias"}));
  auto state = lstm->named_parameters();
  EXPECT_EQ(state["cell_list.0.conv.weight"].sizes(), torch::IntArrayRef({32, 11, 3, 3}));
  EXPECT_EQ(state["cell_list.1.conv.weight"].sizes(), torch::IntArrayRef({24, 14, 5, 3}));
  EXPECT_EQ(state["cell_list.1.conv.bias"].sizes(), torch::IntArrayRef({24}));
  ConvLSTM no_bias(ConvLSTMOptions(3, {8, 6}, {{3, 3}, {5, 3}}).bias(false));
  EXPECT_EQ(state_keys(*no_bias),
            (std::vector<std::string>{"cell_list.0.conv.weight", "cell_list.1.conv.weight"}));

  ConvGRU gru(ConvGRUOptions(3, {8, 6}, {{3, 3}, {5, 3}}));
  EXPECT_EQ(state_keys(*gru),
            (std::vector<std::string>{
                "cell_list.0.conv_gates.weight", "cell_list.0.conv_gates.bias",
                "cell_list.0.conv_candidate.weight", "cell_list.0.conv_candidate.bias",
                "cell_list.1.conv_gates.weight", "cell_list.1.conv_gates.bias",
                "cell_list.1.conv_candidate.weight", "cell_list.1.conv_candidate.bias"}));
  state = gru->named_parameters();
  EXPECT_EQ(state["cell_list.1.conv_gates.weight"].sizes(), torch::IntArrayRef({12, 14, 5, 3}));
  EXPECT_EQ(state["cell_list.1.conv_candidate.weight"].sizes(), torch::IntArrayRef({6, 14, 5, 3}));

  ConvLSTMEncoderForecaster model(ConvLSTMEncoderForecasterOptions(1, {8, 6}, {{3, 3}, {5, 3}}));
  EXPECT_EQ(state_keys(*model),
            (std::vector<std::string>{
                "encoder.cell_list.0.conv.weight", "encoder.cell_list.0.conv.bias",
                "encoder.cell_list.1.conv.weight", "encoder.cell_list.1.conv.bias",
                "forecaster.cell_list.0.conv.weight", "forecaster.cell_list.0.conv.bias",
                "forecaster.cell_list.1.conv.weight", "forecaster.cell_list.1.conv.bias",
                "output_conv.weight", "output_conv.bias"}));
  // The 1x1 convolution reads every forecaster layer's h: 8 + 6 channels.
  EXPECT_EQ(model->output_conv->weight.sizes(), torch::IntArrayRef({1, 14, 1, 1}));
  EXPECT_EQ(model->forecaster->cell_list[0]->as<ConvLSTMCell>()->conv->weight.sizes(),
            torch::IntArrayRef({32, 9, 3, 3}));
}

TEST(ConvRecurrentTest, ResetParametersIsPyTorchsConvInitialisation) {
  torch::manual_seed(6);
  ConvLSTMCell cell(ConvLSTMCellOptions(3, 4, {3, 3}));
  {
    torch::NoGradGuard no_grad;
    cell->conv->weight.fill_(7);
    cell->conv->bias.fill_(7);
  }
  cell->reset_parameters();
  // kaiming_uniform(a=sqrt(5)) and the bias both lie in +-1/sqrt(fan_in), fan_in = 7*3*3.
  const double bound = 1.0 / std::sqrt(63.0);
  EXPECT_LE(cell->conv->weight.abs().max().item<double>(), bound);
  EXPECT_LE(cell->conv->bias.abs().max().item<double>(), bound);
  EXPECT_GT(cell->conv->bias.abs().max().item<double>(), 0);  // non-zero biases, as PyTorch
}

TEST(ConvRecurrentTest, GradientsReachEveryParameter) {
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({2, 3, 2, 5, 6});
  ConvLSTM lstm(ConvLSTMOptions(2, {3, 4}, {{3, 3}, {3, 5}}));
  ConvGRU gru(ConvGRUOptions(2, {3, 4}, {{3, 3}, {3, 5}}));
  lstm(x).outputs[0].pow(2).sum().backward();
  gru(x).outputs[0].pow(2).sum().backward();
  for (const auto* module : std::vector<const torch::nn::Module*>{lstm.get(), gru.get()}) {
    for (const auto& item : module->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << module->name() << " " << item.key();
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0)
          << module->name() << " " << item.key();
    }
  }
  // Initial states receive gradients too.
  const ConvLSTMState init{torch::randn({2, 3, 5, 6}, torch::requires_grad()),
                           torch::randn({2, 3, 5, 6}, torch::requires_grad())};
  ConvLSTM one(ConvLSTMOptions(2, {3}, {{3, 3}}));
  one->forward(x, {init}).final_states[0].h.sum().backward();
  EXPECT_GT(init.h.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(init.c.grad().abs().sum().item<double>(), 0);
}

// ---------------------------------------------------------------------------------------------
// Encoder-forecaster

TEST(ConvLSTMEncoderForecasterTest, ShapesAndComposition) {
  torch::manual_seed(8);
  ConvLSTMEncoderForecaster model(ConvLSTMEncoderForecasterOptions(2, {4, 3}, {{3, 3}, {5, 3}}));
  const torch::Tensor frames = torch::randn({2, 3, 2, 6, 7});
  for (int64_t future : {1, 4}) {
    EXPECT_EQ(model(frames, future).sizes(), torch::IntArrayRef({2, future, 2, 6, 7}));
  }
  // The forecaster starts from the encoder's final states and reads zeros; the output is the
  // 1x1 convolution of every forecaster layer's h, concatenated.
  const torch::Tensor logits = model(frames, 2);
  const ConvLSTMOutput encoded = model->encoder(frames);
  const ConvLSTMOutput forecast =
      model->forecaster(torch::zeros({2, 2, 2, 6, 7}), encoded.final_states);
  for (int64_t t = 0; t < 2; ++t) {
    const torch::Tensor hidden = torch::cat(
        {forecast.outputs[0].select(1, t), forecast.outputs[1].select(1, t)}, 1);  // (B, 7, H, W)
    const torch::Tensor expected =
        torch::einsum("oc,bchw->bohw", {model->output_conv->weight.flatten(1), hidden}) +
        model->output_conv->bias.view({1, 2, 1, 1});
    EXPECT_TRUE(Close(logits.select(1, t), expected, 1e-5, 1e-6)) << "step " << t;
  }
  // The forecast depends on the input frames only through the copied states.
  EXPECT_FALSE(torch::allclose(model(frames + 1, 2), logits));
}

TEST(ConvLSTMEncoderForecasterTest, GradientsReachEveryParameter) {
  torch::manual_seed(9);
  ConvLSTMEncoderForecaster model(ConvLSTMEncoderForecasterOptions(1, {3, 4}, {{3, 3}}));
  const torch::Tensor frames = torch::rand({2, 3, 1, 6, 6});
  const torch::Tensor target = torch::rand({2, 2, 1, 6, 6}).round();
  torch::nn::functional::binary_cross_entropy_with_logits(model(frames, 2), target).backward();
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
  }
  // As documented: the forecaster's first layer multiplies zeros with its input slice.
  const torch::Tensor first = model->forecaster->cell_list[0]->as<ConvLSTMCell>()->conv->weight;
  EXPECT_EQ(first.grad().narrow(1, 0, 1).abs().sum().item<double>(), 0);
  EXPECT_GT(first.grad().narrow(1, 1, 3).abs().sum().item<double>(), 0);
}

// Two 2x2 squares moving diagonally over 8x8 frames, 6 steps each: (2, 6, 1, 8, 8).
torch::Tensor moving_squares() {
  torch::Tensor frames = torch::zeros({2, 6, 1, 8, 8});
  for (int64_t t = 0; t < 6; ++t) {
    frames[0][t][0].narrow(0, t, 2).narrow(1, t, 2).fill_(1);          // down-right
    frames[1][t][0].narrow(0, 1 + t, 2).narrow(1, 5 - t, 2).fill_(1);  // down-left
  }
  return frames;
}

TEST(ConvLSTMEncoderForecasterTest, OverfitsOneBatch) {
  torch::manual_seed(10);
  const torch::Tensor frames = moving_squares();
  const torch::Tensor input = frames.narrow(1, 0, 3), target = frames.narrow(1, 3, 3);
  ConvLSTMEncoderForecaster model(ConvLSTMEncoderForecasterOptions(1, {8, 8}, {{5, 5}}));
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(2e-2));
  const auto start = std::chrono::steady_clock::now();
  double first_loss = 0, loss_value = 0;
  for (int step = 0; step < 120; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss =
        torch::nn::functional::binary_cross_entropy_with_logits(model(input, 3), target);
    loss.backward();
    optimizer.step();
    loss_value = loss.item<double>();
    if (step == 0) first_loss = loss_value;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(loss_value, 0.05) << "first loss " << first_loss;
  EXPECT_LT(seconds, 2.0);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal((model(input, 3) > 0).to(torch::kFloat), target));
}

// ---------------------------------------------------------------------------------------------
// Printing and errors

TEST(ConvRecurrentTest, PrettyPrint) {
  EXPECT_EQ(printed(*ConvLSTMCell(ConvLSTMCellOptions(3, 8, {3, 3}))),
            "ConvLSTMCell(input_size=3, hidden_size=8, kernel_size=[3, 3], bias=true)");
  EXPECT_EQ(printed(*ConvGRUCell(ConvGRUCellOptions(3, 8, {5, 1}).bias(false))),
            "ConvGRUCell(input_size=3, hidden_size=8, kernel_size=[5, 1], bias=false)");
  EXPECT_EQ(printed(*ConvGRU(ConvGRUOptions(1, {4}, {{3, 5}}).num_layers(2))),
            "ConvGRU(input_size=1, hidden_sizes=[4], kernel_sizes=[[3, 5]], num_layers=2, "
            "bias=true, return_all_layers=false)");
  ConvLSTMEncoderForecaster model(ConvLSTMEncoderForecasterOptions(1, {8, 8}, {{3, 3}}));
  EXPECT_EQ(printed(*model),
            "ConvLSTMEncoderForecaster(input_size=1, hidden_sizes=[8, 8], kernel_sizes=[[3, 3]], "
            "num_layers=2, bias=true)");
  std::ostringstream tree;
  tree << *model;
  EXPECT_TRUE(Contains(tree.str(), "(encoder): ConvLSTM(input_size=1, hidden_sizes=[8, 8]"));
  EXPECT_TRUE(Contains(tree.str(),
                       "(0): ConvLSTMCell(input_size=1, hidden_size=8, kernel_size=[3, 3], "
                       "bias=true)"));
}

TEST(ConvRecurrentTest, BadOptionsThrow) {
  EXPECT_THROW_WITH(ConvLSTMCell(ConvLSTMCellOptions(3, 8, {4, 3})),
                    "ConvLSTMCell: kernel_size must be odd and positive, so that padding "
                    "(kh/2, kw/2) keeps H and W; got [4, 3]");
  EXPECT_THROW_WITH(ConvGRUCell(ConvGRUCellOptions(3, 8, {3, 2})),
                    "ConvGRUCell: kernel_size must be odd and positive");
  EXPECT_THROW_WITH(ConvLSTMCell(ConvLSTMCellOptions(0, 8, {3, 3})),
                    "ConvLSTMCell: input_size must be positive, got 0");
  EXPECT_THROW_WITH(ConvGRUCell(ConvGRUCellOptions(3, 0, {3, 3})),
                    "ConvGRUCell: hidden_size must be positive, got 0");
  EXPECT_THROW_WITH(ConvLSTM(ConvLSTMOptions(3, {8, 6}, {{3, 3}, {3, 4}})),
                    "ConvLSTM: kernel_sizes[1] must be odd and positive, so that padding "
                    "(kh/2, kw/2) keeps H and W; got [3, 4]");
  EXPECT_THROW_WITH(ConvGRU(ConvGRUOptions(3, {8, 6}, {{0, 3}})),
                    "ConvGRU: kernel_sizes[0] must be odd and positive");
  EXPECT_THROW_WITH(ConvLSTM(ConvLSTMOptions(3, {8, 6}, {{3, 3}, {3, 3}, {3, 3}})),
                    "ConvLSTM: kernel_sizes has 3 entries, expected num_layers=2 (or 1, shared "
                    "by every layer)");
  EXPECT_THROW_WITH(ConvGRU(ConvGRUOptions(3, {8, 6}, {{3, 3}}).num_layers(3)),
                    "ConvGRU: hidden_sizes has 2 entries, expected num_layers=3");
  EXPECT_THROW_WITH(ConvLSTM(ConvLSTMOptions(3, {}, {{3, 3}})),
                    "ConvLSTM: num_layers must be positive, got 0");
  EXPECT_THROW_WITH(ConvLSTM(ConvLSTMOptions(3, {8, 0}, {{3, 3}})),
                    "ConvLSTM: hidden_sizes[1] must be positive, got 0");
  EXPECT_THROW_WITH(
      ConvLSTMEncoderForecaster(ConvLSTMEncoderForecasterOptions(1, {8}, {{3, 3}, {5, 5}})),
      "ConvLSTMEncoderForecaster: kernel_sizes has 2 entries, expected num_layers=1");
  EXPECT_THROW_WITH(ConvLSTMEncoderForecaster(ConvLSTMEncoderForecasterOptions(1, {8}, {{2, 2}})),
                    "ConvLSTMEncoderForecaster: kernel_sizes[0] must be odd and positive");
}

TEST(ConvRecurrentTest, BadInputThrows) {
  ConvLSTM lstm(ConvLSTMOptions(3, {8, 6}, {{3, 3}, {5, 3}}));
  ConvGRU gru(ConvGRUOptions(3, {8, 6}, {{3, 3}, {5, 3}}));
  const torch::Tensor x = torch::randn({2, 4, 3, 7, 9});
  // Rank, channels, empty sequences.
  EXPECT_THROW_WITH(lstm(torch::randn({2, 3, 7, 9})),
                    "ConvLSTM: expected input of shape (B, T, input_size=3, H, W), got 4-D input "
                    "of shape [2, 3, 7, 9]");
  EXPECT_THROW_WITH(gru(torch::randn({2, 4, 2, 7, 9})),
                    "ConvGRU: expected input of shape (B, T, input_size=3, H, W), got 2 channels "
                    "in input of shape [2, 4, 2, 7, 9]");
  EXPECT_THROW_WITH(lstm(torch::randn({2, 0, 3, 7, 9})),
                    "ConvLSTM: expected input with at least one time step, got T=0 in input of "
                    "shape [2, 0, 3, 7, 9]");
  EXPECT_THROW_WITH(gru(torch::randn({2, 0, 3, 7, 9})), "ConvGRU: expected input with at least");
  // Initial states: count and shapes.
  EXPECT_THROW_WITH(lstm->forward(x, {{torch::zeros({2, 8, 7, 9}), torch::zeros({2, 8, 7, 9})}}),
                    "ConvLSTM: expected no initial states or one per layer (num_layers=2), got 1");
  const std::vector<ConvLSTMState> wrong_c = {
      {torch::zeros({2, 8, 7, 9}), torch::zeros({2, 8, 7, 9})},
      {torch::zeros({2, 6, 7, 9}), torch::zeros({2, 6, 9, 7})}};
  EXPECT_THROW_WITH(lstm(x, wrong_c),
                    "ConvLSTM: initial_states[1].c: expected shape [2, 6, 7, 9] (B, hidden_size, "
                    "H, W), got [2, 6, 9, 7]");
  EXPECT_THROW_WITH(gru->forward(x, {torch::zeros({2, 6, 7, 9}), torch::zeros({2, 6, 7, 9})}),
                    "ConvGRU: initial_states[0]: expected shape [2, 8, 7, 9] (B, hidden_size, H, "
                    "W), got [2, 6, 7, 9]");
  EXPECT_THROW_WITH(gru->forward(x, {torch::zeros({2, 8, 7, 9}), torch::Tensor()}),
                    "ConvGRU: initial_states[1]: expected a tensor of shape [2, 6, 7, 9]");
  // Cells.
  ConvLSTMCell lstm_cell(ConvLSTMCellOptions(3, 8, {3, 3}));
  EXPECT_THROW_WITH(lstm_cell(x),
                    "ConvLSTMCell: expected input of shape (B, input_size=3, H, W), got [2, 4, 3, "
                    "7, 9]");
  EXPECT_THROW_WITH(
      lstm_cell(x[0], ConvLSTMState{torch::zeros({4, 8, 7, 9}), torch::zeros({4, 8, 7, 1})}),
      "ConvLSTMCell: c: expected shape [4, 8, 7, 9] (B, hidden_size, H, W), got [4, 8, 7, 1]");
  EXPECT_THROW_WITH(
      lstm_cell(x[0], ConvLSTMState{torch::zeros({4, 3, 7, 9}), torch::zeros({4, 8, 7, 9})}),
      "ConvLSTMCell: h: expected shape [4, 8, 7, 9] (B, hidden_size, H, W), got "
      "[4, 3, 7, 9]");
  ConvGRUCell gru_cell(ConvGRUCellOptions(3, 8, {3, 3}));
  EXPECT_THROW_WITH(gru_cell(x[0].narrow(1, 0, 2)),
                    "ConvGRUCell: expected input of shape (B, input_size=3, H, W), got [4, 2, 7, "
                    "9]");
  EXPECT_THROW_WITH(gru_cell(x[0], torch::zeros({4, 8, 7, 8})),
                    "ConvGRUCell: h: expected shape [4, 8, 7, 9] (B, hidden_size, H, W), got [4, "
                    "8, 7, 8]");
  // Encoder-forecaster.
  ConvLSTMEncoderForecaster model(ConvLSTMEncoderForecasterOptions(1, {4}, {{3, 3}}));
  EXPECT_THROW_WITH(model(torch::zeros({2, 3, 8, 8}), 2),
                    "ConvLSTMEncoderForecaster: expected frames of shape (B, T, input_size=1, H, "
                    "W), got 4-D frames of shape [2, 3, 8, 8]");
  EXPECT_THROW_WITH(model(torch::zeros({2, 3, 3, 8, 8}), 2),
                    "ConvLSTMEncoderForecaster: expected frames of shape (B, T, input_size=1, H, "
                    "W), got 3 channels in frames of shape [2, 3, 3, 8, 8]");
  EXPECT_THROW_WITH(model(torch::zeros({2, 0, 1, 8, 8}), 2),
                    "ConvLSTMEncoderForecaster: expected frames with at least one time step, got "
                    "T=0");
  EXPECT_THROW_WITH(model(torch::zeros({2, 3, 1, 8, 8}), 0),
                    "ConvLSTMEncoderForecaster: future must be positive, got 0");
}

}  // namespace
}  // namespace nlpkit
