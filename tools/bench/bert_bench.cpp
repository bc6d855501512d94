// The BERT pretraining-step benchmark (issue "BERT", section 7), the C++ half of
// tools/bench/run_bert.sh, and with --model deberta the DeBERTa one (issue "DeBERTa", section 6:
// tools/bench/run_deberta.sh, DebertaForMaskedLM on the same batches, MLM loss only):
//
//   nlpkit_bench bert --write-data FILE [--seed N] [model/data options]
//   nlpkit_bench bert --data FILE [--threads 2] [--warmup 3] [--steps 10] [--profile TRACE.json]
//                     [--paired FILE2]   # a second model, a step of each in turn
//
// --write-data draws a few synthetic masked-LM batches and nlpkit's initial weights of a
// BertForPreTraining (HuggingFace parameter names) and writes them to one safetensors file; the
// PyTorch eager half (tools/bench/bert_bench.py, HuggingFace's BertForPreTraining written out in
// plain PyTorch) reads the same file, so both sides train the same model on the same numbers.
//
// A step is the masked_lm task's train_step (trainers/tasks/bert.cpp) inside Trainer::fit's
// loop: release_gradients (zero_grad set_to_none); BertModel forward; the MLM logits of the masked
// positions only (hidden states gathered with the boolean mask, then mlm_logits) and their
// cross-entropy, plus the NSP cross-entropy; loss.item(); backward; clip_grad_norm_; AdamW
// (make_optimizer's groups: decay on weights only). Each run prints one JSON line on stdout:
// throughput, per-step and per-phase times, and the losses (which bert_bench.py --summarize
// compares).
#include "tools/bench/bert_bench.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "modules/bert.h"
#include "modules/deberta.h"
#include "trainers/optim.h"
#include "trainers/safetensors.h"

