// Training-throughput benchmark of the TextCNN-BiLSTM-Attention classifier
// (modules/text_classifier.h), the nlpkit half of tools/bench/run.sh. The PyTorch eager half is
// tools/bench/classifier_bench.py; both read the same batches and initial weights from one
// safetensors file, so that they run the same compute on the same numbers.
//
//   nlpkit_bench --write-data bench.safetensors   # synthetic batches + initial weights, then exit
//   nlpkit_bench --data bench.safetensors --threads 2 --warmup 3 --steps 20
//
// A step is what trainers/trainer.cpp does per batch: release_gradients, forward, cross-entropy,
// loss.item(), backward, clip_grad_norm_ and an AdamW step (decay/no-decay groups, as
// make_optimizer builds them). The result is one JSON line on stdout.
#include <sys/resource.h>
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

#include "datasets/batching.h"
#include "modules/text_classifier.h"
#include "tools/bench/bert_bench.h"
#include "tools/bench/recurrent_bench.h"
#include "tools/bench/transformer_bench.h"
#include "tools/bench/wordpiece_bench.h"
#include "trainers/allocator.h"
#include "trainers/optim.h"
#include "trainers/safetensors.h"

namespace {

using nlpkit::DocumentBatch;

// The quickstart configuration (configs/quickstart.yaml) by default.
struct Args {
  std::string data;        // read batches and weights from here (else generate in memory)
  std::string write_data;  // generate, write here, exit
  std::string profile;     // write a chrome://tracing profile of the timed steps here
  int64_t threads = 2;
  int64_t warmup = 3;
  int64_t steps = 20;
  double lr = 0.002;
  double weight_decay = 0.01;
  double clip_grad_norm = 1.0;
  // Data and model (only used when generating).
  uint64_t seed = 42;
  int64_t num_batches = 8;
  int64_t batch_size = 32;
  int64_t max_sentences = 16;
  int64_t max_sentence_length = 32;
  int64_t vocab_size = 30000;
  int64_t num_classes = 2;
  int64_t embedding_dim = 64;
  int64_t cnn_hidden_size = 64;
  std::vector<int64_t> kernel_sizes = {2, 3, 4};
  int64_t hidden_size = 64;
  int64_t num_layers = 1;
  double dropout = 0.2;
};

const char* const kUsage =
    "usage: nlpkit_bench [classifier] [--data FILE | --write-data FILE] [--profile TRACE.json]\n"
    "                    [--threads N] [--warmup N] [--steps N] [--lr X] [--weight-decay X]\n"
    "                    [--clip-grad-norm X]\n"
    "                    [--seed N] [--num-batches N] [--batch-size N] [--max-sentences N]\n"
    "                    [--max-sentence-length N] [--vocab-size N] [--num-classes N]\n"
    "                    [--embedding-dim N] [--cnn-hidden-size N] [--kernel-sizes 2,3,4]\n"
    "                    [--hidden-size N] [--num-layers N] [--dropout X]\n"
    "       nlpkit_bench recurrent lstm|lm|convlstm [options]  (nlpkit_bench recurrent --help)\n"
    "       nlpkit_bench bert --write-data FILE | --data FILE  (nlpkit_bench bert --help)\n"
    "       nlpkit_bench wordpiece --vocab VOCAB [--no-lowercase] [--repeat N] FILE.tsv...\n"
    "       nlpkit_bench sentencepiece --model spm.model [--repeat N] FILE.tsv...\n";

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

Args parse_args(int argc, char** argv) {
  Args a;
  const std::map<std::string, std::function<void(const std::string&)>> options = {
      {"--data", [&](const std::string& v) { a.data = v; }},
      {"--write-data", [&](const std::string& v) { a.write_data = v; }},
      {"--profile", [&](const std::string& v) { a.profile = v; }},
      {"--threads", [&](const std::string& v) { a.threads = std::stoll(v); }},
      {"--warmup", [&](const std::string& v) { a.warmup = std::stoll(v); }},
      {"--steps", [&](const std::string& v) { a.steps = std::stoll(v); }},
      {"--lr", [&](const std::string& v) { a.lr = std::stod(v); }},
      {"--weight-decay", [&](const std::string& v) { a.weight_decay = std::stod(v); }},
      {"--clip-grad-norm", [&](const std::string& v) { a.clip_grad_norm = std::stod(v); }},
      {"--seed", [&](const std::string& v) { a.seed = std::stoull(v); }},
      {"--num-batches", [&](const std::string& v) { a.num_batches = std::stoll(v); }},
      {"--batch-size", [&](const std::string& v) { a.batch_size = std::stoll(v); }},
      {"--max-sentences", [&](const std::string& v) { a.max_sentences = std::stoll(v); }},
      {"--max-sentence-length",
       [&](const std::string& v) { a.max_sentence_length = std::stoll(v); }},
      {"--vocab-size", [&](const std::string& v) { a.vocab_size = std::stoll(v); }},
      {"--num-classes", [&](const std::string& v) { a.num_classes = std::stoll(v); }},
      {"--embedding-dim", [&](const std::string& v) { a.embedding_dim = std::stoll(v); }},
      {"--cnn-hidden-size", [&](const std::string& v) { a.cnn_hidden_size = std::stoll(v); }},
      {"--kernel-sizes", [&](const std::string& v) { a.kernel_sizes = parse_list(v); }},
      {"--hidden-size", [&](const std::string& v) { a.hidden_size = std::stoll(v); }},
      {"--num-layers", [&](const std::string& v) { a.num_layers = std::stoll(v); }},
      {"--dropout", [&](const std::string& v) { a.dropout = std::stod(v); }},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    const auto it = options.find(flag);
    if (it == options.end()) throw std::invalid_argument("unknown option " + flag);
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    try {
      it->second(value);
    } catch (const std::logic_error&) {
      throw std::invalid_argument(flag + ": bad value '" + value + "'");
    }
  }
  if (a.threads < 1 || a.warmup < 0 || a.steps < 1 || a.num_batches < 1 || a.batch_size < 1 ||
      a.max_sentences < 1 || a.max_sentence_length < 1 || a.vocab_size < 3) {
    throw std::invalid_argument("counts must be positive (and vocab-size at least 3)");
  }
  return a;
}

nlpkit::TextClassifierOptions model_options(const Args& a) {
  return nlpkit::TextClassifierOptions(a.vocab_size, a.num_classes)
      .embedding_dim(a.embedding_dim)
      .cnn_hidden_size(a.cnn_hidden_size)
      .kernel_sizes(a.kernel_sizes)
      .hidden_size(a.hidden_size)
      .num_layers(a.num_layers)
      .dropout(a.dropout)
      .pad_id(0);
}

// Documents of 1..max_sentences sentences of 1..max_sentence_length words (uniform), word ids
// log-uniform over [2, vocab_size) (a Zipf-like spread; 0 is pad, 1 unk), uniform labels.
// Padded to each batch's longest document and sentence by the trainer's own collate_documents.
std::vector<DocumentBatch> generate_batches(const Args& a) {
  std::mt19937_64 rng(a.seed);
  const double log_range = std::log(static_cast<double>(a.vocab_size - 2));
  auto uniform01 = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  std::vector<DocumentBatch> batches;
  for (int64_t n = 0; n < a.num_batches; ++n) {
    std::vector<nlpkit::EncodedDocument> docs(static_cast<size_t>(a.batch_size));
    std::vector<int64_t> labels;
    for (auto& doc : docs) {
      doc.resize(1 + nlpkit::random_below(rng, a.max_sentences));
      for (auto& sentence : doc) {
        sentence.resize(1 + nlpkit::random_below(rng, a.max_sentence_length));
        for (auto& id : sentence) {
          id = std::min<int64_t>(a.vocab_size - 1,
                                 1 + static_cast<int64_t>(std::exp(uniform01() * log_range)));
        }
      }
      labels.push_back(static_cast<int64_t>(nlpkit::random_below(rng, a.num_classes)));
    }
    std::vector<const nlpkit::EncodedDocument*> pointers;
    for (const auto& doc : docs) pointers.push_back(&doc);
    batches.push_back(nlpkit::collate_documents(pointers, labels, /*pad_id=*/0));
  }
  return batches;
}

std::map<std::string, std::string> data_metadata(const Args& a) {
  return {{"seed", std::to_string(a.seed)},
          {"num_batches", std::to_string(a.num_batches)},
          {"batch_size", std::to_string(a.batch_size)},
          {"max_sentences", std::to_string(a.max_sentences)},
          {"max_sentence_length", std::to_string(a.max_sentence_length)},
          {"vocab_size", std::to_string(a.vocab_size)},
          {"num_classes", std::to_string(a.num_classes)},
          {"embedding_dim", std::to_string(a.embedding_dim)},
          {"cnn_hidden_size", std::to_string(a.cnn_hidden_size)},
          {"kernel_sizes", join(a.kernel_sizes)},
          {"hidden_size", std::to_string(a.hidden_size)},
          {"num_layers", std::to_string(a.num_layers)},
          {"dropout", std::to_string(a.dropout)},
          {"pad_id", "0"}};
}

// The data file holds the model's initial state under "model.", then "batch.<n>.ids",
// ".word_mask", ".sentence_mask", ".labels"; the metadata holds the configuration above.
void write_data(const Args& a) {
  torch::manual_seed(a.seed);
  nlpkit::TextClassifier model(model_options(a));
  nlpkit::NamedTensors tensors;
  for (const auto& [name, tensor] : nlpkit::module_state(*model)) {
    tensors.emplace_back("model." + name, tensor);
  }
  const std::vector<DocumentBatch> batches = generate_batches(a);
  for (size_t n = 0; n < batches.size(); ++n) {
    const std::string prefix = "batch." + std::to_string(n) + ".";
    tensors.emplace_back(prefix + "ids", batches[n].ids);
    tensors.emplace_back(prefix + "word_mask", batches[n].word_mask);
    tensors.emplace_back(prefix + "sentence_mask", batches[n].sentence_mask);
    tensors.emplace_back(prefix + "labels", batches[n].labels);
  }
  nlpkit::save_safetensors(a.write_data, tensors, data_metadata(a));
}

// Reads the configuration, the initial weights and the batches back (the configuration in the
// file overrides the command line's).
std::vector<DocumentBatch> read_data(Args& a, nlpkit::TextClassifier& model) {
  nlpkit::SafetensorsFile file = nlpkit::load_safetensors(a.data);
  auto meta = [&](const std::string& key) {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) {
      throw std::runtime_error(a.data + ": metadata has no '" + key + "'");
    }
    return it->second;
  };
  a.num_batches = std::stoll(meta("num_batches"));
  a.batch_size = std::stoll(meta("batch_size"));
  a.vocab_size = std::stoll(meta("vocab_size"));
  a.num_classes = std::stoll(meta("num_classes"));
  a.embedding_dim = std::stoll(meta("embedding_dim"));
  a.cnn_hidden_size = std::stoll(meta("cnn_hidden_size"));
  a.kernel_sizes = parse_list(meta("kernel_sizes"));
  a.hidden_size = std::stoll(meta("hidden_size"));
  a.num_layers = std::stoll(meta("num_layers"));
  a.dropout = std::stod(meta("dropout"));
  model = nlpkit::TextClassifier(model_options(a));
  std::map<std::string, torch::Tensor> by_name(file.tensors.begin(), file.tensors.end());
  nlpkit::NamedTensors state;
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind("model.", 0) == 0) state.emplace_back(name.substr(6), tensor);
  }
  nlpkit::load_module_state(*model, state, a.data);
  std::vector<DocumentBatch> batches(static_cast<size_t>(a.num_batches));
  for (size_t n = 0; n < batches.size(); ++n) {
    const std::string prefix = "batch." + std::to_string(n) + ".";
    auto get = [&](const std::string& key) {
      const auto it = by_name.find(prefix + key);
      if (it == by_name.end()) throw std::runtime_error(a.data + ": no tensor " + prefix + key);
      return it->second;
    };
    batches[n] = {get("ids"), get("word_mask"), get("sentence_mask"), get("labels")};
  }
  return batches;
}

