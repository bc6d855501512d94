// Benchmarks of the recurrent family (modules/recurrent.h, modules/language_model.h,
// modules/conv_recurrent.h), the C++ half of tools/bench/run_recurrent.sh. Three benchmarks:
//
//   nlpkit_bench recurrent lstm [--threads 2] [--warmup 3] [--steps 20] [shape options]
//     nlpkit's LSTM ("fused" and "cells") against torch::nn::LSTM, forward + backward, with and
//     without lengths, in one process: interleaved blocks of steps, same input and weights.
//   nlpkit_bench recurrent lm --write-data FILE [model/data options]
//   nlpkit_bench recurrent lm --data FILE [--threads 2] [--warmup 3] [--steps 20]
//     RecurrentLanguageModel training (truncated BPTT); the PyTorch eager half is
//     tools/bench/recurrent_bench.py, which reads the same token stream and initial weights.
//   nlpkit_bench recurrent convlstm --write-data FILE | --data FILE  (likewise)
//     ConvLSTMEncoderForecaster training on frame sequences.
//
// A training step is what trainers/trainer.cpp does: release_gradients, forward, loss, loss.item(),
// backward, clip_grad_norm_ (always: the trainer logs the norm), optimizer step (built by
// make_optimizer). Each run prints one JSON line on stdout.
#include "tools/bench/recurrent_bench.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "modules/conv_recurrent.h"
#include "modules/language_model.h"
#include "modules/recurrent.h"
#include "trainers/optim.h"
#include "trainers/safetensors.h"

namespace {

using torch::Tensor;

// Every option of every benchmark; each benchmark accepts only its own (see kUsage).
struct Args {
  std::string bench;       // lstm, lm or convlstm
  std::string data;        // lm, convlstm: read data and weights from here
  std::string write_data;  // lm, convlstm: generate, write here, exit
  std::string profile;     // write a chrome://tracing profile of the timed steps here
  int64_t threads = 2;
  int64_t warmup = 3;
  int64_t steps = 20;
  uint64_t seed = 42;
  // lstm
  int64_t block = 5;  // timed steps per implementation in a row before switching
  int64_t batch_size = 32;
  int64_t seq_len = 50;
  int64_t input_size = 128;
  int64_t hidden_size = 256;
  int64_t num_layers = 2;
  // lm (configs/lstm_lm.yaml)
  int64_t vocab_size = 10000;
  int64_t embedding_dim = 200;
  int64_t bptt = 35;
  double dropout = 0.3;
  bool tie_embeddings = true;
  int64_t num_batches = 8;
  std::string optimizer = "adamw";
  double lr = 0.003;
  double weight_decay = 0.01;
  double clip_grad_norm = 0.5;
  // convlstm (Moving MNIST's frames, a small model)
  int64_t frames_in = 10;
  int64_t frames_out = 10;
  int64_t channels = 1;
  int64_t height = 64;
  int64_t width = 64;
  std::vector<int64_t> hidden_sizes = {16, 16};
  int64_t kernel_size = 3;
};

const char* const kUsage =
    "usage: nlpkit_bench recurrent lstm [--threads N] [--warmup N] [--steps N] [--block N]\n"
    "           [--seed N] [--batch-size N] [--seq-len N] [--input-size N] [--hidden-size N]\n"
    "           [--num-layers N] [--profile TRACE.json]\n"
    "       nlpkit_bench recurrent lm --write-data FILE [--seed N] [--vocab-size N]\n"
    "           [--embedding-dim N] [--hidden-size N] [--num-layers N] [--dropout X]\n"
    "           [--tie-embeddings 0|1] [--batch-size N] [--bptt N] [--num-batches N]\n"
    "           [--optimizer adamw|adam|sgd] [--lr X] [--weight-decay X] [--clip-grad-norm X]\n"
    "       nlpkit_bench recurrent convlstm --write-data FILE [--seed N] [--batch-size N]\n"
    "           [--frames-in N] [--frames-out N] [--channels N] [--height N] [--width N]\n"
    "           [--hidden-sizes 16,16] [--kernel-size N] [--num-batches N]\n"
    "           [--optimizer adam|adamw|sgd] [--lr X] [--weight-decay X] [--clip-grad-norm X]\n"
    "       nlpkit_bench recurrent lm|convlstm --data FILE [--threads N] [--warmup N]\n"
    "           [--steps N] [--profile TRACE.json]\n";

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) values.push_back(std::stoll(item));
  if (values.empty()) throw std::invalid_argument("empty list");
  return values;
}