namespace {

using torch::Tensor;

// The special ids of the synthetic data (BERT's vocab.txt puts them first, in another order).
constexpr int64_t kPad = 0, kCls = 2, kSep = 3, kMask = 4, kFirstWord = 5;
constexpr int64_t kIgnore = -100;  // label of positions without an MLM target

struct Args {
  std::string data;        // read data and weights from here
  std::string write_data;  // generate, write here, exit
  std::string profile;     // chrome://tracing profile of the timed steps; op table on stderr
  std::string paired;      // a second data file, trained in the same process step for step
  int64_t threads = 2;
  int64_t warmup = 3;
  int64_t steps = 10;
  uint64_t seed = 42;
  // bert (BertForPreTraining, MLM + NSP) or deberta (DebertaForMaskedLM, MLM: DeBERTa-v3's
  // disentangled attention over log-bucketed relative positions, no token types).
  std::string model = "bert";
  int64_t position_buckets = 256;  // deberta; at most max_position_embeddings
  // Model (the shape: hidden 256, 4 layers).
  int64_t vocab_size = 8000;
  int64_t hidden_size = 256;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t intermediate_size = 1024;
  int64_t max_position_embeddings = 128;
  double dropout = 0.1;
  double attention_dropout = 0.1;
  // Data.
  int64_t batch_size = 32;
  int64_t seq_len = 128;
  int64_t num_batches = 4;
  double mlm_probability = 0.15;
  // Optimizer.
  double lr = 1e-4;
  double weight_decay = 0.01;
  double clip_grad_norm = 1.0;
};

const char* const kUsage =
    "usage: nlpkit_bench bert --write-data FILE [--seed N] [--model bert|deberta]\n"
    "           [--position-buckets N] [--vocab-size N] [--hidden-size N]\n"
    "           [--num-layers N] [--num-heads N] [--intermediate-size N]\n"
    "           [--max-position-embeddings N] [--dropout X] [--attention-dropout X]\n"
    "           [--batch-size N] [--seq-len N] [--num-batches N] [--mlm-probability X]\n"
    "           [--lr X] [--weight-decay X] [--clip-grad-norm X]\n"
    "       nlpkit_bench bert --data FILE [--threads N] [--warmup N] [--steps N]\n"
    "           [--profile TRACE.json] [--paired FILE2]\n";

using Setter = std::function<void(const std::string&)>;

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc >= 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    std::cout << kUsage;
    std::exit(0);
  }
  auto integer = [](int64_t& field) {
    return [&field](const std::string& v) { field = std::stoll(v); };
  };
  auto real = [](double& field) {
    return [&field](const std::string& v) { field = std::stod(v); };
  };
  const std::map<std::string, Setter> run_options = {
      {"--data", [&](const std::string& v) { a.data = v; }},
      {"--threads", integer(a.threads)},
      {"--warmup", integer(a.warmup)},
      {"--steps", integer(a.steps)},
      {"--profile", [&](const std::string& v) { a.profile = v; }},
      {"--paired", [&](const std::string& v) { a.paired = v; }},
  };
  const std::map<std::string, Setter> data_options = {
      {"--write-data", [&](const std::string& v) { a.write_data = v; }},
      {"--seed", [&](const std::string& v) { a.seed = std::stoull(v); }},
      {"--model", [&](const std::string& v) { a.model = v; }},
      {"--position-buckets", integer(a.position_buckets)},
      {"--vocab-size", integer(a.vocab_size)},
      {"--hidden-size", integer(a.hidden_size)},
      {"--num-layers", integer(a.num_layers)},
      {"--num-heads", integer(a.num_heads)},
      {"--intermediate-size", integer(a.intermediate_size)},
      {"--max-position-embeddings", integer(a.max_position_embeddings)},
      {"--dropout", real(a.dropout)},
      {"--attention-dropout", real(a.attention_dropout)},
      {"--batch-size", integer(a.batch_size)},
      {"--seq-len", integer(a.seq_len)},
      {"--num-batches", integer(a.num_batches)},
      {"--mlm-probability", real(a.mlm_probability)},
      {"--lr", real(a.lr)},
      {"--weight-decay", real(a.weight_decay)},
      {"--clip-grad-norm", real(a.clip_grad_norm)},
  };
  bool run_flags = false, data_flags = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto it = run_options.find(flag);
    const bool is_run = it != run_options.end();
    if (!is_run) it = data_options.find(flag);
    if (it == data_options.end()) throw std::invalid_argument("unknown option: " + flag);
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    try {
      it->second(value);
    } catch (const std::logic_error&) {
      throw std::invalid_argument(flag + ": bad value '" + value + "'");
    }
    (is_run ? run_flags : data_flags) = true;
  }
  if (a.data.empty() == a.write_data.empty()) {
    throw std::invalid_argument("needs one of --data FILE and --write-data FILE");
  }
  if (!a.paired.empty() && !a.profile.empty()) {  // one op table would mix the two models
    throw std::invalid_argument("--profile profiles one model: not with --paired");
  }
  // The model and data are the file's: changing them afterwards would run another benchmark
  // than the Python side reads.
  if (!a.data.empty() && data_flags) {
    throw std::invalid_argument("model and data options go with --write-data, not --data");
  }
  if (!a.write_data.empty() && run_flags) {
    throw std::invalid_argument(
        "--threads, --warmup, --steps, --profile and --paired go with --data");
  }
  const bool positive = a.threads > 0 && a.warmup >= 0 && a.steps > 0 &&
                        a.vocab_size > kFirstWord && a.hidden_size > 0 && a.num_layers > 0 &&
                        a.num_heads > 0 && a.hidden_size % a.num_heads == 0 &&
                        a.intermediate_size > 0 && a.batch_size > 0 && a.seq_len >= 8 &&
                        a.num_batches > 0 && a.max_position_embeddings >= a.seq_len;
  if (!positive) {
    throw std::invalid_argument(
        "counts must be positive, hidden-size divisible by num-heads, seq-len at least 8 and at "
        "most max-position-embeddings, vocab-size above 5");
  }
  if (a.model != "bert" && a.model != "deberta") {
    throw std::invalid_argument("--model must be bert or deberta, got '" + a.model + "'");
  }
  if (a.model == "deberta" &&
      (a.position_buckets < 2 || a.position_buckets > a.max_position_embeddings)) {
    throw std::invalid_argument("--position-buckets must be in [2, max-position-embeddings]");
  }
  if (a.dropout < 0 || a.dropout >= 1 || a.attention_dropout < 0 || a.attention_dropout >= 1 ||
      a.mlm_probability <= 0 || a.mlm_probability >= 1) {
    throw std::invalid_argument("dropouts must be in [0, 1), mlm-probability in (0, 1)");
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

nlpkit::BertOptions bert_options(const Args& a) {
  return nlpkit::BertOptions()
      .vocab_size(a.vocab_size)
      .hidden_size(a.hidden_size)
      .num_layers(a.num_layers)
      .num_heads(a.num_heads)
      .intermediate_size(a.intermediate_size)
      .max_position_embeddings(a.max_position_embeddings)
      .dropout(a.dropout)
      .attention_dropout(a.attention_dropout)
      .pad_id(kPad);
}

nlpkit::DebertaOptions deberta_options(const Args& a) {
  return nlpkit::DebertaOptions()
      .vocab_size(a.vocab_size)
      .hidden_size(a.hidden_size)
      .num_layers(a.num_layers)
      .num_heads(a.num_heads)
      .intermediate_size(a.intermediate_size)
      .max_position_embeddings(a.max_position_embeddings)
      .position_buckets(a.position_buckets)
      .dropout(a.dropout)
      .attention_dropout(a.attention_dropout)
      .pad_id(kPad);
}

// ---------------------------------------------------------------------------------------------
// Data

struct Batch {
  Tensor input_ids, token_type_ids, attention_mask;  // (B, T)
  Tensor labels;                                     // (B, T), kIgnore where nothing is predicted
  Tensor next_sentence_label;                        // (B)
};

/// The benchmarked model and the loss of one batch.
struct Model {
  std::shared_ptr<torch::nn::Module> module;
  std::function<Tensor(const Batch&)> loss;
};

const char* const kBatchFields[] = {"input_ids", "token_type_ids", "attention_mask", "labels",
                                    "next_sentence_label"};

// One batch in the masked_lm task's layout: [CLS] A [SEP] B [SEP], then padding. A quarter of
// the rows fill all T positions, the others have a length uniform in [T/2, T]; ids are uniform
// over the words [5, V); mlm_probability of the word positions get a label, and their input is
// [MASK] 80% of the time, a random word 10%, unchanged 10% (as BERT does).
Batch make_batch(const Args& a, std::mt19937_64& rng) {
  const int64_t b = a.batch_size, t = a.seq_len;
  auto uniform = [&](int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  std::vector<int64_t> ids(b * t, kPad), types(b * t, 0), mask(b * t, 0), labels(b * t, kIgnore),
      nsp(b);
  for (int64_t i = 0; i < b; ++i) {
    int64_t* x = &ids[i * t];
    const int64_t length = i % 4 == 0 ? t : uniform(t / 2, t);
    const int64_t sep = uniform(2, length - 3);  // the first [SEP]; A and B both non-empty
    std::vector<int64_t> words;
    for (int64_t j = 0; j < length; ++j) {
      mask[i * t + j] = 1;
      types[i * t + j] = j > sep ? 1 : 0;
      if (j == 0) {
        x[j] = kCls;
      } else if (j == sep || j == length - 1) {
        x[j] = kSep;
      } else {
        x[j] = uniform(kFirstWord, a.vocab_size - 1);
        words.push_back(j);
      }
    }
    std::shuffle(words.begin(), words.end(), rng);
    const size_t wanted = std::max<size_t>(
        1, static_cast<size_t>(std::lround(static_cast<double>(words.size()) * a.mlm_probability)));
    for (size_t k = 0; k < wanted; ++k) {
      const int64_t j = words[k];
      labels[i * t + j] = x[j];
      const int64_t r = uniform(0, 9);
      if (r < 8) {
        x[j] = kMask;
      } else if (r == 8) {
        x[j] = uniform(kFirstWord, a.vocab_size - 1);
      }
    }
    nsp[i] = uniform(0, 1);
  }
  auto matrix = [&](const std::vector<int64_t>& v) { return torch::tensor(v).view({b, t}); };
  return {matrix(ids), matrix(types), matrix(mask), matrix(labels), torch::tensor(nsp)};
}

int write_data(const Args& a) {
  torch::manual_seed(static_cast<int64_t>(a.seed));
  std::shared_ptr<torch::nn::Module> model;
  if (a.model == "deberta") {
    model = nlpkit::DebertaForMaskedLM(deberta_options(a)).ptr();
  } else {
    model = nlpkit::BertForPreTraining(bert_options(a)).ptr();
  }
  nlpkit::NamedTensors tensors;
  for (const auto& [name, tensor] : nlpkit::module_state(*model)) {
    tensors.emplace_back("model." + name, tensor);
  }
  std::mt19937_64 rng(a.seed);
  int64_t masked = 0, real_tokens = 0;
  for (int64_t n = 0; n < a.num_batches; ++n) {
    const Batch batch = make_batch(a, rng);
    masked += batch.labels.ne(kIgnore).sum().item<int64_t>();
    real_tokens += batch.attention_mask.sum().item<int64_t>();
    const Tensor fields[] = {batch.input_ids, batch.token_type_ids, batch.attention_mask,
                             batch.labels, batch.next_sentence_label};
    for (size_t f = 0; f < std::size(fields); ++f) {
      tensors.emplace_back("batch." + std::to_string(n) + "." + kBatchFields[f], fields[f]);
    }
  }
  const std::map<std::string, std::string> metadata = {
      {"bench", "bert"},
      {"model", a.model},
      {"position_buckets", std::to_string(a.position_buckets)},
      {"seed", std::to_string(a.seed)},
      {"vocab_size", std::to_string(a.vocab_size)},
      {"hidden_size", std::to_string(a.hidden_size)},
      {"num_layers", std::to_string(a.num_layers)},
      {"num_heads", std::to_string(a.num_heads)},
      {"intermediate_size", std::to_string(a.intermediate_size)},
      {"max_position_embeddings", std::to_string(a.max_position_embeddings)},
      {"type_vocab_size", a.model == "deberta" ? "0" : "2"},
      {"layer_norm_eps", a.model == "deberta" ? "1e-07" : "1e-12"},
      {"pad_token_id", std::to_string(kPad)},
      {"dropout", std::to_string(a.dropout)},
      {"attention_dropout", std::to_string(a.attention_dropout)},
      {"batch_size", std::to_string(a.batch_size)},
      {"seq_len", std::to_string(a.seq_len)},
      {"num_batches", std::to_string(a.num_batches)},
      {"optimizer", "adamw"},
      {"lr", std::to_string(a.lr)},
      {"weight_decay", std::to_string(a.weight_decay)},
      {"clip_grad_norm", std::to_string(a.clip_grad_norm)},
  };
  nlpkit::save_safetensors(a.write_data, tensors, metadata);
  std::cerr << "wrote " << a.write_data << " (" << a.model << "): " << a.num_batches
            << " batches of " << a.batch_size << " x " << a.seq_len << ", " << real_tokens
            << " real tokens, " << masked << " masked\n";
  return 0;
}

// Reads the file's metadata into `a`, its weights into a new model and its batches.
std::pair<Model, std::vector<Batch>> read_data(Args& a) {
  nlpkit::SafetensorsFile file = nlpkit::load_safetensors(a.data);
  auto meta = [&](const std::string& key) {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) {
      throw std::runtime_error(a.data + ": metadata has no '" + key + "'");
    }
    return it->second;
  };
  if (meta("bench") != "bert") {
    throw std::runtime_error(a.data + ": written for the " + meta("bench") +
                             " benchmark, not bert");
  }
  a.seed = std::stoull(meta("seed"));
  a.model = file.metadata.count("model") ? meta("model") : "bert";
  if (file.metadata.count("position_buckets"))
    a.position_buckets = std::stoll(meta("position_buckets"));
  a.vocab_size = std::stoll(meta("vocab_size"));
  a.hidden_size = std::stoll(meta("hidden_size"));
  a.num_layers = std::stoll(meta("num_layers"));
  a.num_heads = std::stoll(meta("num_heads"));
  a.intermediate_size = std::stoll(meta("intermediate_size"));
  a.max_position_embeddings = std::stoll(meta("max_position_embeddings"));
  a.dropout = std::stod(meta("dropout"));
  a.attention_dropout = std::stod(meta("attention_dropout"));
  a.batch_size = std::stoll(meta("batch_size"));
  a.seq_len = std::stoll(meta("seq_len"));
  a.num_batches = std::stoll(meta("num_batches"));
  a.lr = std::stod(meta("lr"));
  a.weight_decay = std::stod(meta("weight_decay"));
  a.clip_grad_norm = std::stod(meta("clip_grad_norm"));

  // The masked_lm task's losses(): MLM cross-entropy over the masked positions only (the
  // (B, T, V) logits are never built), plus NSP cross-entropy for BERT; means.
  namespace F = torch::nn::functional;
  Model model;
  if (a.model == "deberta") {
    nlpkit::DebertaForMaskedLM m(deberta_options(a));
    model.module = m.ptr();
    model.loss = [m](const Batch& b) mutable {
      const Tensor hidden = m->deberta->forward(b.input_ids, b.attention_mask).last_hidden_state;
      const Tensor picked = b.labels.ne(kIgnore);                   // (B, T)
      const Tensor logits = m->mlm_logits(hidden.index({picked}));  // (N, V)
      return F::cross_entropy(logits, b.labels.masked_select(picked));
    };
  } else {
    nlpkit::BertForPreTraining m(bert_options(a));
    model.module = m.ptr();
    model.loss = [m](const Batch& b) mutable {
      const nlpkit::BertModelOutput out =
          m->bert->forward(b.input_ids, b.attention_mask, b.token_type_ids);
      const Tensor picked = b.labels.ne(kIgnore);                                  // (B, T)
      const Tensor targets = b.labels.masked_select(picked);                       // (N)
      const Tensor logits = m->mlm_logits(out.last_hidden_state.index({picked}));  // (N, V)
      const Tensor nsp_logits = m->cls->seq_relationship(out.pooler_output);       // (B, 2)
      return F::cross_entropy(logits, targets) +
             F::cross_entropy(nsp_logits, b.next_sentence_label);
    };
  }
  nlpkit::NamedTensors state;
  std::map<std::string, Tensor> rest;
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind("model.", 0) == 0) {
      state.emplace_back(name.substr(6), tensor);
    } else {
      rest[name] = tensor;
    }
  }
  nlpkit::load_module_state(*model.module, state, a.data);
  std::vector<Batch> batches;
  for (int64_t n = 0; n < a.num_batches; ++n) {
    auto field = [&](const char* name) {
      const std::string key = "batch." + std::to_string(n) + "." + name;
      const auto it = rest.find(key);
      if (it == rest.end()) throw std::runtime_error(a.data + ": no tensor '" + key + "'");
      return it->second;
    };
    batches.push_back({field("input_ids"), field("token_type_ids"), field("attention_mask"),
                       field("labels"), field("next_sentence_label")});
  }
  return {model, std::move(batches)};
}

