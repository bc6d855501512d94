#include "modules/recurrent.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

using torch::Tensor;

enum class Kind { kRNNTanh, kRNNReLU, kLSTM, kGRU };

std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::kRNNTanh:
      return "RNNTanh";
    case Kind::kRNNReLU:
      return "RNNReLU";
    case Kind::kLSTM:
      return "LSTM";
    case Kind::kGRU:
      return "GRU";
  }
  return "?";
}

int64_t gates(Kind kind) { return kind == Kind::kLSTM ? 4 : kind == Kind::kGRU ? 3 : 1; }

void expect_close(const Tensor& actual, const Tensor& expected, const std::string& what,
                  double tol = 1e-5) {
  ASSERT_EQ(actual.defined(), expected.defined()) << what;
  if (!actual.defined()) return;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  EXPECT_TRUE(torch::allclose(actual, expected, tol, tol))
      << what << ": max abs difference " << (actual - expected).abs().max().item<double>();
}

// Copies parameters by name; the two modules must have exactly the same names and shapes.
void copy_parameters(const torch::nn::Module& from, torch::nn::Module& to) {
  ASSERT_EQ(parameter_keys(from), parameter_keys(to));
  torch::NoGradGuard no_grad;
  auto target = to.named_parameters();
  for (const auto& item : from.named_parameters()) target[item.key()].copy_(item.value());
}

// A stack behind one signature: ours (any implementation) or torch::nn's.
struct Runner {
  std::shared_ptr<torch::nn::Module> module;
  std::function<RecurrentOutput(const Tensor& x, const Tensor& lengths, const Tensor& h0,
                                const Tensor& c0)>
      forward;
};

struct StackSpec {
  Kind kind = Kind::kLSTM;
  int64_t input_size = 4;
  int64_t hidden_size = 5;
  int64_t num_layers = 1;
  bool bidirectional = false;
  bool batch_first = true;
  double dropout = 0.0;
  std::string implementation = "fused";
};

Runner make_ours(const StackSpec& s) {
  switch (s.kind) {
    case Kind::kLSTM: {
      LSTM m(LSTMOptions(s.input_size, s.hidden_size)
                 .num_layers(s.num_layers)
                 .bidirectional(s.bidirectional)
                 .batch_first(s.batch_first)
                 .dropout(s.dropout)
                 .implementation(s.implementation));
      return {m.ptr(), [m](const Tensor& x, const Tensor& l, const Tensor& h,
                           const Tensor& c) mutable { return m->forward(x, l, h, c); }};
    }
    case Kind::kGRU: {
      GRU m(GRUOptions(s.input_size, s.hidden_size)
                .num_layers(s.num_layers)
                .bidirectional(s.bidirectional)
                .batch_first(s.batch_first)
                .dropout(s.dropout)
                .implementation(s.implementation));
      return {m.ptr(), [m](const Tensor& x, const Tensor& l, const Tensor& h,
                           const Tensor&) mutable { return m->forward(x, l, h); }};
    }
    case Kind::kRNNTanh:
    case Kind::kRNNReLU:
      break;
  }
  RNN m(RNNOptions(s.input_size, s.hidden_size)
            .num_layers(s.num_layers)
            .nonlinearity(s.kind == Kind::kRNNTanh ? "tanh" : "relu")
            .bidirectional(s.bidirectional)
            .batch_first(s.batch_first)
            .dropout(s.dropout)
            .implementation(s.implementation));
  return {m.ptr(), [m](const Tensor& x, const Tensor& l, const Tensor& h, const Tensor&) mutable {
            return m->forward(x, l, h);
          }};
}

// torch::nn's module; with lengths it runs on pack_padded_sequence(enforce_sorted=false) and
// pads back to T, as a LibTorch user would.
Runner make_reference(const StackSpec& s) {
  namespace rnn = torch::nn::utils::rnn;
  const bool batch_first = s.batch_first;
  auto pack = [batch_first](const Tensor& x, const Tensor& lengths) {
    return rnn::pack_padded_sequence(x, lengths, batch_first, /*enforce_sorted=*/false);
  };
  auto unpack = [batch_first](const rnn::PackedSequence& packed, const Tensor& x) {
    return std::get<0>(
        rnn::pad_packed_sequence(packed, batch_first, 0.0, x.size(batch_first ? 1 : 0)));
  };
  if (s.kind == Kind::kLSTM) {
    torch::nn::LSTM m(torch::nn::LSTMOptions(s.input_size, s.hidden_size)
                          .num_layers(s.num_layers)
                          .bidirectional(s.bidirectional)
                          .batch_first(batch_first)
                          .dropout(s.dropout));
    return {m.ptr(),
            [=](const Tensor& x, const Tensor& l, const Tensor& h, const Tensor& c) mutable {
              torch::optional<std::tuple<Tensor, Tensor>> hx;
              if (h.defined()) hx = std::make_tuple(h, c);
              if (!l.defined()) {
                auto [out, state] = m->forward(x, hx);
                return RecurrentOutput{out, std::get<0>(state), std::get<1>(state)};
              }
              auto [out, state] = m->forward_with_packed_input(pack(x, l), hx);
              return RecurrentOutput{unpack(out, x), std::get<0>(state), std::get<1>(state)};
            }};
  }
  if (s.kind == Kind::kGRU) {
    torch::nn::GRU m(torch::nn::GRUOptions(s.input_size, s.hidden_size)
                         .num_layers(s.num_layers)
                         .bidirectional(s.bidirectional)
                         .batch_first(batch_first)
                         .dropout(s.dropout));
    return {m.ptr(), [=](const Tensor& x, const Tensor& l, const Tensor& h, const Tensor&) mutable {
              if (!l.defined()) {
                auto [out, h_n] = m->forward(x, h);
                return RecurrentOutput{out, h_n, Tensor()};
              }
              auto [out, h_n] = m->forward_with_packed_input(pack(x, l), h);
              return RecurrentOutput{unpack(out, x), h_n, Tensor()};
            }};
  }
  torch::nn::RNNOptions options(s.input_size, s.hidden_size);
  options.num_layers(s.num_layers)
      .bidirectional(s.bidirectional)
      .batch_first(batch_first)
      .dropout(s.dropout);
  if (s.kind == Kind::kRNNReLU) options.nonlinearity(torch::kReLU);
  torch::nn::RNN m(options);
  return {m.ptr(), [=](const Tensor& x, const Tensor& l, const Tensor& h, const Tensor&) mutable {
            if (!l.defined()) {
              auto [out, h_n] = m->forward(x, h);
              return RecurrentOutput{out, h_n, Tensor()};
            }
            auto [out, h_n] = m->forward_with_packed_input(pack(x, l), h);
            return RecurrentOutput{unpack(out, x), h_n, Tensor()};
          }};
}