std::string join(const std::vector<int64_t>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out;
}

using Setter = std::function<void(const std::string&)>;

// The options `bench` accepts.
std::map<std::string, Setter> options_of(const std::string& bench, Args& a) {
  std::map<std::string, Setter> o = {
      {"--threads", [&](const std::string& v) { a.threads = std::stoll(v); }},
      {"--warmup", [&](const std::string& v) { a.warmup = std::stoll(v); }},
      {"--steps", [&](const std::string& v) { a.steps = std::stoll(v); }},
      {"--profile", [&](const std::string& v) { a.profile = v; }},
      {"--seed", [&](const std::string& v) { a.seed = std::stoull(v); }},
      {"--batch-size", [&](const std::string& v) { a.batch_size = std::stoll(v); }},
  };
  auto add = [&](const char* flag, Setter set) { o.emplace(flag, std::move(set)); };
  if (bench == "lstm") {
    add("--block", [&](const std::string& v) { a.block = std::stoll(v); });
    add("--seq-len", [&](const std::string& v) { a.seq_len = std::stoll(v); });
    add("--input-size", [&](const std::string& v) { a.input_size = std::stoll(v); });
  } else {
    add("--data", [&](const std::string& v) { a.data = v; });
    add("--write-data", [&](const std::string& v) { a.write_data = v; });
    add("--num-batches", [&](const std::string& v) { a.num_batches = std::stoll(v); });
    add("--optimizer", [&](const std::string& v) { a.optimizer = v; });
    add("--lr", [&](const std::string& v) { a.lr = std::stod(v); });
    add("--weight-decay", [&](const std::string& v) { a.weight_decay = std::stod(v); });
    add("--clip-grad-norm", [&](const std::string& v) { a.clip_grad_norm = std::stod(v); });
  }
  if (bench == "lstm" || bench == "lm") {
    add("--hidden-size", [&](const std::string& v) { a.hidden_size = std::stoll(v); });
    add("--num-layers", [&](const std::string& v) { a.num_layers = std::stoll(v); });
  }
  if (bench == "lm") {
    add("--vocab-size", [&](const std::string& v) { a.vocab_size = std::stoll(v); });
    add("--embedding-dim", [&](const std::string& v) { a.embedding_dim = std::stoll(v); });
    add("--dropout", [&](const std::string& v) { a.dropout = std::stod(v); });
    add("--tie-embeddings", [&](const std::string& v) { a.tie_embeddings = std::stoi(v) != 0; });
    add("--bptt", [&](const std::string& v) { a.bptt = std::stoll(v); });
  }
  if (bench == "convlstm") {
    add("--frames-in", [&](const std::string& v) { a.frames_in = std::stoll(v); });
    add("--frames-out", [&](const std::string& v) { a.frames_out = std::stoll(v); });
    add("--channels", [&](const std::string& v) { a.channels = std::stoll(v); });
    add("--height", [&](const std::string& v) { a.height = std::stoll(v); });
    add("--width", [&](const std::string& v) { a.width = std::stoll(v); });
    add("--hidden-sizes", [&](const std::string& v) { a.hidden_sizes = parse_list(v); });
    add("--kernel-size", [&](const std::string& v) { a.kernel_size = std::stoll(v); });
  }
  return o;
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc >= 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::cout << kUsage;
    std::exit(0);
  }
  if (argc < 2) throw std::invalid_argument("expected a benchmark: lstm, lm or convlstm");
  a.bench = argv[1];
  if (a.bench != "lstm" && a.bench != "lm" && a.bench != "convlstm") {
    throw std::invalid_argument("unknown benchmark '" + a.bench + "' (lstm, lm or convlstm)");
  }
  if (a.bench == "convlstm") {  // configs/convlstm_moving_mnist.yaml's optimizer
    a.batch_size = 4;
    a.num_batches = 4;
    a.optimizer = "adam";
    a.lr = 0.002;
    a.weight_decay = 0.0;
    a.clip_grad_norm = 1.0;
  } else if (a.bench == "lm") {  // configs/lstm_lm.yaml
    a.batch_size = 32;
    a.hidden_size = 200;
  }
  const std::map<std::string, Setter> options = options_of(a.bench, a);
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto it = options.find(flag);
    if (it == options.end()) {
      throw std::invalid_argument("unknown option for " + a.bench + ": " + flag);
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    try {
      it->second(value);
    } catch (const std::logic_error&) {
      throw std::invalid_argument(flag + ": bad value '" + value + "'");
    }
  }
  if (a.bench != "lstm" && a.data.empty() == a.write_data.empty()) {
    throw std::invalid_argument(a.bench + " needs one of --data FILE and --write-data FILE");
  }
  const bool positive = a.threads > 0 && a.warmup >= 0 && a.steps > 0 && a.block > 0 &&
                        a.batch_size > 0 && a.seq_len > 0 && a.input_size > 0 &&
                        a.hidden_size > 0 && a.num_layers > 0 && a.vocab_size > 1 &&
                        a.embedding_dim > 0 && a.bptt > 0 && a.num_batches > 0 && a.frames_in > 0 &&
                        a.frames_out > 0 && a.channels > 0 && a.height > 0 && a.width > 0 &&
                        a.kernel_size % 2 == 1;
  if (!positive) throw std::invalid_argument("counts must be positive, kernel-size odd");
  if (a.optimizer != "sgd" && a.optimizer != "adam" && a.optimizer != "adamw") {
    throw std::invalid_argument("--optimizer: adamw, adam or sgd, got '" + a.optimizer + "'");
  }
  return a;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

