#include "trainers/tasks/linear_baseline.h"

#include <filesystem>
#include <iostream>

#include "datasets/batching.h"
#include "datasets/features.h"
#include "datasets/file_io.h"
#include "datasets/text_classification.h"
#include "datasets/tokenizers.h"
#include "trainers/logging.h"
#include "trainers/metrics.h"
#include "trainers/registry.h"
#include "trainers/tasks/classification.h"

namespace nlpkit {

torch::Tensor LogisticRegression::logits(const torch::Tensor& x) const {
  return (x.is_sparse() ? torch::mm(x, weight) : x.mm(weight)) + bias;
}

LogisticRegression fit_logistic_regression(const torch::Tensor& x, const torch::Tensor& labels,
                                           int64_t num_classes, double l2, int64_t iterations) {
  TORCH_CHECK(x.dim() == 2 && labels.dim() == 1 && x.size(0) == labels.size(0),
              "fit_logistic_regression: x (N, F) and labels (N) expected, got ", x.sizes(), " and ",
              labels.sizes());
  const int64_t n = x.size(0);
  // The gradient by hand, X^T (softmax - Y) / N + l2 W, with X^T built once: autograd through a
  // sparse matmul would transpose and re-sort X on every one of L-BFGS's evaluations.
  const torch::Tensor xs = x.is_sparse() ? x.coalesce() : x;
  const torch::Tensor xt = x.is_sparse() ? x.t().coalesce() : x.t().contiguous();
  const torch::Tensor y = torch::one_hot(labels, num_classes).to(torch::kFloat32);  // (N, C)
  LogisticRegression model;
  model.weight = torch::zeros({x.size(1), num_classes}, torch::requires_grad());
  model.bias = torch::zeros({num_classes}, torch::requires_grad());
  torch::optim::LBFGS lbfgs({model.weight, model.bias}, torch::optim::LBFGSOptions(1.0)
                                                            .max_iter(iterations)
                                                            .history_size(10)
                                                            .line_search_fn("strong_wolfe"));
  auto closure = [&] {
    torch::NoGradGuard no_grad;
    const torch::Tensor logits = torch::mm(xs, model.weight) + model.bias;  // (N, C)
    const torch::Tensor log_p = torch::log_softmax(logits, 1);
    const torch::Tensor loss = -(log_p * y).sum() / n + 0.5 * l2 * model.weight.pow(2).sum();
    const torch::Tensor residual = (log_p.exp() - y) / n;  // dLoss/dlogits
    model.weight.mutable_grad() = torch::mm(xt, residual) + l2 * model.weight;
    model.bias.mutable_grad() = residual.sum(0);
    return loss;
  };
  lbfgs.step(closure);
  model.weight = model.weight.detach();
  model.bias = model.bias.detach();
  return model;
}

namespace {

class LinearBaselineTask : public Task {
 public:
  LinearBaselineTask(const ExperimentConfig& config, const std::string& artifacts_dir)
      : config_(config),
        tokenizer_(find_entry(tokenizer_registry(), config.tokenizer.type, "tokenizer type")
                       .build(config.tokenizer)) {
    if (!artifacts_dir.empty()) {
      throw InputError(
          "task linear_baseline keeps no checkpoints; its results are in "
          "RUN/linear_baseline.json");
    }
    if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
    train_ = read(config.data.train);
    labels_ = LabelMap::from_examples(train_.examples);
    if (labels_.size() < 2) {
      throw InputError("classification needs at least 2 labels; " + config.data.train + " has " +
                       std::to_string(labels_.size()));
    }
    const auto n = static_cast<int64_t>(train_.examples.size());
    if (n < config.linear.folds) {
      throw InputError("linear.folds " + std::to_string(config.linear.folds) + " needs at least " +
                       "as many examples; " + config.data.train + " has " + std::to_string(n));
    }
    for (const auto& e : train_.examples) train_tokens_.push_back(tokenizer_->tokenize(e.text));
    train_labels_ = labels_.ids(train_.examples);
    for (Split s : {Split::kValid, Split::kTest}) {
      if (!path(s).empty()) {
        ClassificationData d = read(path(s));
        for (const auto& e : d.examples) {
          if (!labels_.contains(e.label)) {
            throw InputError(path(s) + ": label '" + e.label +
                             "' does not occur in the training data");
          }
        }
        other_[s] = std::move(d);
      }
    }
  }

  std::shared_ptr<torch::nn::Module> model() override { return module_; }
  int64_t batches_per_epoch() override { return 0; }
  StepOutput train_step(int64_t, int64_t) override {
    throw std::logic_error("task linear_baseline trains in train_standalone()");
  }
  bool has_split(Split s) const override { return !path(s).empty(); }
  Evaluation evaluate(Split) override {
    throw InputError("task linear_baseline evaluates during `nlpkit train` (linear_baseline.json)");
  }
  std::vector<std::string> predict(const std::vector<std::string>&) override {
    throw InputError("task linear_baseline keeps no model to predict with");
  }
  void save_artifacts(const std::string&) const override {}

  std::string summary() const override {
    std::string out = "data: train " + std::to_string(train_.examples.size());
    for (const auto& [s, d] : other_) {
      out += std::string(" ") + split_name(s) + " " + std::to_string(d.examples.size());
    }
    return out + " | features " + config_.linear.features + " | " +
           std::to_string(config_.linear.folds) + "-fold grid of " +
           std::to_string(config_.linear.ngram_max.size() * config_.linear.l2.size());
  }

