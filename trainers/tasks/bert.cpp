#include "trainers/tasks/bert.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <regex>

#include "datasets/batching.h"
#include "datasets/file_io.h"
#include "datasets/text_classification.h"
#include "datasets/wordpiece.h"
#include "modules/bert.h"
#include "modules/lora.h"
#include "trainers/device.h"
#include "trainers/huggingface.h"
#include "trainers/metrics.h"
#include "trainers/regularizers.h"
#include "trainers/tasks/classification.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;

namespace nlpkit {
namespace {

constexpr int64_t kIgnore = -100;

// ---------------------------------------------------------------- shared set-up

/// do_lower_case from tokenizer_config.json when the folder has one.
bool folder_lowercase(const std::string& dir, bool fallback) {
  const fs::path file = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(file)) return fallback;
  try {
    const auto j = nlohmann::json::parse(detail::read_file(file.string(), "tokenizer config"));
    if (j.contains("do_lower_case") && j["do_lower_case"].is_boolean()) return j["do_lower_case"];
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file.string() + ": invalid JSON: " + e.what());
  }
  return fallback;
}

/// What every BERT task needs before its model: the tokenizer, the architecture and, when
/// fine-tuning, the pretrained folder.
struct BertSetup {
  std::unique_ptr<WordPieceTokenizer> tokenizer;
  BertOptions options;
  double initializer_range = 0.02;
  double classifier_dropout = -1;
  std::string pretrained;           // resolved folder to load weights from ("" = none)
  std::vector<std::string> labels;  // id2label of the folder's config.json
};

/// `texts` (the training documents) are used only to learn a vocabulary when there is neither
/// a checkpoint, a pretrained folder nor tokenizer.vocab.
BertSetup make_setup(const ExperimentConfig& config, const std::string& artifacts_dir,
                     const std::function<std::vector<std::string>()>& texts) {
  if (config.tokenizer.type != "wordpiece") {
    throw ConfigError("tokenizer.type: model.type bert needs the wordpiece tokenizer, got '" +
                      config.tokenizer.type + "'");
  }
  BertSetup s;
  const BertModelConfig& b = config.model.bert;
  WordPieceOptions wo;
  wo.lower_case = config.tokenizer.lowercase;
  // The folder whose config.json and vocab.txt decide: the checkpoint, else the pretrained one.
  s.pretrained =
      artifacts_dir.empty() ? resolve_model_folder(b.pretrained, "model.pretrained") : "";
  const std::string folder = !artifacts_dir.empty() ? artifacts_dir : s.pretrained;
  if (!folder.empty()) {
    HfBertConfig hf = read_hf_bert_config(folder);
    s.options = hf.options;
    s.initializer_range = hf.initializer_range;
    s.classifier_dropout = hf.classifier_dropout;
    s.labels = hf.labels;
    wo.lower_case = folder_lowercase(folder, wo.lower_case);
    const std::string vocab = (fs::path(folder) / "vocab.txt").string();
    if (!fs::exists(vocab))
      throw InputError(folder + " has no vocab.txt (BERT's WordPiece vocabulary)");
    s.tokenizer = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(vocab, wo));
    if (s.tokenizer->vocab_size() > s.options.vocab_size()) {
      throw InputError(vocab + " has " + std::to_string(s.tokenizer->vocab_size()) +
                       " entries, more than config.json's vocab_size " +
                       std::to_string(s.options.vocab_size()));
    }
  } else {
    if (!config.tokenizer.vocab.empty()) {
      s.tokenizer = std::make_unique<WordPieceTokenizer>(
          WordPieceTokenizer::from_file(config.tokenizer.vocab, wo));
    } else {
      const int64_t size = config.data.max_vocab_size > 0 ? config.data.max_vocab_size : 8000;
      std::cerr << "learning a " << size << "-entry WordPiece vocabulary from " << config.data.train
                << "\n";
      s.tokenizer = std::make_unique<WordPieceTokenizer>(
          train_wordpiece(texts(), size, wo, std::max<int64_t>(2, config.data.min_freq)), wo);
    }
    s.options = b.options;
    s.options.vocab_size(s.tokenizer->vocab_size()).pad_id(s.tokenizer->pad_id());
    s.initializer_range = b.initializer_range;
  }
  if (b.classifier_dropout >= 0) s.classifier_dropout = b.classifier_dropout;
  if (config.data.max_length > s.options.max_position_embeddings()) {
    throw ConfigError("data.max_length (" + std::to_string(config.data.max_length) +
                      ") exceeds the model's max_position_embeddings (" +
                      std::to_string(s.options.max_position_embeddings()) + ")");
  }
  return s;
}