double mean(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return (a - b).abs().max().item<double>(); }

// ---------------------------------------------------------------------------------------------
// lstm: the module alone, forward + backward

// One implementation under test: `step` runs forward and backward once and returns what the
// correctness check compares (output, then the gradients of the input and of every weight).
struct Contender {
  std::string name;
  std::function<std::vector<Tensor>()> step;
  std::vector<double> ms;
};

int run_lstm(const Args& a) {
  torch::manual_seed(static_cast<int64_t>(a.seed));
  const int64_t b = a.batch_size, t = a.seq_len;
  nlpkit::LSTM fused(nlpkit::LSTMOptions(a.input_size, a.hidden_size).num_layers(a.num_layers));
  nlpkit::LSTM cells(nlpkit::LSTMOptions(a.input_size, a.hidden_size)
                         .num_layers(a.num_layers)
                         .implementation("cells"));
  torch::nn::LSTM reference(torch::nn::LSTMOptions(a.input_size, a.hidden_size)
                                .num_layers(a.num_layers)
                                .batch_first(true));
  {  // one set of weights for all three (the names are PyTorch's on every side)
    torch::NoGradGuard no_grad;
    const auto source = fused->named_parameters();
    for (auto& p : cells->named_parameters()) p.value().copy_(source[p.key()]);
    for (auto& p : reference->named_parameters()) p.value().copy_(source[p.key()]);
  }
  const Tensor x = torch::randn({b, t, a.input_size}).requires_grad_();  // (B, T, I)
  const Tensor grad_output = torch::randn({b, t, a.hidden_size});        // (B, T, H)
  // Unsorted lengths, uniform in [1, T], the longest T (so the output keeps T steps).
  Tensor lengths = torch::randint(1, t + 1, {b}, torch::kLong);
  lengths[b / 2] = t;
  const double real_tokens = static_cast<double>(lengths.sum().item<int64_t>());

  auto backward = [&](torch::nn::Module& module, const Tensor& output) {
    x.mutable_grad().reset();
    for (auto& p : module.parameters()) p.mutable_grad().reset();
    (output * grad_output).sum().backward();
    std::vector<Tensor> result = {output.detach(), x.grad()};
    for (auto& p : module.named_parameters()) result.push_back(p.value().grad());
    return result;
  };
  auto ours = [&](nlpkit::LSTM lstm, bool with_lengths) {
    return [&, lstm, with_lengths]() mutable {
      const nlpkit::RecurrentOutput out =
          lstm->forward(x, with_lengths ? lengths : Tensor());  // (B, T, H)
      return backward(*lstm, out.output);
    };
  };
  auto theirs = [&](bool with_lengths) {
    return [&, with_lengths] {
      Tensor output;
      if (with_lengths) {  // what a torch::nn::LSTM user writes for a padded batch
        namespace rnn = torch::nn::utils::rnn;
        const rnn::PackedSequence packed =
            rnn::pack_padded_sequence(x, lengths, /*batch_first=*/true, /*enforce_sorted=*/false);
        const auto out = reference->forward_with_packed_input(packed);
        output = std::get<0>(rnn::pad_packed_sequence(std::get<0>(out), /*batch_first=*/true,
                                                      /*padding_value=*/0.0,
                                                      /*total_length=*/t));
      } else {
        output = std::get<0>(reference->forward(x));
      }
      return backward(*reference, output);
    };
  };
  std::vector<Contender> contenders = {
      {"torch", theirs(false)},
      {"nlpkit_fused", ours(fused, false)},
      {"nlpkit_cells", ours(cells, false)},
      {"torch_lengths", theirs(true)},
      {"nlpkit_fused_lengths", ours(fused, true)},
      {"nlpkit_cells_lengths", ours(cells, true)},
  };

  torch::set_num_threads(static_cast<int>(a.threads));
  // The same numbers first: outputs and every gradient against torch::nn::LSTM's.
  nlohmann::json max_diff;
  std::map<std::string, std::vector<Tensor>> results;
  for (auto& c : contenders) results[c.name] = c.step();
  for (const auto& c : contenders) {
    const bool with_lengths = c.name.find("lengths") != std::string::npos;
    const std::vector<Tensor>& want = results[with_lengths ? "torch_lengths" : "torch"];
    double diff = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      diff = std::max(diff, max_abs_diff(results[c.name][i], want[i]));
    }
    max_diff[c.name] = diff;
  }

  for (auto& c : contenders) {
    for (int64_t i = 0; i < a.warmup; ++i) c.step();
  }
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profiler;
  if (!a.profile.empty()) {
    profiler = std::make_unique<torch::autograd::profiler::RecordProfile>(a.profile);
  }
  // Interleaved blocks, so that a change in the machine's load hits every contender alike. Each
  // block starts with an untimed step: the first step after another contender pays for the
  // memory that one handed back to the kernel (page faults), more so after the cells loop.
  for (int64_t done = 0; done < a.steps; done += a.block) {
    for (auto& c : contenders) {
      c.step();
      for (int64_t i = done; i < std::min(a.steps, done + a.block); ++i) {
        const double start = now_ms();
        c.step();
        c.ms.push_back(now_ms() - start);
      }
    }
  }
  profiler.reset();

  nlohmann::json impls;
  for (const auto& c : contenders) {
    const bool with_lengths = c.name.find("lengths") != std::string::npos;
    const double tokens = with_lengths ? real_tokens : static_cast<double>(b * t);
    impls[c.name] = {{"median_step_ms", median(c.ms)},
                     {"mean_step_ms", mean(c.ms)},
                     {"tokens_per_s", 1000.0 * tokens / median(c.ms)},
                     {"max_abs_diff_vs_torch", max_diff[c.name]}};
  }
  const nlohmann::json result = {{"bench", "lstm"},
                                 {"impl", "nlpkit"},
                                 {"threads", a.threads},
                                 {"warmup", a.warmup},
                                 {"steps", a.steps},
                                 {"shape",
                                  {{"batch_size", b},
                                   {"seq_len", t},
                                   {"input_size", a.input_size},
                                   {"hidden_size", a.hidden_size},
                                   {"num_layers", a.num_layers},
                                   {"real_tokens_with_lengths", real_tokens}}},
                                 {"results", impls}};
  std::cout << result.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Shared by lm and convlstm: data files and the training loop

