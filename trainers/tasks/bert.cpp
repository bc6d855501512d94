#include "trainers/tasks/bert.h"

#include <ATen/CPUGeneratorImpl.h>

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
#include "datasets/pretrained_tokenizer.h"
#include "datasets/sentencepiece.h"
#include "datasets/wordpiece.h"
#include "modules/bert.h"
#include "modules/deberta.h"
#include "modules/deberta_pretraining.h"
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

/// What every BERT or DeBERTa task needs before its model: the tokenizer, the architecture
/// and, when fine-tuning, the pretrained folder.
struct EncoderSetup {
  std::unique_ptr<SubwordTokenizer> tokenizer;  // WordPiece or SentencePiece
  bool deberta = false;            // model.type deberta, else bert
  BertOptions bert_options;        // model.type bert
  DebertaOptions deberta_options;  // model.type deberta
  double initializer_range = 0.02;
  double classifier_dropout = -1;
  std::string pretrained;           // resolved folder to load weights from ("" = none)
  std::vector<std::string> labels;  // id2label of the folder's config.json
  nlohmann::json raw;               // the folder's config.json (empty without a folder)

  /// The base model's name and parameter prefix: "bert" or "deberta".
  std::string prefix() const { return deberta ? "deberta" : "bert"; }
  int64_t num_layers() const {
    return deberta ? deberta_options.num_layers() : bert_options.num_layers();
  }
  int64_t vocab_size() const {
    return deberta ? deberta_options.vocab_size() : bert_options.vocab_size();
  }
  int64_t max_position_embeddings() const {
    return deberta ? deberta_options.max_position_embeddings()
                   : bert_options.max_position_embeddings();
  }
};

/// The tokenizer of a new model (tokenizer.type wordpiece or sentencepiece): the configured
/// vocab.txt / spm.model, else one learned from `texts` (the training documents).
std::unique_ptr<SubwordTokenizer> new_tokenizer(
    const ExperimentConfig& config, const std::function<std::vector<std::string>()>& texts) {
  const TokenizerConfig& t = config.tokenizer;
  const int64_t size = config.data.max_vocab_size > 0 ? config.data.max_vocab_size : 8000;
  if (t.type == "sentencepiece") {
    if (!t.model.empty()) {
      return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::from_file(t.model));
    }
    std::cerr << "learning a SentencePiece model of up to " << size << " pieces from "
              << config.data.train << "\n";
    SentencePieceTrainOptions options;
    options.hard_vocab_limit = false;  // like WordPiece: fewer when the data has no more
    return std::make_unique<SentencePieceTokenizer>(train_sentencepiece(texts(), size, options));
  }
  WordPieceOptions wo;
  wo.lower_case = t.lowercase;
  if (!t.vocab.empty()) {
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(t.vocab, wo));
  }
  std::cerr << "learning a " << size << "-entry WordPiece vocabulary from " << config.data.train
            << "\n";
  return std::make_unique<WordPieceTokenizer>(
      train_wordpiece(texts(), size, wo, std::max<int64_t>(2, config.data.min_freq)), wo);
}

