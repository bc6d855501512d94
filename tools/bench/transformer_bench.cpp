// Transformer benchmarks against PyTorch eager (tools/bench/transformer_bench.py), on the same
// weights, data, batch and threads:
// - train: training steps (teacher-forced cross-entropy, the trainer's Adam, dropout 0) in target+source
//   tokens per second, and the loss of every step (which the Python side must reproduce);
// - decode: beam search (beam 5) words per second, with the key/value cache and by
//   recomputing the prefix at every step, and whether both give the same hypotheses.
// --write-data draws the model (seeded) and the batches and writes them to one safetensors file:
// the weights under nlpkit's names, `data.src` (N, S), `data.tgt_in` and `data.tgt_out`
// (N, T+1), and the sizes in the metadata.
#include "tools/bench/transformer_bench.h"

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "modules/search.h"
#include "modules/transformer.h"
#include "tools/bench/bert_bench.h"
#include "trainers/optim.h"
#include "trainers/safetensors.h"

namespace nlpkit::bench {
namespace {

constexpr const char* kUsage = R"(usage:
  nlpkit_bench transformer --write-data FILE [--batch 32] [--src-len 12] [--tgt-len 10]
      [--vocab 48] [--hidden 256] [--heads 4] [--layers 3] [--ff 1024] [--batches 8] [--seed 1]
  nlpkit_bench transformer --data FILE [--mode train|decode] [--threads 2] [--warmup 2]
      [--steps 10] [--beam 5] [--profile TRACE.json]
)";

struct Args {
  std::string write_data, data, mode = "train";
  std::string profile;  // train: chrome://tracing profile of the timed steps, op table on stderr
  int64_t batch = 32, src_len = 12, tgt_len = 10, vocab = 48, hidden = 256, heads = 4, layers = 3,
          ff = 1024, batches = 8, seed = 1, threads = 2, warmup = 2, steps = 10, beam = 5;
};

Args parse_args(int argc, char** argv) {
  Args a;
  std::map<std::string, int64_t*> ints = {
      {"--batch", &a.batch},   {"--src-len", &a.src_len}, {"--tgt-len", &a.tgt_len},
      {"--vocab", &a.vocab},   {"--hidden", &a.hidden},   {"--heads", &a.heads},
      {"--layers", &a.layers}, {"--ff", &a.ff},           {"--batches", &a.batches},
      {"--seed", &a.seed},     {"--threads", &a.threads}, {"--warmup", &a.warmup},
      {"--steps", &a.steps},   {"--beam", &a.beam}};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") throw std::invalid_argument("help");
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--write-data") {
      a.write_data = value;
    } else if (flag == "--data") {
      a.data = value;
    } else if (flag == "--profile") {
      a.profile = value;
    } else if (flag == "--mode") {
      if (value != "train" && value != "decode") throw std::invalid_argument("--mode train|decode");
      a.mode = value;
    } else if (ints.count(flag)) {
      *ints[flag] = std::stoll(value);
    } else {
      throw std::invalid_argument("unknown option " + flag);
    }
  }
  if (a.write_data.empty() == a.data.empty()) {
    throw std::invalid_argument("give --write-data FILE or --data FILE");
  }
  return a;
}

// Token ids: 0 pad, 1 BOS, 2 EOS, 3.. symbols.
TransformerOptions options_from(const std::map<std::string, std::string>& m) {
  const auto get = [&](const char* key) { return std::stoll(m.at(key)); };
  return TransformerOptions(get("vocab"), get("vocab"))
      .hidden_size(get("hidden"))
      .num_heads(get("heads"))
      .num_encoder_layers(get("layers"))
      .num_decoder_layers(get("layers"))
      .intermediate_size(get("ff"))
      .dropout(0.0)
      .max_length(64);
}

