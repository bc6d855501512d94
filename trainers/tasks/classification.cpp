#include "trainers/tasks/classification.h"

#include <filesystem>
#include <optional>
#include <sstream>

#include "datasets/batching.h"
#include "datasets/png.h"
#include "datasets/text_classification.h"
#include "datasets/tokenizers.h"
#include "datasets/vocab.h"
#include "modules/text_classifier.h"
#include "trainers/device.h"
#include "trainers/metrics.h"
#include "trainers/plot.h"
#include "trainers/registry.h"
#include "trainers/regularizers.h"
#include "trainers/tasks/bert.h"
#include "trainers/tasks/fasttext.h"

namespace nlpkit {
namespace {

/// One split, tokenized and encoded once.
struct EncodedSplit {
  std::vector<EncodedDocument> docs;
  std::vector<int64_t> labels;
};

class ClassificationTask : public Task {
 public:
  ClassificationTask(const ExperimentConfig& config, const std::string& artifacts_dir,
                     torch::Device device)
      : config_(config),
        device_(device),
        tokenizer_(find_entry(tokenizer_registry(), config.tokenizer.type, "tokenizer type")
                       .build(config.tokenizer)),
        hierarchy_{config.data.max_sentences, config.data.max_sentence_length} {
    if (config.model.type != "text_cnn_bilstm_attention") {
      throw ConfigError("model.type: '" + config.model.type +
                        "' is not a classifier; task classification takes text_cnn_bilstm_attention, bert or fasttext");
    }
    if (artifacts_dir.empty()) {
      if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
      ClassificationData train = read(config.data.train);
      skipped_[Split::kTrain] = train.skipped;
      if (train.examples.empty()) {
        throw InputError("data file has no examples: " + config.data.train);
      }
      transform_training_examples(config, &train.examples);
      labels_ = LabelMap::from_examples(train.examples);
      std::vector<std::vector<std::string>> tokens;
      tokens.reserve(train.examples.size());
      for (const auto& e : train.examples) tokens.push_back(tokenizer_->tokenize(e.text));
      VocabOptions vo;
      vo.min_freq = config.data.min_freq;
      vo.max_size = config.data.max_vocab_size;
      vocab_ = Vocab::from_documents(tokens, vo);
      splits_[Split::kTrain] = encode(train, config.data.train);
      // Read the other splits now: a bad file must fail before the run writes anything.
      if (has_split(Split::kValid)) split(Split::kValid);
      if (has_split(Split::kTest)) split(Split::kTest);
    } else {
      vocab_ = Vocab::load(artifacts_dir + "/vocab.txt");
      labels_ = LabelMap::load(artifacts_dir + "/labels.json");
    }
    if (labels_.size() < 2) {
      throw InputError("classification needs at least 2 labels; " + config.data.train +
                       " has " + std::to_string(labels_.size()));
    }
    TextClassifierOptions options = config.model.text_cnn_bilstm_attention;
    options.vocab_size(vocab_.size())
        .num_classes(labels_.size())
        .pad_id(vocab_.pad_id())
        .use_pretrained(!config.data.pretrained_embeddings.empty());
    model_ = TextClassifier(options);
    if (options.use_pretrained() && artifacts_dir.empty()) {
      int64_t found = 0;
      model_->set_pretrained(load_word2vec_text(config.data.pretrained_embeddings, vocab_,
                                                options.embedding_dim(), &found));
    }
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }

  int64_t batches_per_epoch() override { return train_batches().count(); }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const EncodedSplit& data = split(Split::kTrain);
    const std::vector<int64_t> idx = train_batches().indices(epoch, batch);
    DocumentBatch b = collate(data, idx);
    StepOutput step;
    step.examples = static_cast<int64_t>(idx.size());
    step.tokens = b.word_mask.sum().item<int64_t>();
    ClassifierBatch cb;
    cb.model = model_.ptr().get();
    cb.forward = [&] { return model_->forward(b.ids, b.word_mask, b.sentence_mask).logits; };
    cb.labels = b.labels;
    cb.set_embedding_hook = [this](TensorHook hook) { model_->embedding_hook = std::move(hook); };
    cb.set_features_hook = [this](TensorHook hook) { model_->document_hook = std::move(hook); };
    cb.merge_padding = [&b](const torch::Tensor& perm) {
      b.word_mask = b.word_mask | b.word_mask.index_select(0, perm);
      b.sentence_mask = b.sentence_mask | b.sentence_mask.index_select(0, perm);
    };
    step.loss = classification_step_loss(config_.regularization, cb);
    return step;
  }

  bool has_split(Split s) const override { return !path(s).empty(); }