// Forward values and the gradients of a fixed random projection of every output.
struct Result {
  Tensor output, h_n, c_n, grad_input, grad_h0, grad_c0;
  std::map<std::string, Tensor> grad_params;
};

Result run_with_gradients(const Runner& runner, const Tensor& x, const Tensor& lengths,
                          const Tensor& h0, const Tensor& c0, const Tensor& w_out,
                          const Tensor& w_state) {
  for (auto& p : runner.module->parameters()) p.mutable_grad() = Tensor();
  const Tensor xg = x.detach().requires_grad_(true);
  const Tensor hg = h0.defined() ? h0.detach().requires_grad_(true) : Tensor();
  const Tensor cg = c0.defined() ? c0.detach().requires_grad_(true) : Tensor();
  RecurrentOutput out = runner.forward(xg, lengths, hg, cg);
  Tensor loss = (out.output * w_out).sum() + (out.h_n * w_state).sum();
  if (out.c_n.defined()) loss = loss + (out.c_n * w_state * 0.5).sum();
  loss.backward();
  Result r{out.output.detach(),
           out.h_n.detach(),
           out.c_n.defined() ? out.c_n.detach() : Tensor(),
           xg.grad(),
           hg.defined() ? hg.grad() : Tensor(),
           cg.defined() ? cg.grad() : Tensor(),
           {}};
  for (const auto& item : runner.module->named_parameters()) {
    r.grad_params[item.key()] = item.value().grad();
  }
  return r;
}

void expect_same_results(const Result& actual, const Result& expected, const std::string& who) {
  expect_close(actual.output, expected.output, who + " output");
  expect_close(actual.h_n, expected.h_n, who + " h_n");
  expect_close(actual.c_n, expected.c_n, who + " c_n");
  expect_close(actual.grad_input, expected.grad_input, who + " d input");
  expect_close(actual.grad_h0, expected.grad_h0, who + " d h0");
  expect_close(actual.grad_c0, expected.grad_c0, who + " d c0");
  ASSERT_EQ(actual.grad_params.size(), expected.grad_params.size());
  for (const auto& [name, grad] : expected.grad_params) {
    ASSERT_TRUE(grad.defined()) << name;
    ASSERT_TRUE(actual.grad_params.at(name).defined()) << who << " " << name;
    EXPECT_GT(grad.abs().sum().item<double>(), 0) << name << " gets no gradient";
    expect_close(actual.grad_params.at(name), grad, who + " d " + name);
  }
}

// ---------------------------------------------------------------------------------------------
// Stacks: fused == cells == torch::nn, values and gradients

using ParityParam = std::tuple<Kind, int64_t /*layers*/, bool /*bidirectional*/, bool /*lengths*/,
                               bool /*h0*/, bool /*batch_first*/>;

class StackParityTest : public ::testing::TestWithParam<ParityParam> {};

TEST_P(StackParityTest, FusedAndCellsMatchLibTorch) {
  const auto [kind, layers, bidirectional, with_lengths, with_h0, batch_first] = GetParam();
  torch::manual_seed(0);
  StackSpec spec;
  spec.kind = kind;
  spec.num_layers = layers;
  spec.bidirectional = bidirectional;
  spec.batch_first = batch_first;
  Runner reference = make_reference(spec);
  Runner fused = make_ours(spec);
  spec.implementation = "cells";
  Runner cells = make_ours(spec);
  copy_parameters(*reference.module, *fused.module);
  copy_parameters(*reference.module, *cells.module);

  const int64_t b = 3, t = 5, d = bidirectional ? 2 : 1, h = spec.hidden_size;
  const Tensor x = batch_first ? torch::randn({b, t, 4}) : torch::randn({t, b, 4});
  // Unsorted, with the longest shorter than T: padding at the end of every sequence.
  const Tensor lengths = with_lengths ? torch::tensor({4, 1, 3}, torch::kLong) : Tensor();
  const Tensor h0 = with_h0 ? torch::randn({layers * d, b, h}) : Tensor();
  const Tensor c0 = with_h0 && kind == Kind::kLSTM ? torch::randn({layers * d, b, h}) : Tensor();
  const Tensor w_out = torch::randn(batch_first ? std::vector<int64_t>{b, t, d * h}
                                                : std::vector<int64_t>{t, b, d * h});
  const Tensor w_state = torch::randn({layers * d, b, h});

  const Result expected = run_with_gradients(reference, x, lengths, h0, c0, w_out, w_state);
  const Result from_fused = run_with_gradients(fused, x, lengths, h0, c0, w_out, w_state);
  const Result from_cells = run_with_gradients(cells, x, lengths, h0, c0, w_out, w_state);
  expect_same_results(from_fused, expected, "fused");
  expect_same_results(from_cells, expected, "cells");
  EXPECT_EQ(from_fused.c_n.defined(), kind == Kind::kLSTM);
}

std::string parity_name(const ::testing::TestParamInfo<ParityParam>& info) {
  const auto [kind, layers, bidirectional, with_lengths, with_h0, batch_first] = info.param;
  return kind_name(kind) + "_" + std::to_string(layers) + "layers" +
         (bidirectional ? "_bidirectional" : "") + (with_lengths ? "_lengths" : "") +
         (with_h0 ? "_h0" : "") + (batch_first ? "" : "_time_major");
}

INSTANTIATE_TEST_SUITE_P(
    AllStacks, StackParityTest,
    ::testing::Combine(::testing::Values(Kind::kRNNTanh, Kind::kRNNReLU, Kind::kLSTM, Kind::kGRU),
                       ::testing::Values(1, 3), ::testing::Bool(), ::testing::Bool(),
                       ::testing::Bool(), ::testing::Bool()),
    parity_name);

