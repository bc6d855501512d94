// The nlpkit command line. The only place that parses arguments and the only place that catches:
// one clear line on error, exit 2 for bad config or input, 1 for anything else.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "datasets/cmudict.h"
#include "datasets/file_io.h"
#include "datasets/frames.h"
#include "datasets/sentencepiece.h"
#include "datasets/spam_assassin.h"
#include "datasets/text_classification.h"
#include "datasets/word_vectors.h"
#include "datasets/wordpiece.h"
#include "trainers/allocator.h"
#include "trainers/checkpoint.h"
#include "tools/cli/launch.h"
#include "trainers/config.h"
#include "trainers/distributed.h"
#include "trainers/huggingface.h"
#include "trainers/metrics.h"
#include "trainers/registry.h"
#include "trainers/runs.h"
#include "trainers/tasks/classification.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;
using namespace nlpkit;

namespace {

constexpr int kBadInput = 2;
constexpr int kFailure = 1;

/// threads: 0 = every core the machine has (LibTorch's own default can be fewer, e.g. 1 on a
/// 2-core VM), shared out among the ranks on this machine (LOCAL_WORLD_SIZE, which torchrun and
/// nlpkit launch set).
void apply_threads(const ExperimentConfig& config) {
  int64_t ranks_here = 1;
  if (const char* local = std::getenv("LOCAL_WORLD_SIZE")) ranks_here = std::max(1, std::atoi(local));
  const int64_t n = config.threads > 0
                        ? config.threads
                        : std::max<int64_t>(1, std::thread::hardware_concurrency() / ranks_here);
  torch::set_num_threads(static_cast<int>(n));
}

void print_evaluation(const std::string& title, const Evaluation& eval) {
  std::cout << "\n" << title << "\n" << eval.table;
}

int cmd_train(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& resume) {
  ExperimentConfig config = load_config(config_path, overrides);
  if (!resume.empty()) config.trainer.resume = resume;
  // torchrun, nlpkit launch or Slurm say which rank this is; alone it is rank 0 of 1.
  const WorldInfo world = world_from_environment(config.distributed);
  const bool main = world.rank == 0;
  if (main) {
    std::cout << "# resolved config (" << config_path << ")\n" << dump_config(config) << std::endl;
  }
  apply_threads(config);
  const torch::Device device = rank_device(config.device, world);
  // cuDNN times its algorithms for every new input shape: worth it when shapes repeat.
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(config.cudnn_benchmark);
  auto comm = Communicator::connect(world, config.distributed, device);
  config.data.shard_index = world.rank;
  config.data.shard_count = world.world_size;
  seed_everything(config.seed);
  if (main) {
    std::cerr << "device " << device << " | threads " << torch::get_num_threads() << " | run "
              << config.run_dir();
    if (world.distributed()) {
      std::cerr << " | " << world.world_size << " ranks (" << comm->backend() << ", "
                << world.launcher << ")";
    }
    std::cerr << "\n";
  }
  auto task = make_task(config, "", device);
  int64_t parameters = 0, trainable = 0;
  std::unordered_set<const void*> seen;  // a tensor shared under two names counts once
  for (const auto& p : task->model()->parameters()) {
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    parameters += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  if (main) {
    std::cerr << task->summary() << "\n";
    // Tasks without a model section (linear_baseline) have no parameters to count.
    if (parameters > 0) {
      std::cerr << "model " << config.model.type << " | " << parameters << " parameters"
                << (trainable < parameters ? " (" + std::to_string(trainable) + " trainable)" : "")
                << "\n";
    }
  }
  if (task->train_standalone()) return 0;
  Trainer trainer(config, *task, device, comm);
  FitResult result = trainer.fit();
  if (!main) return result.interrupted ? 128 + result.signal : 0;
  std::cerr << "checkpoint " << result.last_checkpoint << "\n";
  if (!result.best_checkpoint.empty()) std::cerr << "best " << result.best_checkpoint << "\n";
  if (result.test) {
    print_evaluation("test (" +
                         (result.best_checkpoint.empty() || !config.trainer.keep_best
                              ? std::string("final weights")
                              : "best checkpoint " + result.best_checkpoint) +
                         ")",
                     *result.test);
    std::ofstream(config.run_dir() + "/test_metrics.json") << result.test->report.dump(2) << "\n";
  }
  if (result.interrupted) return 128 + result.signal;
  return 0;
}

/// `nlpkit train --bagging K`: K runs of the config, each on a bootstrap sample of the training
/// split with its own seed (seed, seed+1, ...), in RUN_DIR/bag_1 .. bag_K.
int cmd_bagging(const std::string& config_path, const std::vector<std::string>& overrides,
                int64_t k) {
  const ExperimentConfig config = load_config(config_path, overrides);
  if (config.task != "classification") {
    throw ConfigError("train --bagging: only task classification can be bagged (this config's task is " +
                      config.task + ")");
  }
  const std::string root = config.run_dir();
  for (int64_t i = 1; i <= k; ++i) {
    std::vector<std::string> o = overrides;
    o.push_back("data.bootstrap=true");
    o.push_back("seed=" + std::to_string(config.seed + i - 1));
    o.push_back("output_dir=" + root + "/bag_" + std::to_string(i));
    std::cerr << "bagging: model " << i << " of " << k << " (seed " << config.seed + i - 1
              << ", a bootstrap sample of the training split)\n";
    if (const int rc = cmd_train(config_path, o, ""); rc != 0) return rc;
  }
  std::cerr << "bagging: " << k << " models in " << root << "/bag_*; `nlpkit evaluate " << root
            << "` and `nlpkit predict " << root << " FILE` average their probabilities\n";
  return 0;
}

/// The members of an ensemble: a bagging folder (RUN_DIR with bag_* runs and no checkpoints of
/// its own) stands for its bags; `more` are added as given.
std::vector<std::string> ensemble_members(const std::string& path,
                                          const std::vector<std::string>& more) {
  std::vector<std::string> members;
  namespace fs = std::filesystem;
  if (fs::is_directory(path) && !fs::exists(fs::path(path) / "checkpoints") &&
      !fs::exists(fs::path(path) / "manifest.json")) {
    for (const auto& entry : fs::directory_iterator(path)) {
      if (entry.is_directory() && entry.path().filename().string().rfind("bag_", 0) == 0) {
        members.push_back(entry.path().string());
      }
    }
    std::sort(members.begin(), members.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;  // bag_2 before bag_10
    });
  }
  if (members.empty()) members.push_back(path);
  members.insert(members.end(), more.begin(), more.end());
  return members;
}

/// Rebuilds the task of a checkpoint (its saved config, vocabulary, labels and weights).
std::unique_ptr<Task> load_task(const std::string& checkpoint,
                                const std::vector<std::string>& overrides,
                                ExperimentConfig* config_out) {
  const std::string dir = find_best_checkpoint(checkpoint);
  verify_checkpoint(dir);
  ExperimentConfig config = load_config(dir + "/config.yaml", overrides);
  apply_threads(config);
  auto task = make_task(config, dir, resolve_device(config.device));
  load_weights(*task, dir);
  if (config_out) *config_out = config;
  return task;
}

/// The class probabilities of `inputs` averaged over `members` (checkpoints of classification
/// tasks with the same classes in the same order), and those classes.
std::pair<torch::Tensor, std::vector<std::string>> ensemble_probabilities(
    const std::vector<std::string>& members, const std::vector<std::string>& overrides,
    const std::vector<std::string>& inputs) {
  torch::Tensor sum;
  std::vector<std::string> names;
  for (const std::string& member : members) {
    auto task = load_task(member, overrides, nullptr);
    const torch::Tensor p = task->class_probabilities(inputs);
    if (names.empty()) {
      names = task->class_names();
    } else if (task->class_names() != names) {
      throw InputError("ensemble: " + member + " has other classes than " + members.front());
    }
    sum = sum.defined() ? sum + p : p;
  }
  return {sum / static_cast<double>(members.size()), names};
}

/// `nlpkit evaluate` of an ensemble: the members' averaged probabilities on the split's file.
int evaluate_ensemble(const std::vector<std::string>& members, const std::string& split_name_,
                      const std::vector<std::string>& overrides, const std::string& output) {
  const ExperimentConfig config =
      load_config(find_best_checkpoint(members.front()) + "/config.yaml", overrides);
  const std::string path = split_name_ == "valid"   ? config.data.valid
                           : split_name_ == "train" ? config.data.train
                                                    : config.data.test;
  if (path.empty()) {
    throw ConfigError("evaluate: the checkpoint's config names no " + split_name_ +
                      " file; pass --data FILE");
  }
  ClassificationFileOptions file;
  file.format = config.data.format;
  file.text_field = config.data.text_field;
  file.label_field = config.data.label_field;
  file.on_error = config.data.on_error;
  const ClassificationData examples = load_classification_file(path, file);
  std::vector<std::string> texts;
  for (const auto& e : examples.examples) texts.push_back(e.text);
  const auto [probabilities, names] = ensemble_probabilities(members, overrides, texts);
  std::vector<int64_t> labels;
  for (const auto& e : examples.examples) {
    const auto it = std::find(names.begin(), names.end(), e.label);
    if (it == names.end()) throw InputError(path + ": label '" + e.label + "' unknown to the models");
    labels.push_back(it - names.begin());
  }
  const torch::Tensor targets = torch::tensor(labels, torch::kInt64);
  ClassificationReport report = classification_report(targets, probabilities, names);
  report.loss = torch::nn::functional::nll_loss(probabilities.clamp_min(1e-12).log(), targets)
                    .item<double>();
  const Evaluation eval = classification_evaluation(report);
  print_evaluation(split_name_ + " (ensemble of " + std::to_string(members.size()) + ": " +
                       members.front() + " ...)",
                   eval);
  const std::string out = output.empty() ? members.front() + "/../eval_" + split_name_ + "_ensemble.json"
                                         : output;
  write_file_atomic(out, eval.report.dump(2) + "\n");
  std::cerr << "wrote " << out << "\n";
  return 0;
}

int cmd_evaluate(const std::string& checkpoint, const std::string& split_name_,
                 const std::string& data, const std::string& output,
                 const std::vector<std::string>& overrides,
                 const std::vector<std::string>& ensemble) {
  std::vector<std::string> o = overrides;
  if (!data.empty()) o.push_back("data." + split_name_ + "=" + data);
  const std::vector<std::string> members = ensemble_members(checkpoint, ensemble);
  if (members.size() > 1) return evaluate_ensemble(members, split_name_, o, output);
  const std::string dir = find_best_checkpoint(checkpoint);
  ExperimentConfig config;
  auto task = load_task(dir, o, &config);
  const Split split = split_name_ == "valid"   ? Split::kValid
                      : split_name_ == "train" ? Split::kTrain
                                               : Split::kTest;
  if (!task->has_split(split)) {
    throw ConfigError("evaluate: the checkpoint's config names no " + split_name_ +
                      " file; pass --data FILE");
  }
  Evaluation eval = task->evaluate(split);
  print_evaluation(split_name_ + " (" + dir + ")", eval);
  const std::string out = output.empty() ? dir + "/eval_" + split_name_ + ".json" : output;
  write_file_atomic(out, eval.report.dump(2) + "\n");
  std::cerr << "wrote " << out << "\n";
  return 0;
}

int cmd_predict(const std::string& checkpoint, const std::string& input,
                const std::vector<std::string>& overrides, const std::string& explain_dir,
                const std::string& attention_png, const std::vector<std::string>& ensemble) {
  const std::vector<std::string> members = ensemble_members(checkpoint, ensemble);
  if (members.size() > 1 && !(explain_dir.empty() && attention_png.empty())) {
    throw InputError(std::string("predict ") +
                     (explain_dir.empty() ? "--attention-png" : "--explain") +
                     ": draws one model's attention; give one checkpoint");
  }
  if (!explain_dir.empty() && !attention_png.empty()) {
    throw InputError("predict: give --explain DIR (one PNG per input) or --attention-png FILE "
                     "(one input), not both");
  }
  auto task = members.size() > 1 ? nullptr : load_task(checkpoint, overrides, nullptr);
  std::ifstream file;
  if (input != "-") {
    file.open(input);
    if (!file) throw InputError("input file not found: " + input);
  }
  std::istream& in = input == "-" ? std::cin : file;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  // Pictures first: a task that cannot draw them fails before printing anything.
  if (!explain_dir.empty()) {
    const std::vector<std::string> written = task->explain(lines, explain_dir);
    std::cerr << "wrote " << written.size() << " attention heatmap(s) to " << explain_dir << "\n";
  }
  if (!attention_png.empty()) {
    if (lines.size() != 1) {
      throw InputError("predict --attention-png: draws one input's attention, " +
                       (input == "-" ? std::string("standard input") : input) + " has " +
                       std::to_string(lines.size()) +
                       " lines (--explain DIR writes one PNG per line)");
    }
    // Drawn into a folder beside FILE, then moved into place: nothing half-written at FILE.
    const std::filesystem::path target(attention_png);
    const std::filesystem::path scratch =
        target.parent_path() / (target.filename().string() + ".nlpkit-tmp");
    std::filesystem::remove_all(scratch);
    try {
      const std::vector<std::string> written = task->explain(lines, scratch.string());
      std::filesystem::rename(written.at(0), target);
    } catch (...) {
      std::filesystem::remove_all(scratch);
      throw;
    }
    std::filesystem::remove_all(scratch);
    std::cerr << "wrote " << attention_png << "\n";
  }
  if (members.size() > 1) {
    const auto [probabilities, names] = ensemble_probabilities(members, overrides, lines);
    for (const auto& line : label_lines(probabilities, names)) std::cout << line << "\n";
    return 0;
  }
  for (const auto& line : task->predict(lines)) std::cout << line << "\n";
  return 0;
}

/// Writes into `out` (which must not exist yet) through a temporary sibling folder renamed at
/// the end, so a failure leaves nothing half-written.
void write_folder_atomically(const std::string& out,
                             const std::function<void(const std::string&)>& write) {
  if (fs::exists(out)) throw InputError("output folder already exists: " + out);
  const fs::path parent = fs::absolute(out).parent_path();
  if (!fs::is_directory(parent))
    throw InputError("output folder's parent does not exist: " + parent.string());
  const std::string tmp = out + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write(tmp);
    for (const auto& entry : fs::directory_iterator(tmp)) fsync_path(entry.path().string());
    fs::rename(tmp, out);
    fsync_path(parent.string());
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
}

int cmd_export(const std::string& format, const std::string& checkpoint, const std::string& out) {
  if (format != "hf") throw InputError("export: unknown format '" + format + "' (expected hf)");
  auto task = load_task(checkpoint, {}, nullptr);
  write_folder_atomically(out, [&](const std::string& dir) { task->export_huggingface(dir); });
  std::cerr << "wrote " << out << " (HuggingFace: config.json, model.safetensors, vocab.txt)\n";
  return 0;
}

int cmd_forward(const std::string& model_dir, const std::string& inputs,
                const std::string& output) {
  const NamedTensors in = load_safetensors(inputs).tensors;
  const NamedTensors out = hf_forward(model_dir, in);
  save_safetensors(output, out, {{"format", "pt"}});
  std::cerr << "wrote " << output << " (" << out.size() << " tensors)\n";
  return 0;
}

int cmd_plot(const std::vector<std::string>& run_dirs, const std::string& output,
             const std::string& metrics_list) {
  std::vector<std::string> metrics;
  std::stringstream ss(metrics_list);
  for (std::string m; std::getline(ss, m, ',');) {
    if (!m.empty()) metrics.push_back(m);
  }
  // One run: its own plots/ folder; several: plots/ here.
  const std::string out = !output.empty()        ? output
                          : run_dirs.size() == 1 ? run_dirs[0] + "/plots"
                                                 : "plots";
  for (const auto& path : plot_runs(run_dirs, out, metrics)) std::cout << path << "\n";
  return 0;
}

int cmd_runs_list(const std::vector<std::string>& dirs) {
  std::vector<RunSummary> runs;
  for (const auto& dir : dirs) {
    for (const auto& run : find_runs(dir)) runs.push_back(summarize_run(run));
  }
  std::cout << format_runs_table(runs);
  return 0;
}

int cmd_dump_config(const std::string& config_path, const std::vector<std::string>& overrides,
                    bool reference) {
  if (reference) {
    std::cout << config_reference_markdown();
    return 0;
  }
  if (config_path.empty()) throw ConfigError("dump-config: give a config file or --reference");
  std::cout << dump_config(load_config(config_path, overrides));
  return 0;
}

int cmd_data_prepare(const std::string& name, const std::string& out, bool strip_stress) {
  const std::string dir = out.empty() ? "data/" + name : out;
  if (strip_stress && name != "cmudict") {
    throw InputError("data prepare: --strip-stress is an option of cmudict only");
  }
  if (name == "cmudict") {
    CmudictOptions options;
    options.strip_stress = strip_stress;
    prepare_cmudict(dir, options, std::cout);
  } else if (name == "spam_assassin") {
    prepare_spam_assassin(dir, std::cout);
  } else if (name == "moving_mnist") {
    prepare_moving_mnist(dir, std::cout);
  } else {
    throw InputError("data prepare: unknown data set '" + name +
                     "'; available: cmudict, moving_mnist, spam_assassin");
  }
  return 0;
}

/// `nlpkit tokenizer` learns and applies subword vocabularies: WordPiece (BERT) and
/// SentencePiece (DeBERTa-v3).
void check_tokenizer_type(const std::string& type) {
  if (type != "wordpiece" && type != "sentencepiece") {
    throw InputError("tokenizer: unknown --type '" + type +
                     "'; supported: sentencepiece, wordpiece");
  }
}

/// `spm.model` -> `spm.vocab`: the listing beside the model, as spm_train names it.
std::string vocab_listing_path(const std::string& model) {
  const std::string suffix = ".model";
  const bool has_suffix =
      model.size() > suffix.size() && model.compare(model.size() - suffix.size(), suffix.size(),
                                                    suffix) == 0;
  return (has_suffix ? model.substr(0, model.size() - suffix.size()) : model) + ".vocab";
}

int cmd_tokenizer_train(const std::string& type, const std::string& corpus, int64_t vocab_size,
                        std::string output, bool lowercase, int64_t min_frequency,
                        const std::string& model_type, int64_t threads) {
  check_tokenizer_type(type);
  const std::string text = nlpkit::detail::read_file(corpus, "corpus");
  std::vector<std::string> lines;
  nlpkit::detail::for_each_line(text,
                                [&](std::string_view line, int64_t) { lines.emplace_back(line); });
  if (type == "sentencepiece") {
    if (output.empty()) output = "spm.model";
    SentencePieceTrainOptions options;
    options.model_type = model_type;
    options.lower_case = lowercase;
    options.threads = threads;
    const auto start = std::chrono::steady_clock::now();
    std::cerr << "tokenizer train: " << lines.size() << " lines, " << model_type << "\n";
    const SentencePieceTokenizer tokenizer = train_sentencepiece(lines, vocab_size, options);
    const std::string listing = vocab_listing_path(output);
    tokenizer.save_model(output);
    tokenizer.save_vocab(listing);
    std::cerr << "wrote " << output << " and " << listing << " (" << tokenizer.vocab_size()
              << " pieces, "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
              << " s)\n";
    return 0;
  }
  if (output.empty()) output = "vocab.txt";
  WordPieceOptions options;
  options.lower_case = lowercase;
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::string last_stage;
  int64_t last_tenth = -1;
  auto progress = [&](const char* stage, int64_t done, int64_t total) {
    const int64_t tenth = total > 0 ? 10 * done / total : 10;
    if (stage == last_stage && tenth == last_tenth) return;  // one line per 10%
    last_stage = stage;
    last_tenth = tenth;
    char line[160];
    std::snprintf(line, sizeof line, "tokenizer train: %s %lld/%lld (%.1f s)\n",
                  last_stage == "count" ? "reading lines" : "vocabulary", (long long)done,
                  (long long)total, seconds());
    std::cerr << line << std::flush;
  };
  const std::vector<std::string> vocab =
      train_wordpiece(lines, vocab_size, options, min_frequency, progress);
  WordPieceTokenizer(vocab, options).save_vocab(output);
  std::cerr << "wrote " << output << " (" << vocab.size() << " tokens)\n";
  return 0;
}

int cmd_tokenizer_encode(const std::string& type, const std::string& vocab,
                         const std::string& model, bool lowercase, bool add_special_tokens) {
  check_tokenizer_type(type);
  std::unique_ptr<SubwordTokenizer> tokenizer;
  if (type == "sentencepiece") {
    if (model.empty()) throw InputError("tokenizer encode: --type sentencepiece needs --model spm.model");
    SentencePieceOptions options;
    options.lower_case = lowercase;
    tokenizer = std::make_unique<SentencePieceTokenizer>(
        SentencePieceTokenizer::from_file(model, options));
  } else {
    if (vocab.empty()) throw InputError("tokenizer encode: --type wordpiece needs --vocab vocab.txt");
    WordPieceOptions options;
    options.lower_case = lowercase;
    tokenizer =
        std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(vocab, options));
  }
  for (std::string line; std::getline(std::cin, line);) {
    const std::vector<int64_t> ids = add_special_tokens
                                         ? tokenizer->encode_pair(line, nullptr, 0, false).input_ids
                                         : tokenizer->encode(line);
    nlohmann::ordered_json out;
    out["tokens"] = nlohmann::json::array();
    for (int64_t id : ids) out["tokens"].push_back(tokenizer->id_to_token(id));
    out["ids"] = ids;
    std::cout << out.dump() << "\n";
  }
  return 0;
}

