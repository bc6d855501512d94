#include "trainers/tasks/fasttext.h"

#include <optional>

#include "datasets/batching.h"
#include "datasets/text_classification.h"
#include "datasets/tokenizers.h"
#include "datasets/vocab.h"
#include "modules/word_embeddings.h"
#include "trainers/registry.h"
#include "trainers/regularizers.h"
#include "trainers/tasks/classification.h"

namespace nlpkit {
namespace {

/// One split: each document's input ids (words, then n-gram buckets) and its label.
struct BagSplit {
  std::vector<std::vector<int64_t>> docs;
  std::vector<int64_t> labels;
};

class FastTextTask : public Task {
 public:
  FastTextTask(const ExperimentConfig& config, const std::string& artifacts_dir,
               torch::Device device)
      : config_(config),
        device_(device),
        tokenizer_(find_entry(tokenizer_registry(), config.tokenizer.type, "tokenizer type")
                       .build(config.tokenizer)) {
    if (artifacts_dir.empty()) {
      if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
      ClassificationData train = load_classification_file(config.data.train, file_options());
      if (train.examples.empty())
        throw InputError("data file has no examples: " + config.data.train);
      skipped_[Split::kTrain] = train.skipped;
      // data.train_examples / data.bootstrap (bagging) / augmentation.eda, as the other
      // classifiers do.
      transform_training_examples(config, &train.examples);
      labels_ = LabelMap::from_examples(train.examples);
      std::vector<std::vector<std::string>> tokens;
      for (const auto& e : train.examples) tokens.push_back(tokenizer_->tokenize(e.text));
      VocabOptions vo;
      vo.min_freq = config.data.min_freq;
      vo.max_size = config.data.max_vocab_size;
      vocab_ = Vocab::from_documents(tokens, vo);
      splits_[Split::kTrain] = encode(train, config.data.train);
      for (Split s : {Split::kValid, Split::kTest}) {
        if (has_split(s)) split(s);  // a bad file fails before the run writes anything
      }
    } else {
      vocab_ = Vocab::load(artifacts_dir + "/vocab.txt");
      labels_ = LabelMap::load(artifacts_dir + "/labels.json");
    }
    if (labels_.size() < 2) {
      throw InputError("classification needs at least 2 labels; " + config.data.train + " has " +
                       std::to_string(labels_.size()));
    }
    const FastTextModelConfig& m = config.model.fasttext;
    model_ = FastText(FastTextOptions(vocab_.size(), labels_.size())
                          .embedding_dim(m.embedding_dim)
                          .word_ngrams(m.word_ngrams)
                          .buckets(m.word_ngrams > 1 ? m.buckets : 0));
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }

  int64_t batches_per_epoch() override { return train_batches().count(); }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const BagSplit& data = split(Split::kTrain);
    const std::vector<int64_t> idx = train_batches().indices(epoch, batch);
    std::vector<int64_t> y;
    int64_t tokens = 0;
    for (int64_t i : idx) {
      y.push_back(data.labels[i]);
      tokens += static_cast<int64_t>(data.docs[i].size());
    }
    StepOutput step;
    step.loss = torch::nn::functional::cross_entropy(logits(data, idx),
                                                     torch::tensor(y, torch::kInt64).to(device_));
    step.examples = static_cast<int64_t>(idx.size());
    step.tokens = tokens;
    return step;
  }

  bool has_split(Split s) const override { return !path(s).empty(); }