/// The pieces every BERT task shares: tokenizer, artifacts, fine-tuning options.
class BertTaskBase : public Task {
 public:
  BertTaskBase(const ExperimentConfig& config, torch::Device device)
      : config_(config), device_(device) {}

  double lr_scale(const std::string& name) const override {
    const BertModelConfig& b = config_.model.bert;
    const bool head = name.rfind("bert.", 0) != 0;
    if (head) return b.head_lr > 0 ? b.head_lr / config_.optimizer.lr : 1.0;
    if (b.layer_lr_decay >= 1.0) return 1.0;
    // Depth: embeddings 0, encoder layer i at i + 1, the pooler at L + 1.
    const int64_t layers = setup_.options.num_layers();
    int64_t depth = layers + 1;
    if (name.rfind("bert.embeddings.", 0) == 0) depth = 0;
    static const std::regex layer("^bert\\.encoder\\.layer\\.([0-9]+)\\.");
    std::smatch m;
    if (std::regex_search(name, m, layer)) depth = std::stoll(m[1]) + 1;
    return std::pow(b.layer_lr_decay, static_cast<double>(layers + 1 - depth));
  }

 protected:
  /// Loads the pretrained weights (when any) into `model`, prints what happened, applies
  /// freezing and remembers the pretrained values for L2-SP.
  void start_from_pretrained(torch::nn::Module& model) {
    const BertModelConfig& b = config_.model.bert;
    if (!setup_.pretrained.empty()) {
      HfLoadReport report =
          load_hf_weights(model, read_hf_weights(setup_.pretrained), setup_.pretrained, "bert");
      std::cerr << "pretrained " << setup_.pretrained << ": " << report.summary() << "\n";
      if (b.l2sp > 0) {
        std::set<std::string> loaded(report.loaded.begin(), report.loaded.end());
        for (const auto& p : model.named_parameters()) {
          if (loaded.count(p.key())) anchors_.emplace_back(p.value(), p.value().detach().clone());
        }
      }
    } else if (b.l2sp > 0) {
      throw ConfigError("model.l2sp: needs model.pretrained (the weights to pull towards)");
    }
    int64_t frozen = 0;
    for (const auto& p : model.named_parameters()) {
      const std::string& name = p.key();
      bool freeze = b.freeze_embeddings && name.rfind("bert.embeddings.", 0) == 0;
      for (int64_t i = 0; i < b.freeze_layers; ++i) {
        freeze |= name.rfind("bert.encoder.layer." + std::to_string(i) + ".", 0) == 0;
      }
      if (freeze) {
        p.value().set_requires_grad(false);
        ++frozen;
      }
    }
    if (b.freeze_layers > setup_.options.num_layers()) {
      throw ConfigError("model.freeze_layers (" + std::to_string(b.freeze_layers) +
                        ") exceeds the model's " + std::to_string(setup_.options.num_layers()) +
                        " layers");
    }
    if (frozen > 0) std::cerr << "frozen: " << frozen << " parameter tensors\n";
  }

  /// model.lora_rank > 0: adapters on the layers named by model.lora_targets; only they and
  /// the task head (`head`, a regex over parameter names) train. Called for new runs and for
  /// checkpoints alike, so that the adapter parameters exist when a checkpoint is loaded.
  void apply_lora(torch::nn::Module& model, const std::string& head) {
    const BertModelConfig& b = config_.model.bert;
    if (b.lora_rank <= 0) return;
    try {
      const auto names =
          add_lora(model, b.lora_targets,
                   LoRAOptions().rank(b.lora_rank).alpha(b.lora_alpha).dropout(b.lora_dropout));
      mark_only_lora_trainable(model, head);
      std::cerr << "LoRA rank " << b.lora_rank << " on " << names.size() << " layers ("
                << b.lora_targets << ")\n";
    } catch (const c10::Error& e) {
      throw ConfigError(std::string("model.lora_targets: ") + e.what_without_backtrace());
    }
    lora_head_ = head;
  }

  /// The adapters and the head alone (adapter.safetensors), beside the full model.
  void save_adapters(const std::string& dir, const torch::nn::Module& model) const {
    if (config_.model.bert.lora_rank <= 0) return;
    save_safetensors(dir + "/adapter.safetensors", lora_state(model, lora_head_),
                     {{"format", "pt"}, {"lora_targets", config_.model.bert.lora_targets}});
  }