/// `texts` (the training documents) are used only to learn a vocabulary when there is neither
/// a checkpoint, a pretrained folder nor tokenizer.vocab / tokenizer.model.
EncoderSetup make_setup(const ExperimentConfig& config, const std::string& artifacts_dir,
                        const std::function<std::vector<std::string>()>& texts) {
  if (config.tokenizer.type != "wordpiece" && config.tokenizer.type != "sentencepiece") {
    throw ConfigError("tokenizer.type: model.type " + config.model.type +
                      " needs a subword tokenizer, wordpiece or sentencepiece, got '" +
                      config.tokenizer.type + "'");
  }
  EncoderSetup s;
  s.deberta = config.model.type == "deberta";
  const EncoderModelConfig& e = config.model.encoder;
  // The folder whose config.json and tokenizer files decide: the checkpoint, else the
  // pretrained one.
  s.pretrained =
      artifacts_dir.empty() ? resolve_model_folder(e.pretrained, "model.pretrained") : "";
  const std::string folder = !artifacts_dir.empty() ? artifacts_dir : s.pretrained;
  if (!folder.empty()) {
    if (s.deberta) {
      HfDebertaConfig hf = read_hf_deberta_config(folder);
      s.deberta_options = hf.options;
      s.initializer_range = hf.initializer_range;
      s.classifier_dropout = hf.classifier_dropout;
      s.labels = hf.labels;
      s.raw = hf.raw;
    } else {
      HfBertConfig hf = read_hf_bert_config(folder);
      s.bert_options = hf.options;
      s.initializer_range = hf.initializer_range;
      s.classifier_dropout = hf.classifier_dropout;
      s.labels = hf.labels;
      s.raw = hf.raw;
    }
    s.tokenizer =
        load_pretrained_tokenizer(folder, config.tokenizer.lowercase, config.tokenizer.type);
    if (s.tokenizer->vocab_size() > s.vocab_size()) {
      throw InputError(folder + ": the " + s.tokenizer->type() + " vocabulary has " +
                       std::to_string(s.tokenizer->vocab_size()) +
                       " entries, more than config.json's vocab_size " +
                       std::to_string(s.vocab_size()));
    }
  } else {
    s.tokenizer = new_tokenizer(config, texts);
    const int64_t vocab = s.tokenizer->vocab_size(), pad = s.tokenizer->pad_id();
    s.bert_options = BertOptions(e.bert).vocab_size(vocab).pad_id(pad);
    s.deberta_options = DebertaOptions(e.deberta).vocab_size(vocab).pad_id(pad);
    s.initializer_range = e.initializer_range;
    if (s.deberta) {
      try {
        check_deberta_options(s.deberta_options);
      } catch (const c10::Error& err) {
        throw ConfigError(std::string("model: ") + err.what_without_backtrace());
      }
    }
  }
  if (e.classifier_dropout >= 0) s.classifier_dropout = e.classifier_dropout;
  if (config.data.max_length > s.max_position_embeddings()) {
    throw ConfigError("data.max_length (" + std::to_string(config.data.max_length) +
                      ") exceeds the model's max_position_embeddings (" +
                      std::to_string(s.max_position_embeddings()) + ")");
  }
  return s;
}

/// The pieces every BERT and DeBERTa task shares: tokenizer, artifacts, fine-tuning options.
class EncoderTaskBase : public Task {
 public:
  EncoderTaskBase(const ExperimentConfig& config, torch::Device device)
      : config_(config), device_(device) {}

  double lr_scale(const std::string& name) const override {
    const EncoderModelConfig& b = config_.model.encoder;
    const std::string base = setup_.prefix() + ".";
    const bool head = name.rfind(base, 0) != 0;
    if (head) return b.head_lr > 0 ? b.head_lr / config_.optimizer.lr : 1.0;
    if (b.layer_lr_decay >= 1.0) return 1.0;
    // Depth: embeddings 0, encoder layer i at i + 1, the pooler (and DeBERTa's relative
    // embeddings, shared by every layer) at L + 1.
    const int64_t layers = setup_.num_layers();
    int64_t depth = layers + 1;
    if (name.rfind(base + "embeddings.", 0) == 0) depth = 0;
    static const std::regex layer("^[a-z]+\\.encoder\\.layer\\.([0-9]+)\\.");
    std::smatch m;
    if (std::regex_search(name, m, layer)) depth = std::stoll(m[1]) + 1;
    return std::pow(b.layer_lr_decay, static_cast<double>(layers + 1 - depth));
  }