int write_data(const Args& a) {
  std::map<std::string, std::string> meta = {
      {"vocab", std::to_string(a.vocab)}, {"hidden", std::to_string(a.hidden)},
      {"heads", std::to_string(a.heads)}, {"layers", std::to_string(a.layers)},
      {"ff", std::to_string(a.ff)},       {"batch", std::to_string(a.batch)}};
  torch::manual_seed(a.seed);
  Transformer model(options_from(meta));
  NamedTensors tensors = module_state(*model);
  const int64_t n = a.batch * a.batches;
  // Targets are a function of the source (reversed, then padded or cut), so that the loss falls.
  const torch::Tensor src = torch::randint(3, a.vocab, {n, a.src_len}, torch::kLong);
  torch::Tensor body = src.flip(1);
  if (a.tgt_len <= a.src_len) {
    body = body.slice(1, 0, a.tgt_len);
  } else {
    body =
        torch::cat({body, torch::randint(3, a.vocab, {n, a.tgt_len - a.src_len}, torch::kLong)}, 1);
  }
  const torch::Tensor tgt_in = torch::cat({torch::ones({n, 1}, torch::kLong), body}, 1);
  const torch::Tensor tgt_out = torch::cat({body, torch::full({n, 1}, 2, torch::kLong)}, 1);
  tensors.emplace_back("data.src", src);
  tensors.emplace_back("data.tgt_in", tgt_in);
  tensors.emplace_back("data.tgt_out", tgt_out);
  save_safetensors(a.write_data, tensors, meta);
  std::cerr << "wrote " << a.write_data << ": " << n << " examples in batches of " << a.batch
            << "\n";
  return 0;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Wall-clock seconds since the epoch: comparable between processes (the concurrent runs).
double unix_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int run(const Args& a) {
  torch::set_num_threads(static_cast<int>(a.threads));
  SafetensorsFile file = load_safetensors(a.data);
  Transformer model(options_from(file.metadata));
  const int64_t batch = std::stoll(file.metadata.at("batch"));
  NamedTensors weights;
  std::map<std::string, torch::Tensor> data;
  for (auto& [name, t] : file.tensors) {
    if (name.rfind("data.", 0) == 0) {
      data[name] = t;
    } else {
      weights.emplace_back(name, t);
    }
  }
  load_module_state(*model, weights, a.data);
  const int64_t batches = data["data.src"].size(0) / batch;
  nlohmann::json result = {{"side", "nlpkit"},   {"mode", a.mode},   {"threads", a.threads},
                           {"warmup", a.warmup}, {"steps", a.steps}, {"batch_size", batch}};
  if (a.mode == "train") {
    // The trainer's optimizer (optimizer.type adam: the one-pass FusedAdam), lr 1e-3.
    nlpkit::OptimizerConfig config;
    config.type = "adam";
    config.lr = 1e-3;
    config.weight_decay = 0.0;
    const std::unique_ptr<torch::optim::Optimizer> optimizer =
        nlpkit::make_optimizer(*model, config);
    std::vector<double> losses;
    std::vector<std::vector<double>> spans;  // [start, end] of each timed step, unix seconds
    double timed_ms = 0;
    int64_t tokens = 0;
    model->train();
    std::unique_ptr<torch::autograd::profiler::TLSLegacyProfilerGuard> profiler;
    for (int64_t step = 0; step < a.warmup + a.steps; ++step) {
      if (step == a.warmup && !a.profile.empty()) {
        profiler = std::make_unique<torch::autograd::profiler::TLSLegacyProfilerGuard>(
            torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU),
            [&](const torch::autograd::profiler::thread_event_lists& lists) {
              report_profile(lists, a.profile, a.steps);
            });
      }
      const int64_t b = step % batches;
      const torch::Tensor src = data["data.src"].slice(0, b * batch, (b + 1) * batch);
      const torch::Tensor tgt_in = data["data.tgt_in"].slice(0, b * batch, (b + 1) * batch);
      const torch::Tensor tgt_out = data["data.tgt_out"].slice(0, b * batch, (b + 1) * batch);
      const double start = now_ms(), start_unix = unix_s();
      nlpkit::release_gradients(*optimizer);
      const torch::Tensor logits = model(src, torch::Tensor(), tgt_in).logits;
      const torch::Tensor loss =
          torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), tgt_out.reshape(-1));
      loss.backward();
      optimizer->step();
      const double loss_value = loss.item<double>();
      if (step >= a.warmup) {
        timed_ms += now_ms() - start;
        tokens += src.numel() + tgt_out.numel();
        spans.push_back({start_unix, unix_s()});
      }
      losses.push_back(loss_value);
    }
    profiler.reset();
    result["tokens_per_s"] = 1000.0 * tokens / timed_ms;
    result["ms_per_step"] = timed_ms / a.steps;
    result["losses"] = losses;
    result["tokens_per_step"] = tokens / a.steps;
    result["step_spans"] = spans;
  } else {
    torch::NoGradGuard no_grad;
    model->eval();
    const SearchOptions search =
        SearchOptions(1, 2).beam_size(a.beam).max_length(data["data.tgt_out"].size(1) + 2);
    for (const bool incremental : {true, false}) {
      double timed_ms = 0;
      int64_t words = 0;
      std::vector<std::vector<int64_t>> firsts;
      for (int64_t step = 0; step < a.warmup + a.steps; ++step) {
        const int64_t b = step % batches;
        const torch::Tensor src = data["data.src"].slice(0, b * batch, (b + 1) * batch);
        const double start = now_ms();
        auto decoder = model->step_decoder(src, torch::Tensor(), incremental);
        const auto hyps = beam_search(*decoder, src.size(0), search);
        if (step >= a.warmup) {
          timed_ms += now_ms() - start;
          words += src.size(0);
        }
        if (step == 0) {
          for (const auto& h : hyps) firsts.push_back(h.front().tokens);
        }
      }
      const std::string key = incremental ? "incremental" : "recompute";
      result[key + "_words_per_s"] = 1000.0 * words / timed_ms;
      result[key + "_first_batch"] = firsts;
    }
    result["same_hypotheses"] =
        result["incremental_first_batch"] == result["recompute_first_batch"];
    result.erase("incremental_first_batch");
    result.erase("recompute_first_batch");
    result["beam"] = a.beam;
  }
  std::cout << result.dump() << std::endl;
  return 0;
}

}  // namespace

int transformer_main(int argc, char** argv) {
  try {
    const Args a = parse_args(argc, argv);
    return a.write_data.empty() ? run(a) : write_data(a);
  } catch (const std::invalid_argument& e) {
    std::cerr << "nlpkit_bench transformer: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nlpkit_bench transformer: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace nlpkit::bench