  void export_huggingface(const std::string& dir) override {
    merge_lora(*model());
    save_artifacts(dir);
    std::remove((dir + "/adapter.safetensors").c_str());
    std::remove((dir + "/labels.json").c_str());
    save_safetensors(dir + "/model.safetensors", hf_export_tensors(*model()), {{"format", "pt"}});
  }

  /// l2sp * sum ||w - w_pretrained||^2 over the trainable pretrained weights (Li et al. 2018,
  /// "Explicit Inductive Bias for Transfer Learning with Convolutional Networks").
  torch::Tensor l2sp_penalty() const {
    torch::Tensor total;
    for (const auto& [w, w0] : anchors_) {
      if (!w.requires_grad()) continue;
      torch::Tensor d = (w - w0.to(w.device())).pow(2).sum();
      total = total.defined() ? total + d : d;
    }
    return total.defined() ? total * config_.model.bert.l2sp : total;
  }

  /// vocab.txt, tokenizer_config.json, special_tokens_map.json and config.json: the folder is a
  /// HuggingFace model folder once model.safetensors is beside them.
  void write_hf_artifacts(const std::string& dir, const std::string& architecture,
                          const std::vector<std::string>& labels) const {
    setup_.tokenizer->save_vocab(dir + "/vocab.txt");
    nlohmann::json tc = {{"do_lower_case", setup_.tokenizer->options().lower_case},
                         {"tokenizer_class", "BertTokenizer"},
                         {"model_max_length", config_.data.max_length}};
    write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2) + "\n");
    nlohmann::json st = {{"unk_token", "[UNK]"},
                         {"sep_token", "[SEP]"},
                         {"pad_token", "[PAD]"},
                         {"cls_token", "[CLS]"},
                         {"mask_token", "[MASK]"}};
    write_file_atomic(dir + "/special_tokens_map.json", st.dump(2) + "\n");
    nlohmann::json c =
        hf_bert_config_json(setup_.options, setup_.initializer_range, {architecture}, labels);
    if (setup_.classifier_dropout >= 0) c["classifier_dropout"] = setup_.classifier_dropout;
    c["transformers_version"] = "4.19.0";
    write_file_atomic(dir + "/config.json", c.dump(2) + "\n");
  }

  /// Pads id sequences into (B, T) input_ids, attention_mask and token_type_ids on the device.
  struct Batch {
    torch::Tensor ids, mask, types;
  };
  Batch pad(const std::vector<const std::vector<int64_t>*>& ids,
            const std::vector<const std::vector<int64_t>*>& types) const {
    int64_t t = 0;
    for (const auto* s : ids) t = std::max<int64_t>(t, s->size());
    const int64_t b = static_cast<int64_t>(ids.size());
    torch::Tensor x = torch::full({b, t}, setup_.tokenizer->pad_id(), torch::kInt64);
    torch::Tensor m = torch::zeros({b, t}, torch::kInt64);
    torch::Tensor y = torch::zeros({b, t}, torch::kInt64);
    auto xa = x.accessor<int64_t, 2>(), ma = m.accessor<int64_t, 2>(),
         ya = y.accessor<int64_t, 2>();
    for (int64_t i = 0; i < b; ++i) {
      for (size_t j = 0; j < ids[i]->size(); ++j) {
        xa[i][j] = (*ids[i])[j];
        ma[i][j] = 1;
        if (!types.empty()) ya[i][j] = (*types[i])[j];
      }
    }
    return {to_device(x, device_), to_device(m, device_), to_device(y, device_)};
  }

  /// The training batches over n examples (built on first use).
  EpochBatches& train_batches(int64_t n) {
    if (!batches_) {
      batches_.emplace(n, config_.data.batch_size, config_.data.shuffle,
                       static_cast<uint64_t>(config_.seed), config_.data.shard_index,
                       config_.data.shard_count);
    }
    return *batches_;
  }

  const std::string& path(Split s) const {
    switch (s) {
      case Split::kTrain:
        return config_.data.train;
      case Split::kValid:
        return config_.data.valid;
      case Split::kTest:
        return config_.data.test;
    }
    return config_.data.train;
  }

  ClassificationFileOptions file_options() const {
    ClassificationFileOptions o;
    o.format = config_.data.format;
    o.text_field = config_.data.text_field;
    o.label_field = config_.data.label_field;
    o.on_error = config_.data.on_error;
    return o;
  }

  ExperimentConfig config_;
  torch::Device device_;
  BertSetup setup_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> anchors_;  // (weight, pretrained value)
  std::string lora_head_;
  std::optional<EpochBatches> batches_;
};