 protected:
  /// Loads the pretrained weights (when any) into `model`, prints what happened, applies
  /// freezing and remembers the pretrained values for L2-SP.
  void start_from_pretrained(torch::nn::Module& model) {
    const EncoderModelConfig& b = config_.model.encoder;
    if (!setup_.pretrained.empty()) {
      HfLoadReport report =
          load_hf_weights(model, pretrained_weights(), setup_.pretrained, setup_.prefix());
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
      const std::string base = setup_.prefix() + ".";
      bool freeze = b.freeze_embeddings && name.rfind(base + "embeddings.", 0) == 0;
      for (int64_t i = 0; i < b.freeze_layers; ++i) {
        freeze |= name.rfind(base + "encoder.layer." + std::to_string(i) + ".", 0) == 0;
      }
      if (freeze) {
        p.value().set_requires_grad(false);
        ++frozen;
      }
    }
    if (b.freeze_layers > setup_.num_layers()) {
      throw ConfigError("model.freeze_layers (" + std::to_string(b.freeze_layers) +
                        ") exceeds the model's " + std::to_string(setup_.num_layers()) + " layers");
    }
    if (frozen > 0) std::cerr << "frozen: " << frozen << " parameter tensors\n";
  }

  /// The weights of the pretrained folder. A replaced_token_detection checkpoint
  /// (generator.* and discriminator.*) gives its discriminator, as DeBERTa-v3's released models
  /// are, unless the task is replaced_token_detection itself (keep_rtd_layout_).
  NamedTensors pretrained_weights() const {
    NamedTensors all = read_hf_weights(setup_.pretrained);
    if (keep_rtd_layout_) return all;
    const std::string prefix = "discriminator.";
    torch::Tensor generator_word;
    NamedTensors out;
    for (auto& [name, t] : all) {
      if (name == "generator.deberta.embeddings.word_embeddings.weight") generator_word = t;
      if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
    }
    if (out.empty()) return all;
    if (setup_.raw.value("embedding_sharing", "") == "gdes" && generator_word.defined()) {
      for (auto& [name, t] : out) {
        if (name == "deberta.embeddings.word_embeddings.weight") t = t + generator_word;
      }
    }
    return out;
  }

  /// model.lora_rank > 0: adapters on the layers named by model.lora_targets; only they and
  /// the task head (`head`, a regex over parameter names) train. Called for new runs and for
  /// checkpoints alike, so that the adapter parameters exist when a checkpoint is loaded.
  void apply_lora(torch::nn::Module& model, const std::string& head) {
    const EncoderModelConfig& b = config_.model.encoder;
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
    if (config_.model.encoder.lora_rank <= 0) return;
    save_safetensors(dir + "/adapter.safetensors", lora_state(model, lora_head_),
                     {{"format", "pt"}, {"lora_targets", config_.model.encoder.lora_targets}});
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
    return total.defined() ? total * config_.model.encoder.l2sp : total;
  }