  Evaluation evaluate(Split s) override {
    const BagSplit& data = split(s);
    if (data.docs.empty()) throw InputError("data file has no examples: " + path(s));
    torch::NoGradGuard no_grad;
    model_->eval();
    return evaluate_classifier(data.labels, config_.data.eval_batch_size, labels_.names(),
                               [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
  }

  torch::Tensor class_probabilities(const std::vector<std::string>& texts) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    BagSplit data;
    for (const auto& t : texts) data.docs.push_back(input_ids(t));
    return class_probabilities_of(static_cast<int64_t>(texts.size()), config_.data.eval_batch_size,
                                  [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
  }

  std::vector<std::string> class_names() const override { return labels_.names(); }

  std::vector<std::string> predict(const std::vector<std::string>& texts) override {
    return label_lines(class_probabilities(texts), labels_.names());
  }

  std::string summary() const override {
    std::map<Split, int64_t> examples;
    for (const auto& [s, data] : splits_) examples[s] = static_cast<int64_t>(data.docs.size());
    return classification_summary(examples, skipped_, vocab_.size(), labels_.names());
  }

  void save_artifacts(const std::string& dir) const override {
    vocab_.save(dir + "/vocab.txt");
    labels_.save(dir + "/labels.json");
  }

 private:
  ClassificationFileOptions file_options() const {
    ClassificationFileOptions o;
    o.format = config_.data.format;
    o.text_field = config_.data.text_field;
    o.label_field = config_.data.label_field;
    o.on_error = config_.data.on_error;
    return o;
  }

  const std::string& path(Split s) const {
    return s == Split::kTrain   ? config_.data.train
           : s == Split::kValid ? config_.data.valid
                                : config_.data.test;
  }

  /// Word ids (unknown words left out, as fastText drops words outside its dictionary) and
  /// n-gram buckets.
  std::vector<int64_t> input_ids(const std::string& text) const {
    std::vector<int64_t> words;
    for (const auto& t : tokenizer_->tokenize(text)) {
      words.push_back(vocab_.contains(t) ? vocab_.id(t) : -1);
    }
    const FastTextModelConfig& m = config_.model.fasttext;
    return fasttext_input_ids(words, vocab_.size(), m.word_ngrams,
                              m.word_ngrams > 1 ? m.buckets : 0);
  }

  BagSplit encode(const ClassificationData& data, const std::string& file) const {
    BagSplit out;
    for (const auto& e : data.examples) {
      if (!labels_.contains(e.label)) {
        std::string known;
        for (const auto& name : labels_.names()) known += (known.empty() ? "" : ", ") + name;
        throw InputError(file + ": label '" + e.label +
                         "' does not occur in the training data (known: " + known + ")");
      }
      out.labels.push_back(labels_.id(e.label));
      out.docs.push_back(input_ids(e.text));
    }
    return out;
  }

  const BagSplit& split(Split s) {
    auto it = splits_.find(s);
    if (it != splits_.end()) return it->second;
    if (path(s).empty())
      throw ConfigError(std::string("data.") + split_name(s) + ": no file given");
    ClassificationData data = load_classification_file(path(s), file_options());
    skipped_[s] = data.skipped;
    return splits_[s] = encode(data, path(s));
  }

  EpochBatches& train_batches() {
    if (!batches_) {
      batches_.emplace(static_cast<int64_t>(split(Split::kTrain).docs.size()),
                       config_.data.batch_size, config_.data.shuffle,
                       static_cast<uint64_t>(config_.seed));
    }
    return *batches_;
  }

  torch::Tensor logits(const BagSplit& data, const std::vector<int64_t>& idx) {
    std::vector<int64_t> ids, offsets;
    for (int64_t i : idx) {
      offsets.push_back(static_cast<int64_t>(ids.size()));
      ids.insert(ids.end(), data.docs[i].begin(), data.docs[i].end());
    }
    return model_->forward(torch::tensor(ids, torch::kInt64).to(device_),
                           torch::tensor(offsets, torch::kInt64).to(device_));
  }

  ExperimentConfig config_;
  torch::Device device_;
  std::unique_ptr<Tokenizer> tokenizer_;
  Vocab vocab_;
  LabelMap labels_;
  FastText model_{nullptr};
  std::map<Split, BagSplit> splits_;
  std::map<Split, int64_t> skipped_;
  std::optional<EpochBatches> batches_;
};

}  // namespace

std::unique_ptr<Task> make_fasttext_classification_task(const ExperimentConfig& config,
                                                        const std::string& artifacts_dir,
                                                        torch::Device device) {
  return std::make_unique<FastTextTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