  Evaluation evaluate(Split s) override {
    const EncodedSplit& data = split(s);
    if (data.docs.empty()) throw InputError("data file has no examples: " + path(s));
    torch::NoGradGuard no_grad;
    model_->eval();
    return evaluate_classifier(data.labels, config_.data.eval_batch_size, labels_.names(),
                               [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
  }

  torch::Tensor class_probabilities(const std::vector<std::string>& texts) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    EncodedSplit data;
    for (const auto& t : texts) data.docs.push_back(encode_document(t, *tokenizer_, vocab_, hierarchy_));
    return class_probabilities_of(static_cast<int64_t>(texts.size()), config_.data.eval_batch_size,
                                  [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
  }

  std::vector<std::string> class_names() const override { return labels_.names(); }

  std::vector<std::string> predict(const std::vector<std::string>& texts) override {
    return label_lines(class_probabilities(texts), labels_.names());
  }

  /// One heatmap per document: its sentences (as encode_document keeps them, labelled with
  /// their first words) against the sentence attention weights.
  std::vector<std::string> explain(const std::vector<std::string>& texts,
                                   const std::string& out_dir) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    std::filesystem::create_directories(out_dir);
    std::vector<std::string> written;
    for (size_t i = 0; i < texts.size(); ++i) {
      EncodedSplit data;
      data.docs.push_back(encode_document(texts[i], *tokenizer_, vocab_, hierarchy_));
      DocumentBatch b = collate(data, {0});
      TextClassifierOutput out = model_->forward(b.ids, b.word_mask, b.sentence_mask);
      const torch::Tensor p = torch::softmax(out.logits.to(torch::kFloat), -1).cpu()[0];
      const int64_t label = p.argmax().item<int64_t>();
      const std::vector<std::string> sentences = sentence_beginnings(texts[i]);
      const auto d = static_cast<int64_t>(sentences.size());
      TORCH_CHECK(d == out.attention.size(1), "classification: ", d, " sentence labels for ",
                  out.attention.size(1), " attention weights");
      HeatmapOptions options;
      char title[96];
      std::snprintf(title, sizeof title, "document %zu: %s (p=%.2f)", i + 1,
                    labels_.name(label).c_str(), p[label].item<double>());
      options.title = title;
      options.row_labels = sentences;
      options.column_labels = {"attention"};
      options.cell_width = text_width("attention") + 8;
      options.annotate = true;
      options.vmin = 0;  // and vmax the largest weight, so that one document shows contrast
      char name[32];
      std::snprintf(name, sizeof name, "doc_%04zu.png", i + 1);
      const std::string path = (std::filesystem::path(out_dir) / name).string();
      write_png(path, render_heatmap(out.attention[0].cpu().unsqueeze(1), options));  // (D, 1)
      written.push_back(path);
    }
    return written;
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
  /// The first words of each sentence that encode_document keeps (the same sentences, in the
  /// same order), "(no words)" for a document without any.
  std::vector<std::string> sentence_beginnings(const std::string& text) const {
    std::vector<std::string> out;
    for (const std::string& sentence : split_sentences(text)) {
      if (static_cast<int64_t>(out.size()) >= hierarchy_.max_sentences) break;
      if (tokenizer_->tokenize(sentence).empty()) continue;
      std::istringstream words(sentence);
      std::string beginning;
      std::string word;
      for (int k = 0; k < 5 && words >> word; ++k) beginning += (k ? " " : "") + word;
      out.push_back(beginning);
    }
    if (out.empty()) out.push_back("(no words)");
    return out;
  }

  EpochBatches& train_batches() {
    if (!batches_) {
      batches_.emplace(static_cast<int64_t>(split(Split::kTrain).docs.size()),
                       config_.data.batch_size, config_.data.shuffle,
                       static_cast<uint64_t>(config_.seed), config_.data.shard_index,
                       config_.data.shard_count);
    }
    return *batches_;
  }

  torch::Tensor logits(const EncodedSplit& data, const std::vector<int64_t>& idx) {
    DocumentBatch b = collate(data, idx);
    return model_->forward(b.ids, b.word_mask, b.sentence_mask).logits;
  }

  const std::string& path(Split s) const {
    switch (s) {
      case Split::kTrain: return config_.data.train;
      case Split::kValid: return config_.data.valid;
      case Split::kTest: return config_.data.test;
    }
    return config_.data.train;
  }

  ClassificationData read(const std::string& file) const {
    ClassificationFileOptions o;
    o.format = config_.data.format;
    o.text_field = config_.data.text_field;
    o.label_field = config_.data.label_field;
    o.on_error = config_.data.on_error;
    return load_classification_file(file, o);
  }

  EncodedSplit encode(const ClassificationData& data, const std::string& file) const {
    EncodedSplit out;
    out.docs.reserve(data.examples.size());
    for (const auto& e : data.examples) {
      if (!labels_.contains(e.label)) {
        std::string known;
        for (const auto& name : labels_.names()) known += (known.empty() ? "" : ", ") + name;
        throw InputError(file + ": label '" + e.label +
                         "' does not occur in the training data (known: " + known + ")");
      }
      out.labels.push_back(labels_.id(e.label));
      out.docs.push_back(encode_document(e.text, *tokenizer_, vocab_, hierarchy_));
    }
    return out;
  }

  const EncodedSplit& split(Split s) {
    auto it = splits_.find(s);
    if (it != splits_.end()) return it->second;
    if (path(s).empty()) {
      throw ConfigError(std::string("data.") + split_name(s) + ": no file given");
    }
    ClassificationData data = read(path(s));
    skipped_[s] = data.skipped;
    return splits_[s] = encode(data, path(s));
  }

  DocumentBatch collate(const EncodedSplit& data, const std::vector<int64_t>& idx) const {
    std::vector<const EncodedDocument*> docs;
    std::vector<int64_t> labels;
    for (int64_t i : idx) {
      docs.push_back(&data.docs[i]);
      if (!data.labels.empty()) labels.push_back(data.labels[i]);
    }
    DocumentBatch b = collate_documents(docs, labels, vocab_.pad_id());
    b.ids = to_device(b.ids, device_);
    b.word_mask = to_device(b.word_mask, device_);
    b.sentence_mask = to_device(b.sentence_mask, device_);
    b.labels = to_device(b.labels, device_);
    return b;
  }

  ExperimentConfig config_;
  torch::Device device_;
  std::unique_ptr<Tokenizer> tokenizer_;
  HierarchicalOptions hierarchy_;
  Vocab vocab_;
  LabelMap labels_;
  TextClassifier model_{nullptr};
  std::map<Split, EncodedSplit> splits_;
  std::map<Split, int64_t> skipped_;
  std::optional<EpochBatches> batches_;
};

}  // namespace

Evaluation evaluate_classifier(const std::vector<int64_t>& labels, int64_t batch_size,
                               const std::vector<std::string>& names,
                               const std::function<torch::Tensor(const std::vector<int64_t>&)>& logits) {
  const int64_t n = static_cast<int64_t>(labels.size());
  std::vector<torch::Tensor> probs;
  double loss_sum = 0;
  for (const auto& idx : sequential_batches(n, batch_size)) {
    const torch::Tensor z = logits(idx);
    std::vector<int64_t> y;
    for (int64_t i : idx) y.push_back(labels[i]);
    loss_sum += torch::nn::functional::cross_entropy(
                    z, torch::tensor(y, torch::kInt64).to(z.device()),
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    probs.push_back(torch::softmax(z.to(torch::kFloat), -1).cpu());
  }
  ClassificationReport report =
      classification_report(torch::tensor(labels, torch::kInt64), torch::cat(probs), names);
  report.loss = loss_sum / std::max<int64_t>(n, 1);
  return classification_evaluation(report);
}

torch::Tensor class_probabilities_of(
    int64_t n, int64_t batch_size,
    const std::function<torch::Tensor(const std::vector<int64_t>&)>& logits) {
  std::vector<torch::Tensor> probabilities;
  for (const auto& idx : sequential_batches(n, batch_size)) {
    probabilities.push_back(torch::softmax(logits(idx).to(torch::kFloat), -1).cpu());
  }
  return probabilities.empty() ? torch::empty({0, 0}) : torch::cat(probabilities);
}

std::vector<std::string> label_lines(const torch::Tensor& probabilities,
                                     const std::vector<std::string>& names) {
  std::vector<std::string> out;
  if (probabilities.size(0) == 0) return out;
  const auto [best, arg] = probabilities.max(-1);
  for (int64_t i = 0; i < probabilities.size(0); ++i) {
    char probability[32];
    std::snprintf(probability, sizeof probability, "\t%.4f", best[i].item<double>());
    out.push_back(names.at(arg[i].item<int64_t>()) + probability);
  }
  return out;
}

std::string classification_summary(const std::map<Split, int64_t>& examples,
                                   const std::map<Split, int64_t>& skipped, int64_t vocab_size,
                                   const std::vector<std::string>& labels) {
  std::string out = "data:";
  for (const auto& [s, n] : examples) {
    out += std::string(" ") + split_name(s) + " " + std::to_string(n);
    const int64_t k = skipped.count(s) ? skipped.at(s) : 0;
    if (k > 0) out += " (" + std::to_string(k) + " malformed lines skipped)";
  }
  out += " | vocab " + std::to_string(vocab_size) + " | labels";
  for (const auto& name : labels) out += " " + name;
  return out;
}

Evaluation classification_evaluation(const ClassificationReport& report) {
  Evaluation eval;
  eval.metrics = {{"accuracy", report.accuracy},
                  {"loss", report.loss},
                  {"macro_precision", report.macro_precision},
                  {"macro_recall", report.macro_recall},
                  {"macro_f1", report.macro_f1},
                  {"micro_f1", report.micro_f1}};
  if (report.roc_auc) eval.metrics["roc_auc"] = *report.roc_auc;
  eval.report = report.to_json();
  eval.table = report.to_table();
  return eval;
}

std::unique_ptr<Task> make_classification_task(const ExperimentConfig& config,
                                               const std::string& artifacts_dir,
                                               torch::Device device) {
  if (config.model.type == "bert" || config.model.type == "deberta") {
    return make_encoder_classification_task(config, artifacts_dir, device);
  }
  if (config.model.type == "fasttext") {
    return make_fasttext_classification_task(config, artifacts_dir, device);
  }
  return std::make_unique<ClassificationTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