// ---------------------------------------------------------------------------------------------
// Variable lengths, independently of LibTorch

class StackLengthsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StackLengthsTest, EachSequenceAsIfAlone) {
  torch::manual_seed(1);
  LSTM lstm(LSTMOptions(4, 5).num_layers(2).bidirectional(true).implementation(GetParam()));
  const std::vector<int64_t> lengths = {5, 2, 4};
  Tensor x = torch::randn({3, 5, 4});
  RecurrentOutput batch = lstm(x, torch::tensor(lengths, torch::kLong));
  // Garbage past each end changes nothing.
  Tensor noisy = x.clone();
  for (int64_t i = 0; i < 3; ++i) {
    noisy[i].narrow(0, lengths[i], 5 - lengths[i]).fill_(1e3);
  }
  RecurrentOutput noisy_batch = lstm(noisy, torch::tensor(lengths, torch::kLong));
  EXPECT_TRUE(torch::equal(batch.output, noisy_batch.output));
  EXPECT_TRUE(torch::equal(batch.h_n, noisy_batch.h_n));
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t n = lengths[i];
    RecurrentOutput alone = lstm(x[i].narrow(0, 0, n).unsqueeze(0));
    expect_close(batch.output[i].narrow(0, 0, n), alone.output[0], "output " + std::to_string(i));
    EXPECT_TRUE(torch::equal(batch.output[i].narrow(0, n, 5 - n), torch::zeros({5 - n, 10})))
        << "outputs past the end of sequence " << i << " must be zero";
    expect_close(batch.h_n.select(1, i), alone.h_n.select(1, 0), "h_n " + std::to_string(i));
    expect_close(batch.c_n.select(1, i), alone.c_n.select(1, 0), "c_n " + std::to_string(i));
  }
  // The forward direction's final state is its output at the last valid step, the reverse
  // direction's is its output at step 0 (last layer: h_n rows 2 and 3).
  for (int64_t i = 0; i < 3; ++i) {
    expect_close(batch.h_n[2][i], batch.output[i][lengths[i] - 1].narrow(0, 0, 5), "forward");
    expect_close(batch.h_n[3][i], batch.output[i][0].narrow(0, 5, 5), "reverse");
  }
}

TEST_P(StackLengthsTest, FullLengthsEqualNoLengths) {
  torch::manual_seed(2);
  GRU gru(GRUOptions(3, 4).bidirectional(true).implementation(GetParam()));
  const Tensor x = torch::randn({2, 6, 3});
  RecurrentOutput plain = gru(x);
  for (const Tensor& lengths :
       {torch::tensor({6, 6}, torch::kLong), torch::tensor({6, 6}, torch::kInt)}) {
    RecurrentOutput with_lengths = gru(x, lengths);
    expect_close(with_lengths.output, plain.output, "output");
    expect_close(with_lengths.h_n, plain.h_n, "h_n");
    EXPECT_FALSE(with_lengths.c_n.defined());
  }
}

TEST_P(StackLengthsTest, OutputShapes) {
  for (bool batch_first : {true, false}) {
    RNN rnn(RNNOptions(3, 4)
                .num_layers(2)
                .bidirectional(true)
                .batch_first(batch_first)
                .implementation(GetParam()));
    RecurrentOutput out = rnn(torch::randn({2, 7, 3}));  // (T=2, B=7) when time-major
    EXPECT_EQ(out.output.sizes(), torch::IntArrayRef({2, 7, 8}));
    EXPECT_EQ(out.h_n.sizes(), torch::IntArrayRef({4, batch_first ? 2 : 7, 4}));
    EXPECT_FALSE(out.c_n.defined());
  }
  LSTM lstm(LSTMOptions(3, 4).num_layers(3).implementation(GetParam()));
  RecurrentOutput out = lstm(torch::randn({2, 7, 3}), torch::tensor({7, 3}, torch::kLong));
  EXPECT_EQ(out.output.sizes(), torch::IntArrayRef({2, 7, 4}));
  EXPECT_EQ(out.h_n.sizes(), torch::IntArrayRef({3, 2, 4}));
  EXPECT_EQ(out.c_n.sizes(), torch::IntArrayRef({3, 2, 4}));
}

INSTANTIATE_TEST_SUITE_P(Implementations, StackLengthsTest, ::testing::Values("fused", "cells"));

// ---------------------------------------------------------------------------------------------
// Cells against torch::nn's cells

template <typename Ours, typename Theirs>
void expect_cell_parity(Ours ours, Theirs theirs, bool lstm) {
  copy_parameters(*theirs, *ours);
  const Tensor x0 = torch::randn({3, 4});
  const Tensor h_init = torch::randn({3, 6});
  const Tensor c_init = torch::randn({3, 6});
  const Tensor w = torch::randn({3, 6});
  auto run = [&](auto& module, auto step) {
    for (auto& p : module->parameters()) p.mutable_grad() = Tensor();
    Tensor x = x0.clone().requires_grad_(true);
    Tensor h = h_init.clone().requires_grad_(true);
    Tensor c = c_init.clone().requires_grad_(true);
    auto [h_next, c_next] = step(x, h, c);
    Tensor loss = (h_next * w).sum();
    if (lstm) loss = loss + (c_next * w * w).sum();
    loss.backward();
    std::vector<Tensor> all = {h_next.detach(), x.grad(), h.grad()};
    if (lstm) all.insert(all.end(), {c_next.detach(), c.grad()});
    for (auto& p : module->parameters()) all.push_back(p.grad());
    return all;
  };
  std::vector<Tensor> a, b;
  if constexpr (std::is_same_v<Ours, LSTMCell>) {
    a = run(ours, [&](const Tensor& x, const Tensor& h, const Tensor& c) {
      LSTMCellOutput out = ours(x, h, c);
      return std::make_tuple(out.h, out.c);
    });
    b = run(theirs, [&](const Tensor& x, const Tensor& h, const Tensor& c) {
      return theirs(x, std::make_tuple(h, c));
    });
    // Zero states by default, like LibTorch.
    LSTMCellOutput zero = ours(x0);
    auto [h_ref, c_ref] = theirs(x0);
    expect_close(zero.h, h_ref, "default h");
    expect_close(zero.c, c_ref, "default c");
  } else {
    a = run(ours, [&](const Tensor& x, const Tensor& h, const Tensor&) {
      return std::make_tuple(ours(x, h), Tensor());
    });
    b = run(theirs, [&](const Tensor& x, const Tensor& h, const Tensor&) {
      return std::make_tuple(theirs(x, h), Tensor());
    });
    expect_close(ours(x0), theirs(x0), "default h");
  }
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], "value " + std::to_string(i));
}