std::map<std::string, std::string> training_metadata(const Args& a) {
  return {{"bench", a.bench},
          {"seed", std::to_string(a.seed)},
          {"batch_size", std::to_string(a.batch_size)},
          {"num_batches", std::to_string(a.num_batches)},
          {"optimizer", a.optimizer},
          {"lr", std::to_string(a.lr)},
          {"weight_decay", std::to_string(a.weight_decay)},
          {"clip_grad_norm", std::to_string(a.clip_grad_norm)}};
}

// Reads a data file: the metadata into `a` (through `read_meta`), the model's initial state
// (tensors named "model.*") into `model`, and returns the other tensors by name.
std::map<std::string, Tensor> read_data(
    Args& a,
    const std::function<torch::nn::Module&(const std::function<std::string(const std::string&)>&)>&
        make_model) {
  nlpkit::SafetensorsFile file = nlpkit::load_safetensors(a.data);
  auto meta = [&](const std::string& key) {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) {
      throw std::runtime_error(a.data + ": metadata has no '" + key + "'");
    }
    return it->second;
  };
  if (meta("bench") != a.bench) {
    throw std::runtime_error(a.data + ": written for the " + meta("bench") + " benchmark, not " +
                             a.bench);
  }
  a.seed = std::stoull(meta("seed"));
  a.batch_size = std::stoll(meta("batch_size"));
  a.num_batches = std::stoll(meta("num_batches"));
  a.optimizer = meta("optimizer");
  a.lr = std::stod(meta("lr"));
  a.weight_decay = std::stod(meta("weight_decay"));
  a.clip_grad_norm = std::stod(meta("clip_grad_norm"));
  torch::nn::Module& model = make_model(meta);
  nlpkit::NamedTensors state;
  std::map<std::string, Tensor> rest;
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind("model.", 0) == 0) {
      state.emplace_back(name.substr(6), tensor);
    } else {
      rest[name] = tensor;
    }
  }
  nlpkit::load_module_state(model, state, a.data);
  return rest;
}