// ---------------------------------------------------------------------------------------------
// Profile: a chrome://tracing file and a table of the operators' self times

}  // namespace

namespace nlpkit::bench {

// The self time of an operator is the time inside it minus the operators it called. The legacy
// profiler's events are push/pop pairs per thread, properly nested, so a stack recovers it.
void report_profile(const torch::autograd::profiler::thread_event_lists& lists,
                    const std::string& trace_path, int64_t steps, int rows) {
  using torch::autograd::profiler::EventKind;
  using torch::autograd::profiler::LegacyEvent;
  std::vector<LegacyEvent*> all;
  struct Stat {
    int64_t calls = 0;
    double total_us = 0, self_us = 0;
  };
  std::unordered_map<std::string, Stat> stats;
  for (const auto& list : lists) {
    struct Open {
      const LegacyEvent* push;
      double children_us;
    };
    std::vector<Open> stack;
    for (const LegacyEvent& e : list) {
      all.push_back(const_cast<LegacyEvent*>(&e));
      if (e.kind() == EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == EventKind::PopRange) {
        auto it = std::find_if(stack.rbegin(), stack.rend(),
                               [&](const Open& o) { return o.push->handle() == e.handle(); });
        if (it == stack.rend()) continue;
        const size_t depth = static_cast<size_t>(stack.rend() - it) - 1;
        const Open open = stack[depth];
        stack.resize(depth);
        const double total = open.push->cpuElapsedUs(e);
        Stat& s = stats[open.push->name()];
        ++s.calls;
        s.total_us += total;
        s.self_us += total - open.children_us;
        if (!stack.empty()) stack.back().children_us += total;
      }
    }
  }
  {
    std::ofstream trace(trace_path);
    torch::autograd::profiler::writeProfilerEventsToStream(trace, all);
  }
  std::vector<std::pair<std::string, Stat>> sorted(stats.begin(), stats.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& x, const auto& y) { return x.second.self_us > y.second.self_us; });
  double self_sum = 0;
  for (const auto& [name, s] : sorted) self_sum += s.self_us;
  const double per_step = 1000.0 * static_cast<double>(steps);  // us -> ms per step
  std::fprintf(stderr, "nlpkit operators by self time (ms per step, %lld steps; trace %s)\n",
               static_cast<long long>(steps), trace_path.c_str());
  std::fprintf(stderr, "  %-60s %9s %9s %9s %6s\n", "name", "self", "total", "calls", "self%");
  for (size_t i = 0; i < sorted.size() && i < static_cast<size_t>(rows); ++i) {
    const auto& [name, s] = sorted[i];
    std::fprintf(stderr, "  %-60.60s %9.2f %9.2f %9.1f %5.1f%%\n", name.c_str(),
                 s.self_us / per_step, s.total_us / per_step,
                 static_cast<double>(s.calls) / static_cast<double>(steps),
                 100.0 * s.self_us / self_sum);
  }
  std::fprintf(stderr, "  %-60s %9.2f\n", "all operators", self_sum / per_step);
}

}  // namespace nlpkit::bench