// ---------------------------------------------------------------- masked_lm

/// One pretraining example: [CLS] A [SEP] (B [SEP]).
struct PretrainingExample {
  std::vector<int64_t> ids, types;
  int64_t random_next = 0;  // NSP label: 1 = B is a random segment (HF: 0 = is next)
};

class MaskedLMTask : public BertTaskBase {
 public:
  MaskedLMTask(const ExperimentConfig& config, const std::string& artifacts_dir,
               torch::Device device)
      : BertTaskBase(config, device) {
    if (config.model.type != "bert") {
      throw ConfigError("model.type: task masked_lm takes bert, got '" + config.model.type + "'");
    }
    if (artifacts_dir.empty() && config.data.train.empty()) {
      throw ConfigError("data.train: no training file given");
    }
    std::vector<std::string> train_docs;
    if (artifacts_dir.empty()) train_docs = read_documents(config.data.train, file_options());
    setup_ = make_setup(config, artifacts_dir, [&] { return train_docs; });
    model_ = BertForPreTraining(setup_.options);
    model_->reset_parameters(setup_.initializer_range);
    if (artifacts_dir.empty()) start_from_pretrained(*model_);
    apply_lora(*model_, "^cls\\.");
    if (artifacts_dir.empty()) {
      splits_[Split::kTrain] = make_examples(train_docs, config.seed);
      if (splits_[Split::kTrain].empty()) {
        throw InputError(config.data.train + ": no text long enough for a pretraining example");
      }
      if (has_split(Split::kValid)) split(Split::kValid);
      if (has_split(Split::kTest)) split(Split::kTest);
    }
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }

  int64_t batches_per_epoch() override {
    return train_batches(static_cast<int64_t>(split(Split::kTrain).size())).count();
  }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const auto& data = split(Split::kTrain);
    const std::vector<int64_t> idx =
        train_batches(static_cast<int64_t>(data.size())).indices(epoch, batch);
    // Masks are drawn afresh every epoch (dynamic masking, RoBERTa) from (seed, epoch, batch):
    // a resumed run draws the same ones.
    std::mt19937_64 rng(static_cast<uint64_t>(config_.seed) * 7919u + epoch * 1000003u + batch);
    Masked m = mask(data, idx, rng);
    Losses l = losses(m);
    StepOutput step;
    step.loss = l.nsp.defined() ? l.mlm + l.nsp : l.mlm;
    const torch::Tensor penalty = l2sp_penalty();
    if (penalty.defined()) step.loss = step.loss + penalty;
    step.examples = static_cast<int64_t>(idx.size());
    step.tokens = m.batch.mask.sum().item<int64_t>();
    return step;
  }

  bool has_split(Split s) const override { return !path(s).empty(); }

  Evaluation evaluate(Split s) override {
    const auto& data = split(s);
    const int64_t n = static_cast<int64_t>(data.size());
    if (n == 0) throw InputError("data file has no examples: " + path(s));
    torch::NoGradGuard no_grad;
    model_->eval();
    std::mt19937_64 rng(12345);  // the same masks at every evaluation
    double mlm_sum = 0, nsp_sum = 0;
    int64_t mlm_count = 0, mlm_correct = 0, nsp_correct = 0;
    for (const auto& idx : sequential_batches(n, config_.data.eval_batch_size)) {
      Masked m = mask(data, idx, rng);
      Losses l = losses(m, /*sum=*/true);
      mlm_sum += l.mlm.item<double>();
      mlm_count += l.mlm_targets.numel();
      mlm_correct += l.mlm_logits.argmax(-1).eq(l.mlm_targets).sum().item<int64_t>();
      if (l.nsp.defined()) {
        nsp_sum += l.nsp.item<double>();
        nsp_correct += l.nsp_logits.argmax(-1).eq(m.nsp).sum().item<int64_t>();
      }
    }
    model_->train();
    Evaluation eval;
    const double mlm_loss = mlm_sum / std::max<int64_t>(mlm_count, 1);
    eval.metrics["mlm_loss"] = mlm_loss;
    eval.metrics["perplexity"] = std::exp(mlm_loss);
    eval.metrics["mlm_accuracy"] = double(mlm_correct) / std::max<int64_t>(mlm_count, 1);
    eval.metrics["loss"] = mlm_loss;
    if (config_.data.next_sentence) {
      eval.metrics["nsp_loss"] = nsp_sum / n;
      eval.metrics["nsp_accuracy"] = double(nsp_correct) / n;
      eval.metrics["loss"] = mlm_loss + nsp_sum / n;
    }
    eval.report = eval.metrics;
    eval.report["examples"] = n;
    eval.report["masked_tokens"] = mlm_count;
    char line[256];
    std::snprintf(line, sizeof line,
                  "examples %lld | masked tokens %lld | mlm accuracy %.4f | perplexity %.2f",
                  static_cast<long long>(n), static_cast<long long>(mlm_count),
                  eval.metrics["mlm_accuracy"], eval.metrics["perplexity"]);
    eval.table = line;
    if (config_.data.next_sentence) {
      std::snprintf(line, sizeof line, " | nsp accuracy %.4f", eval.metrics["nsp_accuracy"]);
      eval.table += line;
    }
    eval.table += "\n";
    return eval;
  }

  /// Each line with [MASK] tokens: the line with every [MASK] filled by the most likely token,
  /// then a tab and the top 5 candidates of each mask.
  std::vector<std::string> predict(const std::vector<std::string>& lines) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    std::vector<std::string> out;
    for (const auto& line : lines) {
      Encoding e = setup_.tokenizer->encode_pair(line, nullptr, config_.data.max_length, false);
      const auto batch = pad({&e.input_ids}, {&e.token_type_ids});
      const torch::Tensor hidden =
          model_->bert->forward(batch.ids, batch.mask, batch.types).last_hidden_state[0];
      std::vector<int64_t> filled = e.input_ids;
      std::string candidates;
      for (size_t j = 0; j < e.input_ids.size(); ++j) {
        if (e.input_ids[j] != setup_.tokenizer->mask_id()) continue;
        const torch::Tensor p = torch::softmax(model_->mlm_logits(hidden[j]), -1).cpu();
        const auto [values, ids] = p.topk(5);
        filled[j] = ids[0].item<int64_t>();
        candidates += candidates.empty() ? "" : " || ";
        for (int64_t k = 0; k < 5; ++k) {
          char prob[32];
          std::snprintf(prob, sizeof prob, " %.3f", values[k].item<double>());
          candidates +=
              (k ? " | " : "") + setup_.tokenizer->id_to_token(ids[k].item<int64_t>()) + prob;
        }
      }
      out.push_back(setup_.tokenizer->decode(filled) +
                    (candidates.empty() ? "" : "\t" + candidates));
    }
    return out;
  }

  std::string summary() const override {
    std::string out = "data:";
    for (const auto& [s, data] : splits_) {
      out += std::string(" ") + split_name(s) + " " + std::to_string(data.size()) + " examples";
    }
    return out + " | vocab " + std::to_string(setup_.tokenizer->vocab_size()) + " | max_length " +
           std::to_string(config_.data.max_length);
  }

  void save_artifacts(const std::string& dir) const override {
    write_hf_artifacts(dir, "BertForPreTraining", {});
    save_adapters(dir, *model_);
  }

 private:
  struct Masked {
    Batch batch;
    torch::Tensor labels;  // (B, T), kIgnore where nothing is predicted
    torch::Tensor nsp;     // (B)
  };
  struct Losses {
    torch::Tensor mlm, nsp, mlm_logits, mlm_targets, nsp_logits;
  };

  /// Builds examples as BERT's create_pretraining_data does: sentences of a document are packed
  /// into chunks of up to max_length - 3 tokens; with NSP a chunk is cut at a random sentence
  /// boundary into A and B, and half the time B is replaced by text from another document.
  std::vector<PretrainingExample> make_examples(const std::vector<std::string>& docs,
                                                uint64_t seed) const {
    const WordPieceTokenizer& tok = *setup_.tokenizer;
    std::vector<std::vector<std::vector<int64_t>>> sentences(docs.size());
    for (size_t d = 0; d < docs.size(); ++d) {
      for (const auto& s : split_sentences(docs[d])) {
        std::vector<int64_t> ids = tok.encode(s);
        if (!ids.empty()) sentences[d].push_back(std::move(ids));
      }
    }
    const bool nsp = config_.data.next_sentence;
    const size_t target = static_cast<size_t>(config_.data.max_length - (nsp ? 3 : 2));
    std::mt19937_64 rng(seed);
    std::vector<PretrainingExample> out;
    auto uniform = [&](size_t n) { return static_cast<size_t>(random_below(rng, n)); };
    for (size_t d = 0; d < sentences.size(); ++d) {
      const auto& doc = sentences[d];
      std::vector<const std::vector<int64_t>*> chunk;
      size_t length = 0;
      for (size_t i = 0; i < doc.size(); ++i) {
        chunk.push_back(&doc[i]);
        length += doc[i].size();
        if (i + 1 < doc.size() && length < target) continue;
        std::vector<int64_t> a, b;
        int64_t random_next = 0;
        size_t a_end = chunk.size();
        if (nsp) {
          a_end = chunk.size() >= 2 ? 1 + uniform(chunk.size() - 1) : 1;
          random_next = (chunk.size() == 1 || uniform(2) == 0) && sentences.size() > 1;
        }
        for (size_t k = 0; k < a_end; ++k) a.insert(a.end(), chunk[k]->begin(), chunk[k]->end());
        if (nsp && random_next) {
          size_t other = uniform(sentences.size() - 1);
          if (other >= d) ++other;
          const auto& o = sentences[other];
          for (size_t k = o.empty() ? 0 : uniform(o.size());
               k < o.size() && a.size() + b.size() < target; ++k) {
            b.insert(b.end(), o[k].begin(), o[k].end());
          }
          // The unused sentences of this chunk start the next one (as the reference does).
          if (b.empty()) random_next = 0;
        }
        if (nsp && !random_next) {
          for (size_t k = a_end; k < chunk.size(); ++k)
            b.insert(b.end(), chunk[k]->begin(), chunk[k]->end());
        }
        if (nsp && b.empty()) {  // one sentence and nothing to pair it with: split it
          if (a.size() < 2) {
            chunk.clear();
            length = 0;
            continue;
          }
          b.assign(a.begin() + a.size() / 2, a.end());
          a.resize(a.size() / 2);
          random_next = 0;
        }
        // Truncate the longer segment from the end until the pair fits.
        while (a.size() + b.size() > target) (a.size() >= b.size() ? a : b).pop_back();
        Encoding e = tok.encode_ids_pair(a, nsp ? &b : nullptr, 0, false);
        out.push_back({std::move(e.input_ids), std::move(e.token_type_ids), random_next});
        chunk.clear();
        length = 0;
      }
    }
    return out;
  }

  const std::vector<PretrainingExample>& split(Split s) {
    auto it = splits_.find(s);
    if (it != splits_.end()) return it->second;
    if (path(s).empty())
      throw ConfigError(std::string("data.") + split_name(s) + ": no file given");
    return splits_[s] = make_examples(read_documents(path(s), file_options()),
                                      static_cast<uint64_t>(config_.seed) + 17 * (1 + int(s)));
  }

  /// Picks data.mlm_probability of the non-special tokens (whole words with whole_word_mask)
  /// and replaces 80% of them by [MASK], 10% by a random token and leaves 10%, as BERT does.
  Masked mask(const std::vector<PretrainingExample>& data, const std::vector<int64_t>& idx,
              std::mt19937_64& rng) const {
    const WordPieceTokenizer& tok = *setup_.tokenizer;
    std::vector<std::vector<int64_t>> ids;
    std::vector<std::vector<int64_t>> labels;
    std::vector<const std::vector<int64_t>*> types;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int64_t i : idx) {
      const PretrainingExample& ex = data[i];
      std::vector<int64_t> x = ex.ids, y(ex.ids.size(), kIgnore);
      // Candidate units: single tokens, or a word's pieces together.
      std::vector<std::vector<size_t>> units;
      for (size_t j = 0; j < x.size(); ++j) {
        if (tok.is_special_id(x[j])) continue;
        const std::string& piece = tok.id_to_token(x[j]);
        const bool continuation = piece.size() > 2 && piece.compare(0, 2, "##") == 0;
        if (config_.data.whole_word_mask && continuation && !units.empty() &&
            units.back().back() + 1 == j) {
          units.back().push_back(j);
        } else {
          units.push_back({j});
        }
      }
      size_t tokens = 0;
      for (const auto& unit : units) tokens += unit.size();
      const size_t wanted = std::max<size_t>(
          1, static_cast<size_t>(std::lround(tokens * config_.data.mlm_probability)));
      std::vector<int64_t> order(units.size());
      std::iota(order.begin(), order.end(), 0);
      shuffle_in_place(order, rng);
      size_t chosen = 0;
      for (int64_t k : order) {
        if (chosen >= wanted) break;
        if (chosen + units[k].size() > wanted && chosen > 0) continue;
        for (size_t j : units[k]) {
          y[j] = x[j];
          const double r = u(rng);
          if (r < 0.8) {
            x[j] = tok.mask_id();
          } else if (r < 0.9) {
            x[j] = static_cast<int64_t>(random_below(rng, static_cast<uint64_t>(tok.vocab_size())));
          }
          ++chosen;
        }
      }
      ids.push_back(std::move(x));
      labels.push_back(std::move(y));
      types.push_back(&ex.types);
    }
    std::vector<const std::vector<int64_t>*> id_ptrs;
    for (const auto& x : ids) id_ptrs.push_back(&x);
    Masked m;
    m.batch = pad(id_ptrs, types);
    torch::Tensor l = torch::full(m.batch.ids.sizes(), kIgnore, torch::kInt64);
    auto la = l.accessor<int64_t, 2>();
    std::vector<int64_t> nsp;
    for (size_t i = 0; i < labels.size(); ++i) {
      for (size_t j = 0; j < labels[i].size(); ++j) la[i][j] = labels[i][j];
      nsp.push_back(data[idx[i]].random_next);
    }
    m.labels = to_device(l, device_);
    m.nsp = to_device(torch::tensor(nsp, torch::kInt64), device_);
    return m;
  }

  /// MLM cross-entropy on the masked positions only (the (B, T, V) logits are never built),
  /// plus NSP cross-entropy; means, or sums with `sum`.
  Losses losses(const Masked& m, bool sum = false) {
    namespace F = torch::nn::functional;
    F::CrossEntropyFuncOptions options;
    if (sum) options.reduction(torch::kSum);
    BertModelOutput out = model_->bert->forward(m.batch.ids, m.batch.mask, m.batch.types);
    const torch::Tensor picked = m.labels.ne(kIgnore);  // (B, T)
    Losses l;
    l.mlm_targets = m.labels.masked_select(picked);                            // (N)
    l.mlm_logits = model_->mlm_logits(out.last_hidden_state.index({picked}));  // (N, V)
    l.mlm = F::cross_entropy(l.mlm_logits, l.mlm_targets, options);
    if (config_.data.next_sentence) {
      l.nsp_logits = model_->cls->seq_relationship(out.pooler_output);  // (B, 2)
      l.nsp = F::cross_entropy(l.nsp_logits, m.nsp, options);
    }
    return l;
  }

  BertForPreTraining model_{nullptr};
  std::map<Split, std::vector<PretrainingExample>> splits_;
};