void write_data(const Args& a, const torch::nn::Module& model, nlpkit::NamedTensors data,
                std::map<std::string, std::string> metadata) {
  nlpkit::NamedTensors tensors;
  for (const auto& [name, tensor] : nlpkit::module_state(model)) {
    tensors.emplace_back("model." + name, tensor);
  }
  for (auto& entry : data) tensors.push_back(std::move(entry));
  for (const auto& [key, value] : training_metadata(a)) metadata[key] = value;
  nlpkit::save_safetensors(a.write_data, tensors, metadata);
}

// Trains `steps` steps as Trainer::fit does and prints the JSON result. `loss_of(step)` runs the
// forward pass of one batch and returns the loss.
int train(const Args& a, torch::nn::Module& model, const std::function<Tensor(int64_t)>& loss_of,
          const std::string& unit, double units_per_step) {
  nlpkit::OptimizerConfig config;
  config.type = a.optimizer;
  config.lr = a.lr;
  config.weight_decay = a.weight_decay;
  std::unique_ptr<torch::optim::Optimizer> optimizer = nlpkit::make_optimizer(model, config);
  const std::vector<Tensor> params = model.parameters();
  const double max_norm = a.clip_grad_norm > 0 ? a.clip_grad_norm : INFINITY;

  torch::manual_seed(static_cast<int64_t>(a.seed));  // dropout masks as on the Python side
  model.train();
  std::vector<double> losses, step_ms;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profiler;
  for (int64_t step = 0; step < a.warmup + a.steps; ++step) {
    if (step == a.warmup && !a.profile.empty()) {
      profiler = std::make_unique<torch::autograd::profiler::RecordProfile>(a.profile);
    }
    const double start = now_ms();
    nlpkit::release_gradients(*optimizer);
    Tensor loss = loss_of(step);
    losses.push_back(loss.item<double>());
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, max_norm);
    optimizer->step();
    if (step >= a.warmup) step_ms.push_back(now_ms() - start);
  }
  profiler.reset();
  const double total_ms = std::accumulate(step_ms.begin(), step_ms.end(), 0.0);
  const nlohmann::json result = {{"bench", a.bench},
                                 {"impl", "nlpkit"},
                                 {"threads", a.threads},
                                 {"warmup", a.warmup},
                                 {"steps", a.steps},
                                 {unit + "_per_s", 1000.0 * units_per_step * a.steps / total_ms},
                                 {"ms_per_step", total_ms / a.steps},
                                 {"median_step_ms", median(step_ms)},
                                 {"losses", losses}};
  std::cout << result.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// lm: RecurrentLanguageModel, truncated BPTT with carried state