TEST(RecurrentCellTest, LSTMCellMatchesLibTorch) {
  torch::manual_seed(3);
  for (bool bias : {true, false}) {
    expect_cell_parity(LSTMCell(LSTMCellOptions(4, 6).bias(bias)),
                       torch::nn::LSTMCell(torch::nn::LSTMCellOptions(4, 6).bias(bias)), true);
  }
}

TEST(RecurrentCellTest, GRUCellMatchesLibTorch) {
  torch::manual_seed(4);
  for (bool bias : {true, false}) {
    expect_cell_parity(GRUCell(GRUCellOptions(4, 6).bias(bias)),
                       torch::nn::GRUCell(torch::nn::GRUCellOptions(4, 6).bias(bias)), false);
  }
}

TEST(RecurrentCellTest, RNNCellMatchesLibTorchWithTanhAndReLU) {
  torch::manual_seed(5);
  for (bool bias : {true, false}) {
    expect_cell_parity(RNNCell(RNNCellOptions(4, 6).bias(bias)),
                       torch::nn::RNNCell(torch::nn::RNNCellOptions(4, 6).bias(bias)), false);
    expect_cell_parity(
        RNNCell(RNNCellOptions(4, 6).bias(bias).nonlinearity("relu")),
        torch::nn::RNNCell(torch::nn::RNNCellOptions(4, 6).bias(bias).nonlinearity(torch::kReLU)),
        false);
  }
}

TEST(RecurrentCellTest, LSTMCellComputesTheTextbookEquations) {
  // One step written out with scalars: H = 1, I = 1, so every gate is a number.
  LSTMCell cell(LSTMCellOptions(1, 1));
  {
    torch::NoGradGuard no_grad;
    cell->weight_ih.copy_(torch::tensor({0.1, 0.2, 0.3, 0.4}).view({4, 1}));
    cell->weight_hh.copy_(torch::tensor({-0.5, 0.6, -0.7, 0.8}).view({4, 1}));
    cell->bias_ih.copy_(torch::tensor({0.01, 0.02, 0.03, 0.04}));
    cell->bias_hh.copy_(torch::tensor({0.05, 0.06, 0.07, 0.08}));
  }
  const double x = 1.5, h = -0.4, c = 0.9;
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  const double i = sigmoid(0.1 * x + 0.01 - 0.5 * h + 0.05);
  const double f = sigmoid(0.2 * x + 0.02 + 0.6 * h + 0.06);
  const double g = std::tanh(0.3 * x + 0.03 - 0.7 * h + 0.07);
  const double o = sigmoid(0.4 * x + 0.04 + 0.8 * h + 0.08);
  const double c_next = f * c + i * g;
  const double h_next = o * std::tanh(c_next);
  LSTMCellOutput out = cell(torch::full({1, 1}, x), torch::full({1, 1}, h), torch::full({1, 1}, c));
  EXPECT_NEAR(out.c.item<double>(), c_next, 1e-6);
  EXPECT_NEAR(out.h.item<double>(), h_next, 1e-6);
}