namespace {

using nlpkit::bench::report_profile;

// ---------------------------------------------------------------------------------------------
// Training

/// One model's training run: its data, optimizer and the times of its timed steps.
struct Run {
  Args args;
  Model model;
  std::vector<Batch> batches;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<Tensor> params;
  double max_norm = INFINITY;
  std::vector<double> losses, step_ms;
  std::map<std::string, std::vector<double>> phase_ms;  // timed steps only
};

std::unique_ptr<Run> make_run(Args a) {
  auto run = std::make_unique<Run>();
  std::pair<Model, std::vector<Batch>> data = read_data(a);
  run->model = std::move(data.first);
  run->batches = std::move(data.second);
  nlpkit::OptimizerConfig config;
  config.type = "adamw";
  config.lr = a.lr;
  config.weight_decay = a.weight_decay;
  run->optimizer = nlpkit::make_optimizer(nlpkit::parameter_groups(*run->model.module), config);
  run->params = run->model.module->parameters();
  if (a.clip_grad_norm > 0) run->max_norm = a.clip_grad_norm;
  run->args = std::move(a);
  run->model.module->train();
  return run;
}

void train_step(Run& run, int64_t step, bool timed) {
  const Batch& batch = run.batches[step % run.args.num_batches];
  double t[6];
  t[0] = now_ms();
  nlpkit::release_gradients(*run.optimizer);
  Tensor loss = run.model.loss(batch);
  t[1] = now_ms();
  run.losses.push_back(loss.item<double>());
  t[2] = now_ms();
  loss.backward();
  t[3] = now_ms();
  torch::nn::utils::clip_grad_norm_(run.params, run.max_norm);
  t[4] = now_ms();
  run.optimizer->step();
  t[5] = now_ms();
  if (timed) {
    run.step_ms.push_back(t[5] - t[0]);
    const char* phases[] = {"forward", "item", "backward", "clip", "optimizer"};
    for (int i = 0; i < 5; ++i) run.phase_ms[phases[i]].push_back(t[i + 1] - t[i]);
  }
}

nlohmann::json result_of(const Run& run) {
  const Args& a = run.args;
  const double total_ms = std::accumulate(run.step_ms.begin(), run.step_ms.end(), 0.0);
  const double tokens_per_step = static_cast<double>(a.batch_size * a.seq_len);
  nlohmann::json phases;
  for (const auto& [name, ms] : run.phase_ms) phases[name] = median(ms);
  return {{"bench", "bert"},
          {"model", a.model},
          // NLPKIT_TORCH_DROPOUT=1: ATen's dropout masks, so the losses compare bitwise with
          // PyTorch's.
          {"impl", std::getenv("NLPKIT_TORCH_DROPOUT") != nullptr &&
                           std::string(std::getenv("NLPKIT_TORCH_DROPOUT")) == "1"
                       ? "nlpkit-torch-dropout"
                       : "nlpkit"},
          {"threads", a.threads},
          {"warmup", a.warmup},
          {"steps", a.steps},
          {"shape",
           {{"batch_size", a.batch_size},
            {"seq_len", a.seq_len},
            {"hidden_size", a.hidden_size},
            {"num_layers", a.num_layers},
            {"num_heads", a.num_heads},
            {"intermediate_size", a.intermediate_size},
            {"vocab_size", a.vocab_size},
            {"dropout", a.dropout},
            {"attention_dropout", a.attention_dropout}}},
          {"tokens_per_s", 1000.0 * tokens_per_step * static_cast<double>(a.steps) / total_ms},
          {"ms_per_step", total_ms / static_cast<double>(a.steps)},
          {"median_step_ms", median(run.step_ms)},
          {"phase_median_ms", phases},
          {"losses", run.losses}};
}

int run_bench(Args& a) {
  torch::set_num_threads(static_cast<int>(a.threads));
  // With --paired, a second model trains in this process, one step of each in turn: whatever
  // else the machine does slows both alike, so the ratio of their step times is steadier than
  // that of two separate runs.
  std::vector<std::unique_ptr<Run>> runs;
  for (const std::string& file : {a.data, a.paired}) {
    if (file.empty()) continue;
    Args own = a;
    own.data = file;
    runs.push_back(make_run(std::move(own)));
  }
  torch::manual_seed(static_cast<int64_t>(a.seed));  // with NLPKIT_TORCH_DROPOUT=1, Python's masks
  std::unique_ptr<torch::autograd::profiler::TLSLegacyProfilerGuard> profiler;
  for (int64_t step = 0; step < a.warmup + a.steps; ++step) {
    const bool timed = step >= a.warmup;
    if (step == a.warmup && !a.profile.empty()) {
      profiler = std::make_unique<torch::autograd::profiler::TLSLegacyProfilerGuard>(
          torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU),
          [&](const torch::autograd::profiler::thread_event_lists& lists) {
            report_profile(lists, a.profile, a.steps);
          });
    }
    for (const auto& run : runs) train_step(*run, step, timed);
  }
  profiler.reset();
  for (const auto& run : runs) std::cout << result_of(*run).dump() << std::endl;
  if (runs.size() == 2) {
    std::vector<double> ratios;
    for (size_t i = 0; i < runs[0]->step_ms.size(); ++i) {
      ratios.push_back(runs[1]->step_ms[i] / runs[0]->step_ms[i]);
    }
    const nlohmann::json pair = {{"bench", "bert_pair"},
                                 {"models", {runs[0]->args.model, runs[1]->args.model}},
                                 {"threads", a.threads},
                                 {"batch_size", runs[1]->args.batch_size},
                                 {"seq_len", runs[1]->args.seq_len},
                                 {"step_ratios", ratios},
                                 {"median_ratio", median(ratios)},
                                 {"step_ms", {runs[0]->step_ms, runs[1]->step_ms}}};
    std::cout << pair.dump() << std::endl;
  }
  return 0;
}

int run(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  return a.write_data.empty() ? run_bench(a) : write_data(a);
}

}  // namespace

namespace nlpkit::bench {

int bert_main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "nlpkit_bench bert: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nlpkit_bench bert: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace nlpkit::bench