void print_scored(const std::vector<ScoredWord>& words) {
  for (const auto& [word, score] : words) {
    char line[64];
    std::snprintf(line, sizeof line, "\t%.4f", score);
    std::cout << word << line << "\n";
  }
}

/// `nlpkit embeddings neighbors FILE WORD...`: the k nearest words of each query by cosine.
int cmd_embeddings_neighbors(const std::string& path, const std::string& format,
                             const std::vector<std::string>& words, int64_t k) {
  const WordVectors vectors = load_word_vectors(path, format);
  for (const auto& w : words) vectors.index(w);  // every query word known before any output
  for (size_t i = 0; i < words.size(); ++i) {
    if (words.size() > 1) std::cout << (i ? "\n" : "") << "# " << words[i] << "\n";
    print_scored(nearest_neighbors(vectors, words[i], k));
  }
  return 0;
}

/// `nlpkit embeddings analogy FILE A B C`: a is to b as c is to ?
int cmd_embeddings_analogy(const std::string& path, const std::string& format,
                           const std::vector<std::string>& words, int64_t k) {
  if (words.size() != 3) {
    throw InputError("embeddings analogy: give three words A B C (A is to B as C is to ?), got " +
                     std::to_string(words.size()));
  }
  const WordVectors vectors = load_word_vectors(path, format);
  print_scored(analogy(vectors, words[0], words[1], words[2], k));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  nlpkit::keep_freed_memory();
  CLI::App app{"nlpkit: sequence and language models on LibTorch, configured in YAML"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nlpkit 0.1.0");

  std::string config_path, resume, checkpoint, split = "test", data, output, input, name, out;
  std::vector<std::string> overrides;
  bool reference = false;

  int64_t nproc = 1;
  int master_port = 0;
  auto* launch = app.add_subcommand(
      "launch", "run N local ranks of a command, e.g. launch --nproc 2 train cfg.yaml");
  launch->add_option("--nproc", nproc, "ranks to start on this machine")->required();
  launch->add_option("--master-port", master_port, "rendezvous port; default: a free one");
  // Everything from the first positional on is the command the ranks run, options included.
  launch->prefix_command();
  launch->footer("The ranks get RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.");

  auto* train = app.add_subcommand("train", "train a model from a YAML config");
  train->add_option("config", config_path, "experiment YAML file")->required();
  train->add_option("overrides", overrides, "key.path=value overrides");
  train->add_option("--resume", resume, "checkpoint or run directory to resume from (or 'auto')");
  int64_t bagging = 0;
  train->add_option("--bagging", bagging,
                    "train K models on bootstrap samples of the training split (seeds seed .. "
                    "seed+K-1) into RUN_DIR/bag_1..K; evaluate/predict RUN_DIR average them")
      ->check(CLI::Range(int64_t{2}, int64_t{1000}));
  std::vector<std::string> ensemble;

  auto* evaluate =
      app.add_subcommand("evaluate", "evaluate a checkpoint; prints a table, writes JSON");
  evaluate
      ->add_option("checkpoint", checkpoint, "checkpoint or run directory (its best checkpoint)")
      ->required();
  evaluate->add_option("overrides", overrides, "key.path=value overrides");
  evaluate->add_option("--split", split, "train, valid or test")
      ->check(CLI::IsMember({"train", "valid", "test"}));
  evaluate->add_option("--data", data, "evaluate this file instead of the config's");
  evaluate->add_option("--ensemble", ensemble,
                       "another checkpoint whose class probabilities are averaged in (repeatable)")
      ->allow_extra_args(false);
  evaluate->add_option("--output", output,
                       "JSON report path (default: <checkpoint>/eval_<split>.json)");

  auto* predict =
      app.add_subcommand("predict", "label (or continue) each line of a text file with a model");
  predict->add_option("checkpoint", checkpoint, "checkpoint or run directory (its best checkpoint)")
      ->required();
  predict->add_option("input", input, "text file, one input per line; - for stdin")->required();
  predict->add_option("overrides", overrides, "key.path=value overrides (e.g. generation.top_k=5)");
  predict->add_option("--ensemble", ensemble,
                      "another checkpoint whose class probabilities are averaged in (repeatable; "
                      "a bagging run directory stands for all its models)")
      ->allow_extra_args(false);
  std::string explain_dir;
  predict->add_option(
      "--explain", explain_dir,
      "also write a PNG heatmap of each input's attention weights into this folder");
  std::string attention_png;
  predict->add_option("--attention-png", attention_png,
                      "one input: also write its attention weights as a PNG heatmap to this file");

  std::vector<std::string> run_dirs;
  std::string metrics_list;
  auto* plot =
      app.add_subcommand("plot", "PNG charts of loss and metrics against step, runs overlaid");
  plot->add_option("runs", run_dirs, "run directories (each with metrics.jsonl)")->required();
  plot->add_option(
      "--output", output,
      "folder for the PNG files (default: RUN_DIR/plots for one run, plots for several)");
  plot->add_option("--metrics", metrics_list,
                   "comma-separated metrics, e.g. loss,accuracy (default: every logged metric)");

  auto* runs = app.add_subcommand("runs", "compare runs");
  runs->require_subcommand(1);
  auto* runs_list = runs->add_subcommand(
      "list",
      "a table of the runs under a directory: config differences, best metric, steps, time");
  runs_list->add_option("dirs", run_dirs, "directories holding runs (or run directories)")
      ->required();

  auto* dump = app.add_subcommand("dump-config", "print the resolved config");
  dump->add_option("config", config_path, "experiment YAML file");
  dump->add_option("overrides", overrides, "key.path=value overrides");
  dump->add_flag("--reference", reference, "print the key reference (markdown) instead");

  std::string format = "hf", inputs_path;
  auto* export_cmd = app.add_subcommand(
      "export", "write a checkpoint as a HuggingFace model folder (BERT, DeBERTa)");
  export_cmd
      ->add_option("checkpoint", checkpoint, "checkpoint or run directory (its best checkpoint)")
      ->required();
  export_cmd->add_option("out", out, "output folder (must not exist)")->required();
  export_cmd->add_option("--format", format, "hf (HuggingFace transformers)");

  auto* forward = app.add_subcommand(
      "forward", "run a model on named input tensors; write every output (HuggingFace names)");
  forward
      ->add_option("model", checkpoint,
                   "HuggingFace BERT or DeBERTa folder, nlpkit checkpoint or run")
      ->required();
  forward
      ->add_option("--inputs", inputs_path,
                   "safetensors file: input_ids, attention_mask, "
                   "token_type_ids")
      ->required();
  forward->add_option("--output", output, "safetensors file to write")->required();

  auto* list =
      app.add_subcommand("list", "print the registered model types, tasks, optimizers, ...");

  auto* data_cmd = app.add_subcommand("data", "data sets");
  data_cmd->require_subcommand(1);
  auto* prepare = data_cmd->add_subcommand("prepare", "fetch and convert a public data set");
  prepare->add_option("name", name, "data set: cmudict, spam_assassin or moving_mnist")->required();
  prepare->add_option("--out", out, "output directory (default: data/<name>)");
  bool strip_stress = false;
  prepare->add_flag("--strip-stress", strip_stress,
                    "cmudict: drop the stress digits of the vowels (AH0 -> AH)");

  auto* tokenizer = app.add_subcommand("tokenizer", "learn or apply a subword vocabulary");
  tokenizer->require_subcommand(1);
  std::string tokenizer_type, corpus, vocab, vocab_out, spm_model, model_type = "unigram";
  int64_t vocab_size = 0, min_frequency = 2, threads = 1;
  bool lowercase = true, add_special_tokens = false;
  auto* tok_train = tokenizer->add_subcommand(
      "train", "learn a vocabulary from a text file (one or more sentences per line)");
  tok_train->add_option("--type", tokenizer_type, "tokenizer type: wordpiece or sentencepiece")
      ->required();
  tok_train->add_option("corpus", corpus, "text file to learn from")->required();
  tok_train->add_option("--vocab-size", vocab_size, "entries, special tokens included")->required();
  tok_train->add_option("--output", vocab_out,
                        "file to write (default: vocab.txt; sentencepiece: spm.model, with the "
                        "listing spm.vocab beside it)");
  auto* train_lowercase = tok_train->add_flag(
      "--lowercase,!--no-lowercase", lowercase,
      "lowercase and strip accents first, as BERT uncased (wordpiece default); sentencepiece: "
      "case-fold inside spm.model (default: cased, as DeBERTa-v3)");
  tok_train->add_option("--min-frequency", min_frequency,
                        "wordpiece: merge only pairs seen at least this often (default: 2)");
  tok_train->add_option("--model-type", model_type, "sentencepiece: unigram (default) or bpe");
  tok_train->add_option("--threads", threads,
                        "sentencepiece: training threads (default 1: the same model everywhere)");
  auto* tok_encode = tokenizer->add_subcommand(
      "encode", "tokenize each line of standard input; one JSON {tokens, ids} per line");
  tok_encode->add_option("--type", tokenizer_type, "tokenizer type: wordpiece or sentencepiece")
      ->required();
  tok_encode->add_option("--vocab", vocab, "wordpiece: vocab.txt");
  tok_encode->add_option("--model", spm_model, "sentencepiece: spm.model");
  auto* encode_lowercase =
      tok_encode->add_flag("--lowercase,!--no-lowercase", lowercase,
                           "lowercase (wordpiece: and strip accents) first (wordpiece default, "
                           "as BERT uncased; sentencepiece: off by default, as DeBERTa-v3)");
  tok_encode->add_flag("--add-special-tokens", add_special_tokens, "wrap in [CLS] ... [SEP]");

  auto* embeddings =
      app.add_subcommand("embeddings", "query word vectors (word2vec text or binary files)");
  embeddings->require_subcommand(1);
  std::string vectors_path, vectors_format = "auto";
  std::vector<std::string> query_words;
  int64_t top_k = 10;
  auto* neighbors = embeddings->add_subcommand(
      "neighbors", "the nearest words of each query word, by cosine similarity");
  auto* analogy_cmd = embeddings->add_subcommand(
      "analogy", "A B C: the words closest to B - A + C (A is to B as C is to ?)");
  for (auto* sub : {neighbors, analogy_cmd}) {
    sub->add_option("vectors", vectors_path, "vectors file (e.g. runs/NAME/vectors.txt)")
        ->required();
    sub->add_option("words", query_words, "query words")->required();
    sub->add_option("-k,--top", top_k, "answers per query (default: 10)")
        ->check(CLI::PositiveNumber);
    sub->add_option("--format", vectors_format, "auto (.bin = binary), text or binary")
        ->check(CLI::IsMember({"auto", "text", "binary"}));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "nlpkit: " << e.what() << " (see nlpkit --help)\n";
    return kBadInput;
  }

  try {
    if (*train) {
      if (bagging > 0 && !resume.empty()) throw ConfigError("train: --bagging and --resume do not mix");
      return bagging > 0 ? cmd_bagging(config_path, overrides, bagging)
                         : cmd_train(config_path, overrides, resume);
    }
    if (*launch) return launch_local_ranks(nproc, launch->remaining(), master_port);
    if (*evaluate) return cmd_evaluate(checkpoint, split, data, output, overrides, ensemble);
    if (*predict) return cmd_predict(checkpoint, input, overrides, explain_dir, attention_png, ensemble);
    if (*plot) return cmd_plot(run_dirs, output, metrics_list);
    if (*runs_list) return cmd_runs_list(run_dirs);
    if (*dump) return cmd_dump_config(config_path, overrides, reference);
    if (*list) {
      std::cout << format_registries();
      return 0;
    }
    if (*prepare) return cmd_data_prepare(name, out, strip_stress);
    if (*export_cmd) return cmd_export(format, checkpoint, out);
    if (*forward) return cmd_forward(checkpoint, inputs_path, output);
    if (*neighbors) return cmd_embeddings_neighbors(vectors_path, vectors_format, query_words, top_k);
    if (*analogy_cmd) return cmd_embeddings_analogy(vectors_path, vectors_format, query_words, top_k);
    if (*tok_train) {
      // SentencePiece models are cased unless asked (DeBERTa-v3); WordPiece lowercases (BERT).
      if (tokenizer_type == "sentencepiece" && train_lowercase->count() == 0) lowercase = false;
      return cmd_tokenizer_train(tokenizer_type, corpus, vocab_size, vocab_out, lowercase,
                                 min_frequency, model_type, threads);
    }
    if (*tok_encode) {
      if (tokenizer_type == "sentencepiece" && encode_lowercase->count() == 0) lowercase = false;
      return cmd_tokenizer_encode(tokenizer_type, vocab, spm_model, lowercase, add_special_tokens);
    }
  } catch (const InputError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kBadInput;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return kFailure;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kFailure;
  }
  return kFailure;
}