TEST(RecurrentCellTest, GRUCellFollowsPyTorchConventions) {
  // h' = (1 - z) * n + z * h with the reset gate on (W_hn h + b_hn).
  GRUCell cell(GRUCellOptions(1, 1));
  {
    torch::NoGradGuard no_grad;
    cell->weight_ih.copy_(torch::tensor({0.1, 0.2, 0.3}).view({3, 1}));
    cell->weight_hh.copy_(torch::tensor({-0.5, 0.6, -0.7}).view({3, 1}));
    cell->bias_ih.copy_(torch::tensor({0.01, 0.02, 0.03}));
    cell->bias_hh.copy_(torch::tensor({0.05, 0.06, 0.07}));
  }
  const double x = 1.5, h = -0.4;
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  const double r = sigmoid(0.1 * x + 0.01 - 0.5 * h + 0.05);
  const double z = sigmoid(0.2 * x + 0.02 + 0.6 * h + 0.06);
  const double n = std::tanh(0.3 * x + 0.03 + r * (-0.7 * h + 0.07));
  EXPECT_NEAR(cell(torch::full({1, 1}, x), torch::full({1, 1}, h)).item<double>(),
              (1 - z) * n + z * h, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// Parameter names, checkpoints, initialisation

TEST(RecurrentTest, StateDictKeysAreLibTorchs) {
  LSTM lstm(LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  const std::vector<std::string> expected = {
      "weight_ih_l0",         "weight_hh_l0",         "bias_ih_l0",         "bias_hh_l0",
      "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse",
      "weight_ih_l1",         "weight_hh_l1",         "bias_ih_l1",         "bias_hh_l1",
      "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
  EXPECT_EQ(parameter_keys(*lstm), expected);
  EXPECT_EQ(lstm->named_parameters()["weight_ih_l1_reverse"].sizes(), torch::IntArrayRef({16, 8}));
  EXPECT_TRUE(lstm->named_buffers().is_empty());

  // Every kind, with and without bias: same names and shapes as torch::nn's modules.
  for (Kind kind : {Kind::kRNNTanh, Kind::kLSTM, Kind::kGRU}) {
    for (bool bias : {true, false}) {
      std::shared_ptr<torch::nn::Module> ours, theirs;
      if (kind == Kind::kLSTM) {
        ours = LSTM(LSTMOptions(3, 4).num_layers(3).bidirectional(true).bias(bias)).ptr();
        theirs = torch::nn::LSTM(
                     torch::nn::LSTMOptions(3, 4).num_layers(3).bidirectional(true).bias(bias))
                     .ptr();
      } else if (kind == Kind::kGRU) {
        ours = GRU(GRUOptions(3, 4).num_layers(3).bidirectional(true).bias(bias)).ptr();
        theirs =
            torch::nn::GRU(torch::nn::GRUOptions(3, 4).num_layers(3).bidirectional(true).bias(bias))
                .ptr();
      } else {
        ours = RNN(RNNOptions(3, 4).num_layers(3).bidirectional(true).bias(bias)).ptr();
        theirs =
            torch::nn::RNN(torch::nn::RNNOptions(3, 4).num_layers(3).bidirectional(true).bias(bias))
                .ptr();
      }
      ASSERT_EQ(parameter_keys(*ours), parameter_keys(*theirs)) << kind_name(kind) << " bias=" << bias;
      for (const auto& item : theirs->named_parameters()) {
        EXPECT_EQ(ours->named_parameters()[item.key()].sizes(), item.value().sizes());
      }
    }
  }
  EXPECT_EQ(parameter_keys(*LSTMCell(3, 4)),
            (std::vector<std::string>{"weight_ih", "weight_hh", "bias_ih", "bias_hh"}));
  EXPECT_EQ(parameter_keys(*LSTMCell(3, 4)), parameter_keys(*torch::nn::LSTMCell(3, 4)));
  EXPECT_EQ(parameter_keys(*GRUCell(GRUCellOptions(3, 4).bias(false))),
            parameter_keys(*torch::nn::GRUCell(torch::nn::GRUCellOptions(3, 4).bias(false))));
  EXPECT_EQ(parameter_keys(*RNNCell(RNNCellOptions(3, 4))), parameter_keys(*torch::nn::RNNCell(3, 4)));
}

class RecurrentCheckpointTest : public TempDirTest {};

TEST_F(RecurrentCheckpointTest, LibTorchCheckpointsLoadBothWays) {
  torch::manual_seed(6);
  torch::nn::LSTM theirs(
      torch::nn::LSTMOptions(3, 4).num_layers(2).bidirectional(true).batch_first(true));
  const std::string path = (dir_ / "lstm.pt").string();
  torch::save(theirs, path);
  LSTM ours(LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  torch::load(ours, path);
  for (const auto& item : theirs->named_parameters()) {
    EXPECT_TRUE(torch::equal(ours->named_parameters()[item.key()], item.value())) << item.key();
  }
  const Tensor x = torch::randn({2, 3, 3});
  expect_close(ours(x).output, std::get<0>(theirs(x)), "output after loading");

  LSTM trained(LSTMOptions(3, 4).num_layers(2).bidirectional(true).forget_bias(1.0));
  const std::string back = (dir_ / "ours.pt").string();
  torch::save(trained, back);
  torch::load(theirs, back);
  expect_close(std::get<0>(theirs(x)), trained(x).output, "output in LibTorch");
}

TEST(RecurrentTest, DefaultInitIsLibTorchsForTheSameSeed) {
  torch::manual_seed(7);
  torch::nn::LSTM lstm_theirs(torch::nn::LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  torch::manual_seed(7);
  LSTM lstm_ours(LSTMOptions(3, 4).num_layers(2).bidirectional(true));
  torch::manual_seed(8);
  torch::nn::GRUCell cell_theirs(3, 5);
  torch::manual_seed(8);
  GRUCell cell_ours(GRUCellOptions(3, 5));
  const std::vector<std::pair<torch::nn::Module*, torch::nn::Module*>> pairs = {
      {lstm_ours.get(), lstm_theirs.get()}, {cell_ours.get(), cell_theirs.get()}};
  for (const auto& [ours, theirs] : pairs) {
    auto mine = ours->named_parameters();
    for (const auto& item : theirs->named_parameters()) {
      EXPECT_TRUE(torch::equal(mine[item.key()], item.value())) << item.key();
    }
  }
  // U(-1/sqrt(H), 1/sqrt(H)) with H = 4: bound 0.5, and the draws spread over it.
  for (const auto& p : lstm_ours->parameters()) {
    EXPECT_LE(p.abs().max().item<double>(), 0.5);
    EXPECT_GT(p.abs().max().item<double>(), 0.3);
  }
}

TEST(RecurrentTest, ForgetBiasSetsTheForgetGateBlock) {
  torch::manual_seed(9);
  const int64_t h = 5;
  LSTM lstm(LSTMOptions(3, h).num_layers(2).bidirectional(true).forget_bias(1.0));
  int checked = 0;
  for (const auto& item : lstm->named_parameters()) {
    const Tensor& p = item.value();
    if (item.key().rfind("bias_", 0) != 0) continue;
    const float expected = item.key().rfind("bias_ih", 0) == 0 ? 1.0f : 0.0f;
    EXPECT_TRUE(torch::equal(p.narrow(0, h, h), torch::full({h}, expected))) << item.key();
    // The input, cell and output gates keep PyTorch's init.
    for (int64_t gate : {0, 2, 3}) {
      const Tensor block = p.narrow(0, gate * h, h);
      EXPECT_GT(block.abs().sum().item<double>(), 0) << item.key() << " gate " << gate;
      EXPECT_LE(block.abs().max().item<double>(), 1 / std::sqrt(5.0)) << item.key();
    }
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  // Effect: with zero weights and inputs the forget gate is sigmoid(1), the others sigmoid(b).
  LSTMCell cell(LSTMCellOptions(2, h).forget_bias(2.0));
  {
    torch::NoGradGuard no_grad;
    cell->weight_ih.zero_();
    cell->weight_hh.zero_();
  }
  EXPECT_TRUE(torch::equal(cell->bias_ih.narrow(0, h, h), torch::full({h}, 2.0f)));
  const Tensor c = torch::ones({1, h});
  LSTMCellOutput out = cell(torch::zeros({1, 2}), torch::zeros({1, h}), c);
  const Tensor i = torch::sigmoid(cell->bias_ih.narrow(0, 0, h) + cell->bias_hh.narrow(0, 0, h));
  const Tensor g =
      torch::tanh(cell->bias_ih.narrow(0, 2 * h, h) + cell->bias_hh.narrow(0, 2 * h, h));
  expect_close(out.c[0], torch::sigmoid(torch::tensor(2.0f)) * c[0] + i * g, "C_t");
  // Default: no override, every bias is PyTorch's uniform draw.
  LSTM plain(LSTMOptions(3, h));
  EXPECT_FALSE(
      torch::equal(plain->named_parameters()["bias_ih_l0"].narrow(0, h, h), torch::ones({h})));
}

TEST(RecurrentTest, OrthogonalInitMakesEachGateBlockOrthogonal) {
  torch::manual_seed(10);
  const int64_t h = 6;
  auto orthogonal_blocks = [h](const Tensor& w_hh, int64_t gate_count) {
    for (int64_t g = 0; g < gate_count; ++g) {
      const Tensor block = w_hh.narrow(0, g * h, h);
      if (!torch::allclose(torch::mm(block, block.t()), torch::eye(h), 1e-5, 1e-5)) return false;
    }
    return true;
  };
  for (Kind kind : {Kind::kRNNTanh, Kind::kLSTM, Kind::kGRU}) {
    for (bool orthogonal : {true, false}) {
      std::shared_ptr<torch::nn::Module> module;
      if (kind == Kind::kLSTM) {
        module =
            LSTM(LSTMOptions(3, h).num_layers(2).bidirectional(true).orthogonal_init(orthogonal))
                .ptr();
      } else if (kind == Kind::kGRU) {
        module = GRU(GRUOptions(3, h).num_layers(2).bidirectional(true).orthogonal_init(orthogonal))
                     .ptr();
      } else {
        module = RNN(RNNOptions(3, h).num_layers(2).bidirectional(true).orthogonal_init(orthogonal))
                     .ptr();
      }
      for (const auto& item : module->named_parameters()) {
        const bool recurrent = item.key().rfind("weight_hh", 0) == 0;
        if (recurrent) {
          EXPECT_EQ(orthogonal_blocks(item.value(), gates(kind)), orthogonal)
              << kind_name(kind) << " " << item.key();
        } else {  // input weights and biases keep PyTorch's uniform init
          EXPECT_LE(item.value().abs().max().item<double>(), 1 / std::sqrt(6.0)) << item.key();
        }
      }
    }
  }
  LSTMCell cell(LSTMCellOptions(3, h).orthogonal_init(true));
  EXPECT_TRUE(orthogonal_blocks(cell->weight_hh, 4));
  // Distinct blocks: not one orthogonal matrix repeated.
  EXPECT_FALSE(torch::equal(cell->weight_hh.narrow(0, 0, h), cell->weight_hh.narrow(0, h, h)));
}

// ---------------------------------------------------------------------------------------------
// Dropout, training, cloning

TEST(RecurrentTest, DropoutBetweenLayersOnlyInTraining) {
  for (const std::string implementation : {"fused", "cells"}) {
    SCOPED_TRACE(implementation);
    torch::manual_seed(11);
    LSTM dropped(LSTMOptions(4, 8).num_layers(3).dropout(0.5).implementation(implementation));
    LSTM plain(LSTMOptions(4, 8).num_layers(3).implementation(implementation));
    copy_parameters(*dropped, *plain);
    const Tensor x = torch::randn({2, 6, 4});
    const Tensor reference = plain(x).output;
    EXPECT_TRUE(torch::equal(plain(x).output, reference));  // deterministic in training too
    dropped->eval();
    EXPECT_TRUE(torch::equal(dropped(x).output, reference));
    dropped->train();
    const Tensor first = dropped(x).output;
    const Tensor second = dropped(x).output;
    EXPECT_FALSE(torch::allclose(first, reference, 1e-3, 1e-3));
    EXPECT_FALSE(torch::allclose(first, second, 1e-3, 1e-3));
    // One layer: nothing lies between layers, so dropout changes nothing.
    LSTM single(LSTMOptions(4, 8).dropout(0.5).implementation(implementation));
    const Tensor single_train = single(x).output;
    single->eval();
    EXPECT_TRUE(torch::equal(single(x).output, single_train));
  }
}

TEST(RecurrentTest, CloneCopiesParametersAndForwardAndAnyModuleWork) {
  torch::manual_seed(12);
  LSTM lstm(LSTMOptions(3, 4).num_layers(2).forget_bias(1.0));
  auto copy = std::dynamic_pointer_cast<LSTMImpl>(lstm->clone());
  ASSERT_TRUE(copy);
  const Tensor x = torch::randn({2, 5, 3});
  EXPECT_TRUE(torch::equal(copy->forward(x).output, lstm(x).output));
  {
    torch::NoGradGuard no_grad;
    copy->named_parameters()["weight_ih_l0"].add_(1);
  }
  EXPECT_FALSE(torch::equal(copy->forward(x).output, lstm(x).output));  // independent copies
  // The defaulted arguments work through AnyModule (FORWARD_HAS_DEFAULT_ARGS).
  torch::nn::AnyModule any(lstm);
  EXPECT_TRUE(torch::equal(any.forward<RecurrentOutput>(x).output, lstm(x).output));
}

TEST(RecurrentTest, OverfitsOneBatchQuickly) {
  // Remember the sign of the first of 8 inputs and report it at the end: needs the recurrence.
  for (const std::string implementation : {"fused", "cells"}) {
    SCOPED_TRACE(implementation);
    torch::manual_seed(13);
    LSTM lstm(LSTMOptions(1, 16).forget_bias(1.0).implementation(implementation));
    torch::nn::Linear head(16, 2);
    const Tensor x = torch::randn({16, 8, 1});
    const Tensor y = (x.select(1, 0).squeeze(1) > 0).to(torch::kLong);  // (16)
    std::vector<Tensor> params = lstm->parameters();
    for (const auto& p : head->parameters()) params.push_back(p);
    torch::optim::Adam optimizer(params, torch::optim::AdamOptions(0.03));
    const auto start = std::chrono::steady_clock::now();
    double loss_value = 0;
    for (int step = 0; step < 150; ++step) {
      optimizer.zero_grad();
      Tensor logits = head(lstm(x).h_n[0]);  // (16, 2)
      Tensor loss = torch::cross_entropy_loss(logits, y);
      loss.backward();
      optimizer.step();
      loss_value = loss.item<double>();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(loss_value, 0.05);
    Tensor predicted = head(lstm(x).h_n[0]).argmax(1);
    EXPECT_TRUE(torch::equal(predicted, y));
    EXPECT_LT(seconds, 2.0) << "150 steps on a (16, 8, 1) batch";  // ~0.1 s unloaded
  }
}

// ---------------------------------------------------------------------------------------------
// pretty_print

TEST(RecurrentTest, PrettyPrint) {
  EXPECT_EQ(printed(*LSTM(
                LSTMOptions(4, 8).num_layers(2).dropout(0.1).bidirectional(true).forget_bias(1.0))),
            "LSTM(input_size=4, hidden_size=8, num_layers=2, bias=true, batch_first=true, "
            "dropout=0.1, bidirectional=true, forget_bias=1, orthogonal_init=false, "
            "implementation=fused)");
  EXPECT_EQ(printed(*GRU(GRUOptions(3, 5).batch_first(false).implementation("cells"))),
            "GRU(input_size=3, hidden_size=5, num_layers=1, bias=true, batch_first=false, "
            "dropout=0, bidirectional=false, orthogonal_init=false, implementation=cells)");
  EXPECT_EQ(printed(*RNN(RNNOptions(3, 5).nonlinearity("relu").bias(false).orthogonal_init(true))),
            "RNN(input_size=3, hidden_size=5, num_layers=1, nonlinearity=relu, bias=false, "
            "batch_first=true, dropout=0, bidirectional=false, orthogonal_init=true, "
            "implementation=fused)");
  EXPECT_EQ(printed(*LSTMCell(LSTMCellOptions(4, 8).forget_bias(1.0))),
            "LSTMCell(input_size=4, hidden_size=8, bias=true, forget_bias=1, "
            "orthogonal_init=false)");
  EXPECT_EQ(printed(*GRUCell(GRUCellOptions(4, 8))),
            "GRUCell(input_size=4, hidden_size=8, bias=true, orthogonal_init=false)");
  EXPECT_EQ(printed(*RNNCell(RNNCellOptions(4, 8))),
            "RNNCell(input_size=4, hidden_size=8, nonlinearity=tanh, bias=true, "
            "orthogonal_init=false)");
}

// ---------------------------------------------------------------------------------------------
// Bad input and bad options

class RecurrentErrorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecurrentErrorTest, BadInputNamesModuleAndShapes) {
  LSTM lstm(LSTMOptions(4, 8).num_layers(2).implementation(GetParam()));
  const Tensor x = torch::randn({3, 5, 4});
  EXPECT_THROW_WITH(lstm(torch::randn({3, 4})),
                    "LSTM: expected input of shape (B, T, input_size=4), got [3, 4]");
  EXPECT_THROW_WITH(lstm(torch::randn({3, 5, 6})),
                    "LSTM: expected input of shape (B, T, input_size=4), got [3, 5, 6]");
  EXPECT_THROW_WITH(lstm(torch::randn({3, 0, 4})),
                    "LSTM: expected at least one time step in input of shape (B, T, "
                    "input_size=4), got [3, 0, 4] (T = 0)");
  EXPECT_THROW_WITH(lstm(torch::randn({0, 5, 4})),
                    "LSTM: expected at least one sequence in input of shape (B, T, "
                    "input_size=4), got [0, 5, 4] (B = 0)");
  EXPECT_THROW_WITH(lstm(x, torch::tensor({5, 0, 2}, torch::kLong)),
                    "LSTM: lengths must be in [1, T=5], got lengths[1] = 0");
  EXPECT_THROW_WITH(lstm(x, torch::tensor({6, 2, 2}, torch::kLong)),
                    "LSTM: lengths must be in [1, T=5], got lengths[0] = 6");
  EXPECT_THROW_WITH(lstm(x, torch::tensor({5, 2}, torch::kLong)),
                    "LSTM: expected lengths of shape (B=3), got [2]");
  EXPECT_THROW_WITH(lstm(x, torch::tensor({{5, 2, 1}}, torch::kLong)),
                    "LSTM: expected lengths of shape (B=3), got [1, 3]");
  EXPECT_THROW_WITH(lstm(x, torch::tensor({5.0, 2.0, 1.0}, torch::kFloat)),
                    "LSTM: expected int64 lengths, got Float");
  EXPECT_THROW_WITH(lstm(x, Tensor(), torch::zeros({1, 3, 8})),
                    "LSTM: expected h0 of shape (num_layers*num_directions=2, B=3, "
                    "hidden_size=8), got [1, 3, 8]");
  EXPECT_THROW_WITH(lstm(x, Tensor(), torch::zeros({2, 3, 8}), torch::zeros({2, 4, 8})),
                    "LSTM: expected c0 of shape (num_layers*num_directions=2, B=3, "
                    "hidden_size=8), got [2, 4, 8]");
  EXPECT_THROW_WITH(lstm(x, Tensor(), torch::zeros({2, 3})),
                    "LSTM: expected h0 of shape (num_layers*num_directions=2, B=3, "
                    "hidden_size=8), got [2, 3]");

  GRU gru(GRUOptions(4, 8).bidirectional(true).batch_first(false).implementation(GetParam()));
  EXPECT_THROW_WITH(gru(torch::randn({5, 3, 2})),
                    "GRU: expected input of shape (T, B, input_size=4), got [5, 3, 2]");
  EXPECT_THROW_WITH(gru(x.transpose(0, 1), Tensor(), torch::zeros({1, 3, 8})),
                    "GRU: expected h0 of shape (num_layers*num_directions=2, B=3, "
                    "hidden_size=8), got [1, 3, 8]");
  EXPECT_THROW_WITH(gru(x.transpose(0, 1), torch::tensor({1, 2, 3, 4, 5}, torch::kLong)),
                    "GRU: expected lengths of shape (B=3), got [5]");
  RNN rnn(RNNOptions(4, 8).implementation(GetParam()));
  EXPECT_THROW_WITH(rnn(x, torch::tensor({5, 2, 9}, torch::kLong)),
                    "RNN: lengths must be in [1, T=5], got lengths[2] = 9");
}

INSTANTIATE_TEST_SUITE_P(Implementations, RecurrentErrorTest, ::testing::Values("fused", "cells"));

TEST(RecurrentTest, BadCellInputNamesModuleAndShapes) {
  LSTMCell lstm(LSTMCellOptions(4, 8));
  EXPECT_THROW_WITH(lstm(torch::randn({4})),
                    "LSTMCell: expected input of shape (B, input_size=4), got [4]");
  EXPECT_THROW_WITH(lstm(torch::randn({2, 5})),
                    "LSTMCell: expected input of shape (B, input_size=4), got [2, 5]");
  EXPECT_THROW_WITH(lstm(torch::randn({2, 4}), torch::zeros({3, 8})),
                    "LSTMCell: expected h of shape (B=2, hidden_size=8), got [3, 8]");
  EXPECT_THROW_WITH(lstm(torch::randn({2, 4}), torch::zeros({2, 8}), torch::zeros({2, 7})),
                    "LSTMCell: expected c of shape (B=2, hidden_size=8), got [2, 7]");
  GRUCell gru(GRUCellOptions(4, 8));
  EXPECT_THROW_WITH(gru(torch::randn({2, 4}), torch::zeros({2, 8, 1})),
                    "GRUCell: expected h of shape (B=2, hidden_size=8), got [2, 8, 1]");
  RNNCell rnn(RNNCellOptions(4, 8));
  EXPECT_THROW_WITH(rnn(torch::randn({2, 3})),
                    "RNNCell: expected input of shape (B, input_size=4), got [2, 3]");
}

TEST(RecurrentTest, BadOptions) {
  EXPECT_THROW_WITH(LSTM(LSTMOptions(4, 0)), "LSTM: hidden_size must be positive, got 0");
  EXPECT_THROW_WITH(GRU(GRUOptions(0, 4)), "GRU: input_size must be positive, got 0");
  EXPECT_THROW_WITH(RNN(RNNOptions(4, 4).num_layers(0)), "RNN: num_layers must be positive, got 0");
  EXPECT_THROW_WITH(LSTM(LSTMOptions(4, 4).dropout(1.0)), "LSTM: dropout must be in [0, 1), got 1");
  EXPECT_THROW_WITH(LSTM(LSTMOptions(4, 4).implementation("cudnn")),
                    "LSTM: implementation must be \"fused\" or \"cells\", got \"cudnn\"");
  EXPECT_THROW_WITH(RNN(RNNOptions(4, 4).nonlinearity("sigmoid")),
                    "RNN: nonlinearity must be \"tanh\" or \"relu\", got \"sigmoid\"");
  EXPECT_THROW_WITH(RNNCell(RNNCellOptions(4, 4).nonlinearity("gelu")),
                    "RNNCell: nonlinearity must be \"tanh\" or \"relu\", got \"gelu\"");
  EXPECT_THROW_WITH(LSTM(LSTMOptions(4, 4).bias(false).forget_bias(1.0)),
                    "LSTM: forget_bias (1) needs bias=true");
  EXPECT_THROW_WITH(LSTMCell(LSTMCellOptions(4, 4).bias(false).forget_bias(1.0)),
                    "LSTMCell: forget_bias (1) needs bias=true");
  EXPECT_THROW_WITH(GRUCell(GRUCellOptions(4, -1)),
                    "GRUCell: hidden_size must be positive, got -1");
}

// ---------------------------------------------------------------------------------------------
// GPU: cuDNN behind the fused path

Result to_cpu(const Result& r) {
  auto cpu = [](const Tensor& t) { return t.defined() ? t.cpu() : t; };
  Result out{cpu(r.output),  cpu(r.h_n),     cpu(r.c_n), cpu(r.grad_input),
             cpu(r.grad_h0), cpu(r.grad_c0), {}};
  for (const auto& [name, grad] : r.grad_params) out.grad_params[name] = cpu(grad);
  return out;
}

TEST(RecurrentTest, FusedAndCellsMatchLibTorchOnGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  // Double precision: cuDNN may use TF32 for float, which the 1e-5 tolerance would not allow.
  torch::manual_seed(14);
  const torch::Device cuda(torch::kCUDA);
  StackSpec spec;
  spec.num_layers = 2;
  spec.bidirectional = true;
  Runner reference = make_reference(spec);  // on the CPU
  Runner fused = make_ours(spec);
  spec.implementation = "cells";
  Runner cells = make_ours(spec);
  reference.module->to(torch::kDouble);
  copy_parameters(*reference.module, *fused.module);
  copy_parameters(*reference.module, *cells.module);
  fused.module->to(cuda, torch::kDouble);
  cells.module->to(cuda, torch::kDouble);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  const Tensor x = torch::randn({3, 5, 4}, f64);
  const Tensor w_out = torch::randn({3, 5, 10}, f64);
  const Tensor w_state = torch::randn({4, 3, 5}, f64);
  const Tensor h0 = torch::randn({4, 3, 5}, f64);
  const Tensor c0 = torch::randn({4, 3, 5}, f64);
  const Tensor cpu_lengths = torch::tensor({4, 1, 5}, torch::kLong);
  for (const Tensor& lengths : {Tensor(), cpu_lengths, cpu_lengths.to(cuda)}) {
    SCOPED_TRACE(lengths.defined() ? lengths.device().str() : "no lengths");
    const Result expected = run_with_gradients(
        reference, x, lengths.defined() ? cpu_lengths : lengths, h0, c0, w_out, w_state);
    for (const Runner* ours : {&fused, &cells}) {
      expect_same_results(to_cpu(run_with_gradients(*ours, x.to(cuda), lengths, h0.to(cuda),
                                                    c0.to(cuda), w_out.to(cuda), w_state.to(cuda))),
                          expected, ours == &fused ? "fused" : "cells");
    }
  }
  // The first forward on the GPU put the weights into one cuDNN buffer, in place: the
  // registered parameters are views of it.
  auto* lstm = dynamic_cast<LSTMImpl*>(fused.module.get());
  ASSERT_NE(lstm, nullptr);
  const Tensor& first = lstm->flat_weights().front();
  for (const auto& item : lstm->named_parameters()) {
    EXPECT_TRUE(item.value().is_cuda()) << item.key();
    EXPECT_TRUE(item.value().is_alias_of(first)) << item.key();
  }
}

}  // namespace
}  // namespace nlpkit