// ---------------------------------------------------------------- classification

struct EncodedTexts {
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> labels;
};

class BertClassificationTask : public BertTaskBase {
 public:
  BertClassificationTask(const ExperimentConfig& config, const std::string& artifacts_dir,
                         torch::Device device)
      : BertTaskBase(config, device) {
    ClassificationData train;
    if (artifacts_dir.empty()) {
      if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
      train = load_classification_file(config.data.train, file_options());
      skipped_[Split::kTrain] = train.skipped;
      if (train.examples.empty())
        throw InputError("data file has no examples: " + config.data.train);
      augment_training_examples(config.augmentation.eda, config.seed, &train.examples);
      labels_ = LabelMap::from_examples(train.examples);
    } else {
      labels_ = LabelMap::load(artifacts_dir + "/labels.json");
    }
    setup_ = make_setup(config, artifacts_dir, [&] {
      std::vector<std::string> texts;
      for (const auto& e : train.examples) texts.push_back(e.text);
      return texts;
    });
    if (labels_.size() < 2) {
      throw InputError("classification needs at least 2 labels; " + config.data.train + " has " +
                       std::to_string(labels_.size()));
    }
    model_ = BertClassifier(setup_.options, labels_.size(), false, setup_.classifier_dropout);
    model_->reset_parameters(setup_.initializer_range);
    if (artifacts_dir.empty()) start_from_pretrained(*model_);
    apply_lora(*model_, "^classifier\\.");
    if (artifacts_dir.empty()) {
      splits_[Split::kTrain] = encode(train, config.data.train);
      if (has_split(Split::kValid)) split(Split::kValid);
      if (has_split(Split::kTest)) split(Split::kTest);
    }
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }

  int64_t batches_per_epoch() override {
    return train_batches(static_cast<int64_t>(split(Split::kTrain).ids.size())).count();
  }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const EncodedTexts& data = split(Split::kTrain);
    const std::vector<int64_t> idx =
        train_batches(static_cast<int64_t>(data.ids.size())).indices(epoch, batch);
    Batch b = collate(data, idx);
    std::vector<int64_t> labels;
    for (int64_t i : idx) labels.push_back(data.labels[i]);
    StepOutput step;
    step.tokens = b.mask.sum().item<int64_t>();
    ClassifierBatch cb;
    cb.model = model_.ptr().get();
    cb.forward = [&] { return model_->forward(b.ids, b.mask); };
    cb.labels = to_device(torch::tensor(labels), device_);
    cb.set_embedding_hook = [this](TensorHook hook) {
      model_->bert->embeddings->layer_norm_input_hook = std::move(hook);
    };
    cb.embedding_feeds_layer_norm = true;
    cb.set_features_hook = [this](TensorHook hook) { model_->features_hook = std::move(hook); };
    cb.merge_padding = [&b](const torch::Tensor& perm) {
      b.mask = torch::maximum(b.mask, b.mask.index_select(0, perm));
    };
    step.loss = classification_step_loss(config_.regularization, cb);
    const torch::Tensor penalty = l2sp_penalty();
    if (penalty.defined()) step.loss = step.loss + penalty;
    step.examples = static_cast<int64_t>(idx.size());
    return step;
  }

  bool has_split(Split s) const override { return !path(s).empty(); }

  Evaluation evaluate(Split s) override {
    const EncodedTexts& data = split(s);
    if (data.ids.empty()) throw InputError("data file has no examples: " + path(s));
    torch::NoGradGuard no_grad;
    model_->eval();
    Evaluation e = evaluate_classifier(data.labels, config_.data.eval_batch_size, labels_.names(),
                                       [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
    model_->train();
    return e;
  }

  std::vector<std::string> predict(const std::vector<std::string>& texts) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    EncodedTexts data;
    for (const auto& t : texts) {
      data.ids.push_back(
          setup_.tokenizer->encode_pair(t, nullptr, config_.data.max_length, false).input_ids);
    }
    return predict_labels(static_cast<int64_t>(texts.size()), config_.data.eval_batch_size,
                          labels_.names(),
                          [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
  }

  std::string summary() const override {
    std::string out = "data:";
    for (const auto& [s, data] : splits_) {
      out += std::string(" ") + split_name(s) + " " + std::to_string(data.ids.size());
      const int64_t skipped = skipped_.count(s) ? skipped_.at(s) : 0;
      if (skipped > 0) out += " (" + std::to_string(skipped) + " malformed lines skipped)";
    }
    out += " | vocab " + std::to_string(setup_.tokenizer->vocab_size()) + " | labels";
    for (const auto& name : labels_.names()) out += " " + name;
    return out;
  }

  void save_artifacts(const std::string& dir) const override {
    labels_.save(dir + "/labels.json");
    write_hf_artifacts(dir, "BertForSequenceClassification", labels_.names());
    save_adapters(dir, *model_);
  }

 private:
  EncodedTexts encode(const ClassificationData& data, const std::string& file) const {
    EncodedTexts out;
    for (const auto& e : data.examples) {
      if (!labels_.contains(e.label)) {
        std::string known;
        for (const auto& name : labels_.names()) known += (known.empty() ? "" : ", ") + name;
        throw InputError(file + ": label '" + e.label +
                         "' does not occur in the training data (known: " + known + ")");
      }
      out.labels.push_back(labels_.id(e.label));
      out.ids.push_back(
          setup_.tokenizer->encode_pair(e.text, nullptr, config_.data.max_length, false).input_ids);
    }
    return out;
  }

  const EncodedTexts& split(Split s) {
    auto it = splits_.find(s);
    if (it != splits_.end()) return it->second;
    if (path(s).empty())
      throw ConfigError(std::string("data.") + split_name(s) + ": no file given");
    ClassificationData data = load_classification_file(path(s), file_options());
    skipped_[s] = data.skipped;
    return splits_[s] = encode(data, path(s));
  }

  Batch collate(const EncodedTexts& data, const std::vector<int64_t>& idx) const {
    std::vector<const std::vector<int64_t>*> ids;
    for (int64_t i : idx) ids.push_back(&data.ids[i]);
    return pad(ids, {});
  }

  torch::Tensor logits(const EncodedTexts& data, const std::vector<int64_t>& idx) {
    Batch b = collate(data, idx);
    return model_->forward(b.ids, b.mask);
  }

  LabelMap labels_;
  BertClassifier model_{nullptr};
  std::map<Split, EncodedTexts> splits_;
  std::map<Split, int64_t> skipped_;
};

}  // namespace

std::unique_ptr<Task> make_masked_lm_task(const ExperimentConfig& config,
                                          const std::string& artifacts_dir, torch::Device device) {
  return std::make_unique<MaskedLMTask>(config, artifacts_dir, device);
}

std::unique_ptr<Task> make_bert_classification_task(const ExperimentConfig& config,
                                                    const std::string& artifacts_dir,
                                                    torch::Device device) {
  return std::make_unique<BertClassificationTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