  bool train_standalone() override {
    const LinearBaselineConfig& c = config_.linear;
    ProgressReporter reporter(config_.logging.progress == "bar" ? "line"
                                                                : config_.logging.progress);
    const std::vector<SplitIndices> folds =
        stratified_kfold(train_labels_, c.folds, static_cast<uint64_t>(config_.seed));
    nlohmann::json grid = nlohmann::json::array();
    double best_score = -1;
    int64_t best_n = 1;
    double best_l2 = c.l2.front();
    for (int64_t max_n : c.ngram_max) {
      for (double l2 : c.l2) {
        double sum = 0;
        for (const SplitIndices& fold : folds) {
          const Evaluation e = fit_and_score(select(fold.train), select(fold.test), max_n, l2);
          sum += e.metrics.at(c.metric);
        }
        const double score = sum / static_cast<double>(folds.size());
        grid.push_back(nlohmann::json{{"ngram_max", max_n}, {"l2", l2}, {c.metric, score}});
        char line[160];
        std::snprintf(line, sizeof line, "cv ngrams 1..%lld | l2 %.1e | %s %.4f",
                      static_cast<long long>(max_n), l2, c.metric.c_str(), score);
        reporter.message(line);
        if (score > best_score) {
          best_score = score;
          best_n = max_n;
          best_l2 = l2;
        }
      }
    }
    nlohmann::json report = {
        {"features", c.features},
        {"folds", c.folds},
        {"metric", c.metric},
        {"grid", grid},
        {"best", {{"ngram_max", best_n}, {"l2", best_l2}, {c.metric, best_score}}}};
    std::vector<int64_t> all(train_labels_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    const Data train = select(all);
    for (const auto& [s, d] : other_) {
      Data eval;
      for (const auto& e : d.examples) eval.tokens.push_back(tokenizer_->tokenize(e.text));
      eval.labels = labels_.ids(d.examples);
      const Evaluation e = fit_and_score(train, eval, best_n, best_l2);
      report[split_name(s)] = e.report;
      std::cout << "\n"
                << split_name(s) << " (ngrams 1.." << best_n << ", l2 " << best_l2 << ")\n"
                << e.table;
      if (s == Split::kTest) {
        std::filesystem::create_directories(config_.run_dir());
        write_file_atomic(config_.run_dir() + "/test_metrics.json", e.report.dump(2) + "\n");
      }
    }
    std::filesystem::create_directories(config_.run_dir());
    write_file_atomic(config_.run_dir() + "/linear_baseline.json", report.dump(2) + "\n");
    write_file_atomic(config_.run_dir() + "/config.yaml", dump_config(config_));
    reporter.message("wrote " + config_.run_dir() + "/linear_baseline.json");
    return true;
  }

 private:
  struct Data {
    std::vector<std::vector<std::string>> tokens;
    std::vector<int64_t> labels;
  };

  Data select(const std::vector<int64_t>& idx) const {
    Data d;
    for (int64_t i : idx) {
      d.tokens.push_back(train_tokens_[i]);
      d.labels.push_back(train_labels_[i]);
    }
    return d;
  }

  torch::Tensor features(const std::vector<std::vector<std::string>>& docs,
                         const FeatureVocabulary& vocab) const {
    const std::string& f = config_.linear.features;
    if (f == "tfidf") return tfidf(docs, vocab);
    return bag_of_words(docs, vocab, f == "binary");
  }

  /// Fits vocabulary, IDF and weights on `train` alone (no peeking at the held-out part).
  Evaluation fit_and_score(const Data& train, const Data& eval, int64_t max_n, double l2) const {
    FeatureOptions fo;
    fo.max_n = max_n;
    fo.min_freq = config_.data.min_freq;
    fo.max_features = config_.data.max_vocab_size;
    const FeatureVocabulary vocab = FeatureVocabulary::fit(train.tokens, fo);
    if (vocab.size() == 0) {
      throw InputError("linear_baseline: no features left in " + config_.data.train +
                       " (data.min_freq " + std::to_string(config_.data.min_freq) +
                       " removes every term)");
    }
    const LogisticRegression lr = fit_logistic_regression(
        features(train.tokens, vocab), torch::tensor(train.labels, torch::kInt64), labels_.size(),
        l2, config_.linear.iterations);
    torch::NoGradGuard no_grad;
    const torch::Tensor x = features(eval.tokens, vocab);
    return evaluate_classifier(eval.labels, std::max<int64_t>(1, x.size(0)), labels_.names(),
                               [&](const std::vector<int64_t>&) { return lr.logits(x); });
  }

  ClassificationData read(const std::string& file) const {
    ClassificationFileOptions o;
    o.format = config_.data.format;
    o.text_field = config_.data.text_field;
    o.label_field = config_.data.label_field;
    o.on_error = config_.data.on_error;
    ClassificationData d = load_classification_file(file, o);
    if (d.examples.empty()) throw InputError("data file has no examples: " + file);
    return d;
  }

  const std::string& path(Split s) const {
    return s == Split::kTrain   ? config_.data.train
           : s == Split::kValid ? config_.data.valid
                                : config_.data.test;
  }

  ExperimentConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ClassificationData train_;
  LabelMap labels_;
  std::vector<std::vector<std::string>> train_tokens_;
  std::vector<int64_t> train_labels_;
  std::map<Split, ClassificationData> other_;
  std::shared_ptr<torch::nn::Module> module_ = std::make_shared<torch::nn::Module>();
};

}  // namespace

std::unique_ptr<Task> make_linear_baseline_task(const ExperimentConfig& config,
                                                const std::string& artifacts_dir,
                                                torch::Device device) {
  return std::make_unique<LinearBaselineTask>(config, artifacts_dir);
}

}  // namespace nlpkit