nlpkit::RecurrentLMOptions lm_options(const Args& a) {
  return nlpkit::RecurrentLMOptions(a.vocab_size)
      .cell("lstm")
      .embedding_dim(a.embedding_dim)
      .hidden_size(a.hidden_size)
      .num_layers(a.num_layers)
      .dropout(a.dropout)
      .tie_embeddings(a.tie_embeddings);
}

int run_lm(Args& a) {
  if (!a.write_data.empty()) {
    torch::manual_seed(static_cast<int64_t>(a.seed));
    nlpkit::RecurrentLanguageModel model(lm_options(a));
    // A token stream of B rows, each num_batches * bptt + 1 long (the batchify layout of the
    // language_model task, batch first); ids log-uniform over [0, V) (Zipf-like).
    std::mt19937_64 rng(a.seed);
    const int64_t length = a.num_batches * a.bptt + 1;
    Tensor tokens = torch::empty({a.batch_size, length}, torch::kLong);
    int64_t* id = tokens.data_ptr<int64_t>();
    const double log_range = std::log(static_cast<double>(a.vocab_size));
    for (int64_t i = 0; i < tokens.numel(); ++i) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      id[i] =
          std::min<int64_t>(a.vocab_size - 1, static_cast<int64_t>(std::exp(u * log_range)) - 1);
    }
    write_data(a, *model, {{"tokens", tokens}},
               {{"vocab_size", std::to_string(a.vocab_size)},
                {"embedding_dim", std::to_string(a.embedding_dim)},
                {"hidden_size", std::to_string(a.hidden_size)},
                {"num_layers", std::to_string(a.num_layers)},
                {"dropout", std::to_string(a.dropout)},
                {"tie_embeddings", a.tie_embeddings ? "1" : "0"},
                {"bptt", std::to_string(a.bptt)}});
    std::cerr << "wrote " << a.write_data << "\n";
    return 0;
  }
  torch::set_num_threads(static_cast<int>(a.threads));
  nlpkit::RecurrentLanguageModel model{nullptr};
  const std::map<std::string, Tensor> data =
      read_data(a, [&](const auto& meta) -> torch::nn::Module& {
        a.vocab_size = std::stoll(meta("vocab_size"));
        a.embedding_dim = std::stoll(meta("embedding_dim"));
        a.hidden_size = std::stoll(meta("hidden_size"));
        a.num_layers = std::stoll(meta("num_layers"));
        a.dropout = std::stod(meta("dropout"));
        a.tie_embeddings = meta("tie_embeddings") == "1";
        a.bptt = std::stoll(meta("bptt"));
        model = nlpkit::RecurrentLanguageModel(lm_options(a));
        return *model;
      });
  const Tensor tokens = data.at("tokens");  // (B, num_batches * bptt + 1)
  Tensor h, c;
  // The language_model task's train_step: each pass over the stream starts from zeros, and the
  // state is carried from window to window without its graph.
  auto loss_of = [&](int64_t step) {
    const int64_t n = step % a.num_batches;
    if (n == 0) h = c = Tensor();
    const Tensor x = tokens.narrow(1, n * a.bptt, a.bptt);      // (B, bptt)
    const Tensor y = tokens.narrow(1, n * a.bptt + 1, a.bptt);  // (B, bptt)
    nlpkit::LMOutput out = model->forward(x, h, c);
    h = out.h_n.detach();
    c = out.c_n.detach();
    return torch::nn::functional::cross_entropy(out.logits.reshape({-1, a.vocab_size}),
                                                y.reshape({-1}));
  };
  return train(a, *model, loss_of, "tokens", static_cast<double>(a.batch_size * a.bptt));
}