double peak_rss_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

int run(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (!a.write_data.empty()) {
    write_data(a);
    std::cerr << "wrote " << a.write_data << "\n";
    return 0;
  }
  torch::set_num_threads(static_cast<int>(a.threads));
  nlpkit::TextClassifier model{nullptr};
  std::vector<DocumentBatch> batches;
  if (a.data.empty()) {
    torch::manual_seed(a.seed);
    model = nlpkit::TextClassifier(model_options(a));
    batches = generate_batches(a);
  } else {
    batches = read_data(a, model);
  }
  nlpkit::OptimizerConfig optimizer_config;
  optimizer_config.type = "adamw";
  optimizer_config.lr = a.lr;
  optimizer_config.weight_decay = a.weight_decay;
  std::unique_ptr<torch::optim::Optimizer> optimizer =
      nlpkit::make_optimizer(*model, optimizer_config);
  const std::vector<torch::Tensor> params = model->parameters();
  const double rss_before = peak_rss_mib();

  // Dropout masks come from the default generator: the same seed as the Python side gives the
  // same masks, so the two loss curves agree (a check that both compute the same thing).
  torch::manual_seed(a.seed);
  model->train();
  std::vector<double> losses, step_ms;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profiler;
  for (int64_t step = 0; step < a.warmup + a.steps; ++step) {
    if (step == a.warmup && !a.profile.empty()) {
      profiler = std::make_unique<torch::autograd::profiler::RecordProfile>(a.profile);
    }
    const auto start = std::chrono::steady_clock::now();
    const DocumentBatch& b = batches[static_cast<size_t>(step % a.num_batches)];
    nlpkit::release_gradients(*optimizer);
    nlpkit::TextClassifierOutput out = model->forward(b.ids, b.word_mask, b.sentence_mask);
    torch::Tensor loss = torch::nn::functional::cross_entropy(out.logits, b.labels);
    losses.push_back(loss.item<double>());
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, a.clip_grad_norm);
    optimizer->step();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (step >= a.warmup) step_ms.push_back(ms);
  }
  profiler.reset();  // writes the trace

  const double total_ms = std::accumulate(step_ms.begin(), step_ms.end(), 0.0);
  std::vector<double> sorted = step_ms;
  std::sort(sorted.begin(), sorted.end());
  const size_t mid = sorted.size() / 2;
  const double median_ms = sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  nlohmann::json result = {{"impl", "nlpkit"},
                           {"threads", a.threads},
                           {"warmup", a.warmup},
                           {"steps", a.steps},
                           {"batch_size", a.batch_size},
                           {"docs_per_s", 1000.0 * a.steps * a.batch_size / total_ms},
                           {"ms_per_step", total_ms / a.steps},
                           {"median_step_ms", median_ms},
                           {"peak_rss_mib", peak_rss_mib()},
                           {"rss_before_training_mib", rss_before},
                           {"losses", losses}};
  std::cout << result.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // As nlpkit itself does, so that the benchmark measures what users run.
  nlpkit::keep_freed_memory();
  // The first argument picks the benchmark; without one it is the classifier's.
  const std::string bench = argc >= 2 ? argv[1] : "";
  if (bench == "recurrent") return nlpkit::bench::recurrent_main(argc - 1, argv + 1);
  if (bench == "bert") return nlpkit::bench::bert_main(argc - 1, argv + 1);
  if (bench == "wordpiece") return nlpkit::bench::wordpiece_main(argc - 1, argv + 1);
  if (bench == "sentencepiece") return nlpkit::bench::sentencepiece_main(argc - 1, argv + 1);
  if (bench == "transformer") return nlpkit::bench::transformer_main(argc - 1, argv + 1);
  if (bench == "classifier") {
    --argc;
    ++argv;
  }
  try {
    return run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "nlpkit_bench: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nlpkit_bench: " << e.what() << "\n";
    return 1;
  }
}