  /// The tokenizer files (vocab.txt or spm.model, tokenizer_config.json, ...) and config.json:
  /// the folder is a HuggingFace model folder once model.safetensors is beside them.
  void write_hf_artifacts(const std::string& dir, const std::string& architecture,
                          const std::vector<std::string>& labels,
                          const nlohmann::json& extra = nlohmann::json::object()) const {
    setup_.tokenizer->save_pretrained(dir, config_.data.max_length);
    nlohmann::json c;
    if (setup_.deberta) {
      c = hf_deberta_config_json(setup_.deberta_options, setup_.initializer_range, {architecture},
                                 labels);
      if (setup_.classifier_dropout >= 0) c["cls_dropout"] = setup_.classifier_dropout;
    } else {
      c = hf_bert_config_json(setup_.bert_options, setup_.initializer_range, {architecture},
                              labels);
      if (setup_.classifier_dropout >= 0) c["classifier_dropout"] = setup_.classifier_dropout;
    }
    c.update(extra);
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
  EncoderSetup setup_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> anchors_;  // (weight, pretrained value)
  std::string lora_head_;
  std::optional<EpochBatches> batches_;
  bool keep_rtd_layout_ = false;
};

/// An RTD model's discriminator as a DeBERTa checkpoint (deberta.*, mask_predictions.*). With
/// gdes its word embeddings are the generator's plus the residual E_delta, folded as
/// microsoft/DeBERTa does when it exports the discriminator.
NamedTensors rtd_discriminator_tensors(DebertaRTDImpl& rtd) {
  const torch::Tensor generator_word =
      rtd.generator->deberta->embeddings->word_embeddings->weight.detach();
  NamedTensors out;
  for (auto& [name, t] : module_state(*rtd.discriminator)) {
    const bool fold = rtd.sharing == EmbeddingSharing::kGDES &&
                      name == "deberta.embeddings.word_embeddings.weight";
    out.emplace_back(name, fold ? (generator_word + t.detach()) : t);
  }
  return out;
}

// ---------------------------------------------------------------- masked_lm

/// One pretraining example: [CLS] A [SEP] (B [SEP]).
struct PretrainingExample {
  std::vector<int64_t> ids, types;
  int64_t random_next = 0;  // NSP label: 1 = B is a random segment (HF: 0 = is next)
};

/// `masked_lm` (BERT: MLM + NSP; DeBERTa: MLM through HuggingFace's head or the Enhanced Mask
/// Decoder) and `replaced_token_detection` (DeBERTa-v3/ELECTRA: generator MLM + rtd_lambda *
/// discriminator RTD). Exactly one of the model members is set.
class PretrainingTask : public EncoderTaskBase {
 public:
  PretrainingTask(const ExperimentConfig& config, const std::string& artifacts_dir,
                  torch::Device device, bool replaced_token_detection)
      : EncoderTaskBase(config, device) {
    const std::string& type = config.model.type;
    if (replaced_token_detection && type != "deberta") {
      throw ConfigError("model.type: task replaced_token_detection takes deberta, got '" + type +
                        "'");
    }
    if (type != "bert" && type != "deberta") {
      throw ConfigError("model.type: task masked_lm takes bert or deberta, got '" + type + "'");
    }
    if (artifacts_dir.empty() && config.data.train.empty()) {
      throw ConfigError("data.train: no training file given");
    }
    std::vector<std::string> train_docs;
    if (artifacts_dir.empty()) train_docs = read_documents(config.data.train, file_options());
    setup_ = make_setup(config, artifacts_dir, [&] { return train_docs; });
    // DeBERTa has no next-sentence head.
    nsp_ = config.data.next_sentence && !setup_.deberta;
    const EncoderModelConfig& e = config.model.encoder;
    std::string head;
    if (replaced_token_detection) {
      rtd_ = DebertaRTD(rtd_options());
      rtd_->reset_parameters(setup_.initializer_range);
      model_ = rtd_.ptr();
      head = "^(generator\\.lm_predictions|discriminator\\.mask_predictions)\\.";
      keep_rtd_layout_ = true;
    } else if (setup_.deberta && e.emd) {
      emd_ = DebertaMaskedLMWithEMD(setup_.deberta_options);
      emd_->reset_parameters(setup_.initializer_range);
      model_ = emd_.ptr();
      head = "^lm_predictions\\.";
    } else if (setup_.deberta) {
      deberta_ = DebertaForMaskedLM(setup_.deberta_options);
      deberta_->reset_parameters(setup_.initializer_range);
      model_ = deberta_.ptr();
      head = "^cls\\.";
    } else {
      bert_ = BertForPreTraining(setup_.bert_options);
      bert_->reset_parameters(setup_.initializer_range);
      model_ = bert_.ptr();
      head = "^cls\\.";
    }
    if (artifacts_dir.empty()) start_from_pretrained(*model_);
    apply_lora(*model_, head);
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

  std::shared_ptr<torch::nn::Module> model() override { return model_; }

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
    step.loss = l.mlm;
    if (l.nsp.defined()) step.loss = step.loss + l.nsp;
    if (l.rtd.defined()) step.loss = step.loss + config_.model.encoder.rtd_lambda * l.rtd;
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
    // The generator's samples too: a fixed seed, and the training run's RNG left as it was.
    auto generator = at::detail::getDefaultCPUGenerator();
    const torch::Tensor rng_state = generator.get_state();
    generator.set_current_seed(12345);
    double mlm_sum = 0, nsp_sum = 0, rtd_sum = 0;
    int64_t mlm_count = 0, mlm_correct = 0, nsp_correct = 0;
    int64_t rtd_count = 0, rtd_correct = 0, true_positive = 0, predicted = 0, replaced = 0;
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
      if (l.rtd.defined()) {
        const torch::Tensor guess = l.rtd_logits.gt(0), truth = l.rtd_labels.gt(0.5);
        rtd_sum += l.rtd.item<double>();
        rtd_count += truth.numel();
        rtd_correct += guess.eq(truth).sum().item<int64_t>();
        true_positive += guess.logical_and(truth).sum().item<int64_t>();
        predicted += guess.sum().item<int64_t>();
        replaced += truth.sum().item<int64_t>();
      }
    }
    generator.set_state(rng_state);
    model_->train();
    Evaluation eval;
    const double mlm_loss = mlm_sum / std::max<int64_t>(mlm_count, 1);
    eval.metrics["mlm_loss"] = mlm_loss;
    eval.metrics["perplexity"] = std::exp(mlm_loss);
    eval.metrics["mlm_accuracy"] = double(mlm_correct) / std::max<int64_t>(mlm_count, 1);
    eval.metrics["loss"] = mlm_loss;
    if (nsp_) {
      eval.metrics["nsp_loss"] = nsp_sum / n;
      eval.metrics["nsp_accuracy"] = double(nsp_correct) / n;
      eval.metrics["loss"] = mlm_loss + nsp_sum / n;
    }
    if (rtd_) {
      const double rtd_loss = rtd_sum / std::max<int64_t>(rtd_count, 1);
      const double precision = double(true_positive) / std::max<int64_t>(predicted, 1);
      const double recall = double(true_positive) / std::max<int64_t>(replaced, 1);
      eval.metrics["rtd_loss"] = rtd_loss;
      eval.metrics["rtd_accuracy"] = double(rtd_correct) / std::max<int64_t>(rtd_count, 1);
      eval.metrics["replaced_precision"] = precision;
      eval.metrics["replaced_recall"] = recall;
      eval.metrics["replaced_f1"] =
          precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
      eval.metrics["loss"] = mlm_loss + config_.model.encoder.rtd_lambda * rtd_loss;
    }
    eval.report = eval.metrics;
    eval.report["examples"] = n;
    eval.report["masked_tokens"] = mlm_count;
    if (rtd_) eval.report["replaced_tokens"] = replaced;
    char line[256];
    std::snprintf(line, sizeof line,
                  "examples %lld | masked tokens %lld | %smlm accuracy %.4f | perplexity %.2f",
                  static_cast<long long>(n), static_cast<long long>(mlm_count),
                  rtd_ ? "generator " : "", eval.metrics["mlm_accuracy"],
                  eval.metrics["perplexity"]);
    eval.table = line;
    if (nsp_) {
      std::snprintf(line, sizeof line, " | nsp accuracy %.4f", eval.metrics["nsp_accuracy"]);
      eval.table += line;
    }
    if (rtd_) {
      std::snprintf(line, sizeof line,
                    " | discriminator accuracy %.4f | replaced-token F1 %.4f (%lld replaced)",
                    eval.metrics["rtd_accuracy"], eval.metrics["replaced_f1"],
                    static_cast<long long>(replaced));
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
      Masked m;
      m.batch = pad({&e.input_ids}, {&e.token_type_ids});
      m.labels = m.batch.ids.eq(setup_.tokenizer->mask_id());  // the [MASK] positions
      m.labels = torch::where(m.labels, m.batch.ids, torch::full_like(m.batch.ids, kIgnore));
      const torch::Tensor logits = mlm_logits(m);  // (masks, V), in position order
      std::vector<int64_t> filled = e.input_ids;
      std::string candidates;
      int64_t row = 0;
      for (size_t j = 0; j < e.input_ids.size(); ++j) {
        if (e.input_ids[j] != setup_.tokenizer->mask_id()) continue;
        const torch::Tensor p = torch::softmax(logits[row++], -1).cpu();
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
    // The HuggingFace class of the head; EMD and RTD keep microsoft/DeBERTa's layout, which
    // HuggingFace loads as the bare DebertaV2Model (the heads are reported unused).
    const char* architecture = bert_      ? "BertForPreTraining"
                               : deberta_ ? "DebertaV2ForMaskedLM"
                                          : "DebertaV2Model";
    nlohmann::json extra = nlohmann::json::object();
    // What pretrained_weights needs to rebuild the discriminator from this checkpoint.
    if (rtd_) extra["embedding_sharing"] = rtd_->options.embedding_sharing();
    write_hf_artifacts(dir, architecture, {}, extra);
    save_adapters(dir, *model_);
  }

  void export_huggingface(const std::string& dir) override {
    if (!rtd_) return EncoderTaskBase::export_huggingface(dir);
    // DeBERTa-v3's release: the discriminator alone, under DebertaV2Model's names.
    merge_lora(*model_);
    save_artifacts(dir);
    std::remove((dir + "/adapter.safetensors").c_str());
    save_safetensors(dir + "/model.safetensors", rtd_discriminator_tensors(*rtd_),
                     {{"format", "pt"}});
  }

 private:
  struct Masked {
    Batch batch;
    torch::Tensor labels;  // (B, T), kIgnore where nothing is predicted
    torch::Tensor nsp;     // (B)
  };
  struct Losses {
    torch::Tensor mlm, nsp, mlm_logits, mlm_targets, nsp_logits;
    /// RTD: the discriminator's loss, logits and 1/0 labels over the real tokens (M).
    torch::Tensor rtd, rtd_logits, rtd_labels;
  };

  /// The RTD model: the configured DeBERTa is the discriminator; the generator has
  /// model.generator_width of its heads (hidden and intermediate sizes alike) and
  /// model.generator_depth of its layers (at least 2: the Enhanced Mask Decoder reuses one).
  DebertaRTDOptions rtd_options() const {
    const EncoderModelConfig& e = config_.model.encoder;
    const DebertaOptions& d = setup_.deberta_options;
    const int64_t head_size = d.hidden_size() / d.num_heads();
    const int64_t heads = std::max<int64_t>(1, std::lround(d.num_heads() * e.generator_width));
    DebertaOptions g =
        DebertaOptions(d)
            .num_heads(heads)
            .hidden_size(heads * head_size)
            .intermediate_size(
                std::max<int64_t>(1, std::lround(d.intermediate_size() * e.generator_width)))
            .num_layers(std::max<int64_t>(2, std::lround(d.num_layers() * e.generator_depth)));
    if (e.embedding_sharing != "none" && g.hidden_size() != d.hidden_size()) {
      throw ConfigError("model.generator_width: embedding_sharing " + e.embedding_sharing +
                        " shares the embedding matrix, so the generator must be as wide as the "
                        "discriminator (generator_width 1); use embedding_sharing none for a "
                        "narrower generator");
    }
    return DebertaRTDOptions(g, d).embedding_sharing(e.embedding_sharing).rtd_lambda(e.rtd_lambda);
  }

  /// The MLM logits (N, V) at the positions whose label is not kIgnore, row-major.
  torch::Tensor mlm_logits(const Masked& m, BertModelOutput* bert_out = nullptr) {
    const torch::Tensor picked = m.labels.ne(kIgnore);  // (B, T)
    const Batch& b = m.batch;
    if (bert_) {
      BertModelOutput out = bert_->bert->forward(b.ids, b.mask, b.types);
      torch::Tensor logits = bert_->mlm_logits(out.last_hidden_state.index({picked}));
      if (bert_out) *bert_out = std::move(out);
      return logits;
    }
    if (deberta_) {
      const torch::Tensor hidden =
          deberta_->deberta->forward(b.ids, b.mask, b.types).last_hidden_state;
      return deberta_->mlm_logits(hidden.index({picked}));  // (N, V)
    }
    if (rtd_) return rtd_->generator->forward(b.ids, b.mask, picked.to(torch::kInt64)).logits;
    return emd_->forward(b.ids, b.mask, picked.to(torch::kInt64), b.types).logits;  // (N, V)
  }

  /// Builds examples as BERT's create_pretraining_data does: sentences of a document are packed
  /// into chunks of up to max_length - 3 tokens; with NSP a chunk is cut at a random sentence
  /// boundary into A and B, and half the time B is replaced by text from another document.
  std::vector<PretrainingExample> make_examples(const std::vector<std::string>& docs,
                                                uint64_t seed) const {
    const SubwordTokenizer& tok = *setup_.tokenizer;
    std::vector<std::vector<std::vector<int64_t>>> sentences(docs.size());
    for (size_t d = 0; d < docs.size(); ++d) {
      for (const auto& s : split_sentences(docs[d])) {
        std::vector<int64_t> ids = tok.encode(s);
        if (!ids.empty()) sentences[d].push_back(std::move(ids));
      }
    }
    const bool nsp = nsp_;
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
    const SubwordTokenizer& tok = *setup_.tokenizer;
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
        const bool continuation = tok.continues_word(x[j]);
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
  /// plus NSP cross-entropy (BERT) or the discriminator's BCE (RTD); means, or sums with `sum`.
  Losses losses(const Masked& m, bool sum = false) {
    namespace F = torch::nn::functional;
    F::CrossEntropyFuncOptions options;
    if (sum) options.reduction(torch::kSum);
    Losses l;
    l.mlm_targets = m.labels.masked_select(m.labels.ne(kIgnore));  // (N)
    if (rtd_) {
      // DebertaRTD's labels: the original id at the targets, 0 elsewhere.
      const torch::Tensor targets =
          torch::where(m.labels.eq(kIgnore), torch::zeros_like(m.labels), m.labels);
      DebertaRTDOutput out = rtd_->forward(m.batch.ids, m.batch.mask, targets);
      const torch::Tensor keep = m.batch.mask.reshape({-1}).gt(0).nonzero().view({-1});  // (M)
      l.mlm_logits = out.gen_logits;
      l.rtd_logits = out.disc_logits.reshape({-1}).index_select(0, keep);
      l.rtd_labels = out.disc_labels;
      l.rtd = sum ? out.disc_loss.sum() : out.disc_loss.mean();
    } else {
      BertModelOutput bert_out;
      l.mlm_logits = mlm_logits(m, &bert_out);  // (N, V)
      if (nsp_) {
        l.nsp_logits = bert_->cls->seq_relationship(bert_out.pooler_output);  // (B, 2)
        l.nsp = F::cross_entropy(l.nsp_logits, m.nsp, options);
      }
    }
    l.mlm = F::cross_entropy(l.mlm_logits, l.mlm_targets, options);
    return l;
  }

  std::shared_ptr<torch::nn::Module> model_;
  BertForPreTraining bert_{nullptr};
  DebertaForMaskedLM deberta_{nullptr};
  DebertaMaskedLMWithEMD emd_{nullptr};
  DebertaRTD rtd_{nullptr};
  bool nsp_ = false;
  std::map<Split, std::vector<PretrainingExample>> splits_;
};

// ---------------------------------------------------------------- classification

struct EncodedTexts {
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> labels;
};

class EncoderClassificationTask : public EncoderTaskBase {
 public:
  EncoderClassificationTask(const ExperimentConfig& config, const std::string& artifacts_dir,
                            torch::Device device)
      : EncoderTaskBase(config, device) {
    ClassificationData train;
    if (artifacts_dir.empty()) {
      if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
      train = load_classification_file(config.data.train, file_options());
      skipped_[Split::kTrain] = train.skipped;
      if (train.examples.empty())
        throw InputError("data file has no examples: " + config.data.train);
      transform_training_examples(config, &train.examples);
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
    const int64_t n = labels_.size();
    if (setup_.deberta) {
      deberta_ = DebertaClassifier(setup_.deberta_options, n, setup_.classifier_dropout);
      deberta_->reset_parameters(setup_.initializer_range);
      model_ = deberta_.ptr();
    } else {
      bert_ = BertClassifier(setup_.bert_options, n, false, setup_.classifier_dropout);
      bert_->reset_parameters(setup_.initializer_range);
      model_ = bert_.ptr();
    }
    if (artifacts_dir.empty()) start_from_pretrained(*model_);
    apply_lora(*model_, "^classifier\\.");
    if (artifacts_dir.empty()) {
      splits_[Split::kTrain] = encode(train, config.data.train);
      if (has_split(Split::kValid)) split(Split::kValid);
      if (has_split(Split::kTest)) split(Split::kTest);
    }
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_; }

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
    ClassifierBatch cb = encoder_classifier_batch(
        model_,
        [this](const torch::Tensor& ids, const torch::Tensor& mask) { return forward(ids, mask); },
        deberta_ ? &deberta_->deberta->embeddings->layer_norm_input_hook
                 : &bert_->bert->embeddings->layer_norm_input_hook,
        deberta_ ? &deberta_->features_hook : &bert_->features_hook, b.ids, b.mask,
        to_device(torch::tensor(labels), device_));
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

  torch::Tensor class_probabilities(const std::vector<std::string>& texts) override {
    torch::NoGradGuard no_grad;
    model_->eval();
    EncodedTexts data;
    for (const auto& t : texts) {
      data.ids.push_back(
          setup_.tokenizer->encode_pair(t, nullptr, config_.data.max_length, false).input_ids);
    }
    return class_probabilities_of(static_cast<int64_t>(texts.size()), config_.data.eval_batch_size,
                                  [&](const std::vector<int64_t>& idx) { return logits(data, idx); });
  }

  std::vector<std::string> class_names() const override { return labels_.names(); }

  std::vector<std::string> predict(const std::vector<std::string>& texts) override {
    return label_lines(class_probabilities(texts), labels_.names());
  }

  std::string summary() const override {
    std::map<Split, int64_t> examples;
    for (const auto& [s, data] : splits_) examples[s] = static_cast<int64_t>(data.ids.size());
    return classification_summary(examples, skipped_, setup_.tokenizer->vocab_size(), labels_.names());
  }

  void save_artifacts(const std::string& dir) const override {
    labels_.save(dir + "/labels.json");
    write_hf_artifacts(
        dir, deberta_ ? "DebertaV2ForSequenceClassification" : "BertForSequenceClassification",
        labels_.names());
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
    return forward(b.ids, b.mask);
  }

  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask) {
    return deberta_ ? deberta_->forward(ids, mask) : bert_->forward(ids, mask);
  }

  LabelMap labels_;
  std::shared_ptr<torch::nn::Module> model_;
  BertClassifier bert_{nullptr};
  DebertaClassifier deberta_{nullptr};
  std::map<Split, EncodedTexts> splits_;
  std::map<Split, int64_t> skipped_;
};

}  // namespace

std::unique_ptr<Task> make_masked_lm_task(const ExperimentConfig& config,
                                          const std::string& artifacts_dir, torch::Device device) {
  return std::make_unique<PretrainingTask>(config, artifacts_dir, device, false);
}

std::unique_ptr<Task> make_replaced_token_detection_task(const ExperimentConfig& config,
                                                         const std::string& artifacts_dir,
                                                         torch::Device device) {
  return std::make_unique<PretrainingTask>(config, artifacts_dir, device, true);
}

std::unique_ptr<Task> make_encoder_classification_task(const ExperimentConfig& config,
                                                       const std::string& artifacts_dir,
                                                       torch::Device device) {
  return std::make_unique<EncoderClassificationTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