// ---------------------------------------------------------------------------------------------
// convlstm: ConvLSTMEncoderForecaster, binary cross-entropy on the predicted frames

nlpkit::ConvLSTMEncoderForecasterOptions convlstm_options(const Args& a) {
  return nlpkit::ConvLSTMEncoderForecasterOptions(a.channels, a.hidden_sizes,
                                                  {{a.kernel_size, a.kernel_size}});
}

// Squares of 8-16 pixels moving in straight lines and bouncing off the edges, one to three per
// sequence, on a black background (Moving MNIST's kind of motion; the compute does not depend
// on the content, only the losses do).
Tensor moving_squares(const Args& a, std::mt19937_64& rng) {
  const int64_t t = a.frames_in + a.frames_out;
  Tensor frames = torch::zeros({a.batch_size, t, a.channels, a.height, a.width});
  auto uniform = [&](int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  for (int64_t b = 0; b < a.batch_size; ++b) {
    for (int64_t k = uniform(1, 3); k > 0; --k) {
      const int64_t size = std::min({uniform(8, 16), a.height, a.width});
      int64_t y = uniform(0, a.height - size), x = uniform(0, a.width - size);
      int64_t dy = uniform(-3, 3), dx = uniform(-3, 3);
      for (int64_t s = 0; s < t; ++s) {
        frames[b][s].narrow(1, y, size).narrow(2, x, size).fill_(1.0);
        if (y + dy < 0 || y + dy > a.height - size) dy = -dy;
        if (x + dx < 0 || x + dx > a.width - size) dx = -dx;
        y += dy;
        x += dx;
      }
    }
  }
  return frames;  // (B, T_in + T_out, C, H, W)
}

int run_convlstm(Args& a) {
  if (!a.write_data.empty()) {
    torch::manual_seed(static_cast<int64_t>(a.seed));
    nlpkit::ConvLSTMEncoderForecaster model(convlstm_options(a));
    std::mt19937_64 rng(a.seed);
    nlpkit::NamedTensors batches;
    for (int64_t n = 0; n < a.num_batches; ++n) {
      batches.emplace_back("batch." + std::to_string(n), moving_squares(a, rng));
    }
    write_data(a, *model, std::move(batches),
               {{"frames_in", std::to_string(a.frames_in)},
                {"frames_out", std::to_string(a.frames_out)},
                {"channels", std::to_string(a.channels)},
                {"hidden_sizes", join(a.hidden_sizes)},
                {"kernel_size", std::to_string(a.kernel_size)}});
    std::cerr << "wrote " << a.write_data << "\n";
    return 0;
  }
  torch::set_num_threads(static_cast<int>(a.threads));
  nlpkit::ConvLSTMEncoderForecaster model{nullptr};
  const std::map<std::string, Tensor> data =
      read_data(a, [&](const auto& meta) -> torch::nn::Module& {
        a.frames_in = std::stoll(meta("frames_in"));
        a.frames_out = std::stoll(meta("frames_out"));
        a.channels = std::stoll(meta("channels"));
        a.hidden_sizes = parse_list(meta("hidden_sizes"));
        a.kernel_size = std::stoll(meta("kernel_size"));
        model = nlpkit::ConvLSTMEncoderForecaster(convlstm_options(a));
        return *model;
      });
  auto loss_of = [&](int64_t step) {
    const Tensor& frames = data.at("batch." + std::to_string(step % a.num_batches));
    const Tensor logits = model->forward(frames.narrow(1, 0, a.frames_in), a.frames_out);
    return torch::binary_cross_entropy_with_logits(logits,
                                                   frames.narrow(1, a.frames_in, a.frames_out));
  };
  const double frames_per_step = static_cast<double>(a.batch_size * (a.frames_in + a.frames_out));
  return train(a, *model, loss_of, "frames", frames_per_step);
}

int run(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.bench == "lstm") return run_lstm(a);
  if (a.bench == "lm") return run_lm(a);
  return run_convlstm(a);
}

}  // namespace

namespace nlpkit::bench {

int recurrent_main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "nlpkit_bench recurrent: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nlpkit_bench recurrent: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace nlpkit::bench
