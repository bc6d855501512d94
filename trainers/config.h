// Experiment configuration: YAML in, typed structs out.
//
// Every key is declared once (`declare_experiment` in config.cpp, and each model type's keys in
// registry.cpp) with its type, default and one-line doc. That declaration drives parsing,
// validation, `nlpkit dump-config` and the key reference in configs/README.md.
// Order of precedence: struct defaults < the YAML file < `key.path=value` overrides.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/input_error.h"
#include "modules/bert.h"
#include "modules/deberta.h"
#include "modules/language_model.h"
#include "modules/seq2seq.h"
#include "modules/text_classifier.h"
#include "modules/transformer.h"

namespace YAML {
class Node;
}

namespace nlpkit {

/// A bad config: the message already reads `file:line:col: key.path: what is wrong`.
class ConfigError : public InputError {
 public:
  using InputError::InputError;
};

/// model.type bert and deberta: the architecture (ignored when `pretrained` names a folder,
/// whose config.json decides) and the pretraining and fine-tuning options both share.
struct EncoderModelConfig {
  /// model.type bert; vocab_size comes from the vocabulary (or the pretrained config.json).
  BertOptions bert = BertOptions()
                         .hidden_size(256)
                         .num_layers(4)
                         .num_heads(4)
                         .intermediate_size(1024)
                         .max_position_embeddings(512);
  /// model.type deberta (DeBERTa-v3 layout); vocab_size and pad_id come from the vocabulary.
  DebertaOptions deberta = DebertaOptions()
                               .hidden_size(256)
                               .num_layers(4)
                               .num_heads(4)
                               .intermediate_size(1024)
                               .max_position_embeddings(512);
  double initializer_range = 0.02;
  /// A HuggingFace folder of the same model type (config.json, model.safetensors or
  /// pytorch_model.bin, vocab.txt) or an nlpkit run/checkpoint; empty = train from scratch.
  std::string pretrained;
  double classifier_dropout = -1;
  bool freeze_embeddings = false;
  int64_t freeze_layers = 0;
  double layer_lr_decay = 1.0;
  double head_lr = 0;
  double l2sp = 0;
  int64_t lora_rank = 0;
  double lora_alpha = 16;
  double lora_dropout = 0;
  std::string lora_targets = "attention\\.self\\.(query|value)(_proj)?$";
  /// task masked_lm with deberta: the Enhanced Mask Decoder head (microsoft/DeBERTa layout).
  bool emd = false;
  /// task replaced_token_detection: the generator's size relative to the discriminator.
  double generator_width = 1.0;
  double generator_depth = 0.5;
  std::string embedding_sharing = "gdes";
  double rtd_lambda = 50;
};

/// model.type word2vec (task word2vec): modules/word_embeddings.h. min_count is data.min_freq,
/// the starting learning rate optimizer.lr, the passes trainer.epochs.
struct Word2VecModelConfig {
  int64_t embedding_dim = 100;
  std::string architecture = "skip_gram";
  std::string loss = "negative_sampling";
  int64_t negative = 5;
  int64_t window = 5;
  double sample = 1e-3;
  std::string output_format = "text";
};

/// model.type fasttext (task classification): averaged word and hashed word n-gram embeddings
/// -> linear (Joulin et al. 2017).
struct FastTextModelConfig {
  int64_t embedding_dim = 100;
  int64_t word_ngrams = 2;
  int64_t buckets = 200000;
};

/// model.type nnlm (task language_model): Bengio et al. 2003.
struct NNLMModelConfig {
  int64_t context_size = 4;
  int64_t embedding_dim = 64;
  int64_t hidden_size = 128;
  bool direct_connections = false;
  double dropout = 0.0;
};

struct ModelConfig {
  std::string type = "text_cnn_bilstm_attention";
  /// Options of each model family; only the one named by `type` is read from YAML.
  /// vocab_size, num_classes and pad_id come from the data, not from the config.
  TextClassifierOptions text_cnn_bilstm_attention{0, 0};
  /// rnn, lstm, gru (language models); `cell` is set from `type`.
  RecurrentLMOptions recurrent_lm{0};
  /// convlstm (frame prediction): the encoder-forecaster's layers.
  std::vector<int64_t> convlstm_hidden_sizes = {64, 64};
  int64_t convlstm_kernel_size = 3;
  EncoderModelConfig encoder;
  /// seq2seq_attention and transformer (task seq2seq); vocabulary sizes and pad_id come from
  /// the data.
  Seq2SeqOptions seq2seq_attention{0, 0};
  TransformerOptions transformer{0, 0};
  Word2VecModelConfig word2vec;
  FastTextModelConfig fasttext;
  NNLMModelConfig nnlm;
};

struct TokenizerConfig {
  std::string type = "whitespace";
  bool lowercase = true;
  bool split_punctuation = true;
  /// wordpiece: the vocab.txt (one token per line; `nlpkit tokenizer train` writes one).
  std::string vocab;
  /// sentencepiece: the spm.model (`nlpkit tokenizer train --type sentencepiece` writes one).
  std::string model;
};

struct DataConfig {
  std::string train;
  std::string valid;
  std::string test;
  std::string format = "auto";
  std::string text_field = "text";
  std::string label_field = "label";
  std::string on_error = "error";
  int64_t batch_size = 32;
  int64_t eval_batch_size = 64;
  bool shuffle = true;
  int64_t min_freq = 1;
  int64_t max_vocab_size = 0;
  int64_t max_sentences = 16;
  int64_t max_sentence_length = 32;
  std::string pretrained_embeddings;
  int64_t bptt = 35;
  int64_t max_length = 128;
  double mlm_probability = 0.15;
  bool whole_word_mask = false;
  bool next_sentence = true;
  int64_t train_examples = 0;
  int64_t train_subset_seed = 1234;
  bool bootstrap = false;
  /// This process's share of the training data in a distributed run: shard_index of
  /// shard_count (rank and world size). Set by the trainer from the process group, not YAML keys.
  int64_t shard_index = 0;
  int64_t shard_count = 1;
};

struct FramesConfig {
  int64_t input_frames = 10;
  int64_t future_frames = 10;
  int64_t patch_size = 4;
  std::string loss = "bce";
  int64_t train_sequences = 10000;
  int64_t valid_sequences = 200;
  int64_t test_sequences = 2000;
  std::string predictions_dir = "predictions";
};

struct GenerationConfig {
  int64_t max_tokens = 40;
  double temperature = 1.0;
  int64_t top_k = 0;
};

/// Task seq2seq: parallel text, decoding and its bad-input policies.
struct Seq2SeqConfig {
  std::string source_tokens = "char";
  std::string target_tokens = "whitespace";
  int64_t max_source_length = 64;
  int64_t max_target_length = 64;
  std::string on_too_long = "truncate";
  int64_t beam_size = 5;
  double length_penalty = 0.0;
  int64_t max_decode_length = 0;
  double label_smoothing = 0.0;
  bool incremental = true;
  int64_t maxi_batch = 100;
  std::string score_strip;
};

struct OptimizerConfig {
  std::string type = "adamw";
  double lr = 1e-3;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool nesterov = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct SchedulerConfig {
  std::string type = "constant";
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  int64_t step_size = 1000;
  double gamma = 0.1;
};

struct TrainerConfig {
  int64_t epochs = 1;
  int64_t max_steps = 0;
  int64_t grad_accum_steps = 1;
  double clip_grad_norm = 0.0;
  double clip_grad_value = 0.0;
  double l1 = 0.0;
  double l2 = 0.0;
  int64_t eval_every = 0;
  bool eval_each_epoch = true;
  std::string metric = "accuracy";
  std::string metric_mode = "max";
  int64_t patience = 0;
  double min_delta = 0.0;
  int64_t save_every = 0;
  int64_t keep_last = 2;
  bool keep_best = true;
  std::string resume = "none";
  int64_t max_nonfinite_steps = 10;
};

/// distributed: data-parallel training on c10d (trainers/distributed.h). Where the ranks meet comes
/// from the environment torchrun, `nlpkit launch` or Slurm set; these keys tune the rest.
struct DistributedConfig {
  std::string backend = "auto";  // auto (nccl on CUDA, gloo on CPU), gloo, nccl
  double bucket_mb = 25;         // gradient all-reduce bucket size, as DDP's bucket_cap_mb
  int64_t timeout_s = 1800;      // a collective not done by then fails (a rank died or hangs)
  std::string master_addr;       // Slurm: rendezvous host when MASTER_ADDR is not set
  int64_t master_port = 29500;   // Slurm: rendezvous port when MASTER_PORT is not set
};

struct LoggingConfig {
  int64_t every = 50;
  std::string progress = "auto";
  bool jsonl = true;
  bool tensorboard = true;
  int64_t histograms_every = 0;
};

/// regularization.rdrop (trainers/regularizers.h): alpha 0 = off.
struct RDropConfig {
  double alpha = 0.0;
  std::string variant = "readme";
};

/// regularization.sift: weight 0 = off.
struct SiftConfig {
  double weight = 0.0;
  double sigma = 0.01;
  double step_size = 1e-4;
  double layer_norm_eps = 1e-7;
};

/// regularization.mixup: alpha 0 = off.
struct MixupConfig {
  double alpha = 0.0;
  std::string level = "sentence";
};

/// Training-step regularizers of the classification tasks; at most one is on.
struct RegularizationConfig {
  RDropConfig rdrop;
  SiftConfig sift;
  MixupConfig mixup;
  /// The names of the regularizers that are on.
  std::vector<std::string> active() const {
    std::vector<std::string> on;
    if (rdrop.alpha > 0) on.push_back("rdrop");
    if (sift.weight > 0) on.push_back("sift");
    if (mixup.alpha > 0) on.push_back("mixup");
    return on;
  }
};

/// augmentation.eda (datasets/augmentation.h): copies 0 = off.
struct EdaConfig {
  int64_t copies = 0;
  double synonym_rate = 0.1;
  double insertion_rate = 0.1;
  double swap_rate = 0.1;
  double deletion_rate = 0.1;
  std::string wordnet = "/usr/share/wordnet";
  std::string synonyms;
  std::string stopwords = "english";
  bool keep_original = true;
};

struct AugmentationConfig {
  EdaConfig eda;
};

/// Task linear_baseline (datasets/features.h): logistic regression on classic features, its
/// regularisation and n-gram range chosen by stratified k-fold cross-validation.
struct LinearBaselineConfig {
  std::string features = "tfidf";
  std::vector<int64_t> ngram_max = {1, 2};
  std::vector<double> l2 = {1e-5, 1e-4, 1e-3};
  int64_t folds = 5;
  int64_t iterations = 100;
  std::string metric = "accuracy";
};

struct ExperimentConfig {
  std::string name = "experiment";
  std::string task = "classification";
  std::string output_dir;  // default: runs/<name>
  int64_t seed = 42;
  std::string device = "auto";
  int64_t threads = 0;
  std::string precision = "fp32";  // fp32, bf16, fp16 (trainers/precision.h)
  bool cudnn_benchmark = false;
  ModelConfig model;
  TokenizerConfig tokenizer;
  DataConfig data;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  TrainerConfig trainer;
  LoggingConfig logging;
  DistributedConfig distributed;
  GenerationConfig generation;
  Seq2SeqConfig seq2seq;
  FramesConfig frames;
  RegularizationConfig regularization;
  AugmentationConfig augmentation;
  LinearBaselineConfig linear;

  /// The run directory: output_dir, or runs/<name> when unset.
  std::string run_dir() const { return output_dir.empty() ? "runs/" + name : output_dir; }
};

// ---------------------------------------------------------------------------------------------
// Declarations: a tree of sections whose fields point into a config struct.

class Section;

/// One declared key: a name bound to a typed field, with its doc and constraints.
class Field {
 public:
  std::string name;
  std::string type;  // "int", "float", "bool", "string", "list of int", ...
  std::string doc;
  /// Reads the YAML value into the bound field; `where` prefixes errors.
  std::function<void(const YAML::Node&, const std::string& where, const std::string& path)> read;
  /// The current value as YAML flow text (e.g. `0.001`, `[2, 3, 4]`, `"runs/x"`).
  std::function<std::string()> show;

  /// Constraints, checked after reading. Numbers only.
  Field& at_least(double v);
  Field& greater_than(double v);
  Field& at_most(double v);
  /// Strings only: the allowed values (listed in errors and docs).
  Field& one_of(std::vector<std::string> choices);

  std::vector<std::string> choices;
  std::vector<std::function<std::string(double)>> checks;  // return "" when fine, else the problem
};

class Section {
 public:
  Section(std::string name, std::string doc) : name(std::move(name)), doc(std::move(doc)) {}

  Field& add(const std::string& key, bool* target, const std::string& doc);
  Field& add(const std::string& key, int64_t* target, const std::string& doc);
  Field& add(const std::string& key, double* target, const std::string& doc);
  Field& add(const std::string& key, std::string* target, const std::string& doc);
  Field& add(const std::string& key, std::vector<int64_t>* target, const std::string& doc);
  Field& add(const std::string& key, std::vector<double>* target, const std::string& doc);
  Section& section(const std::string& key, const std::string& doc);

  /// A section whose keys depend on its `type` field (model): `declare_type(section)` adds the
  /// keys of the type the bound config holds, once `type` has been read.
  std::function<void(Section&)> declare_type;
  std::vector<std::string> type_names;

  std::string name;
  std::string doc;
  std::vector<std::unique_ptr<Field>> fields;
  std::vector<std::unique_ptr<Section>> sections;

  Field* find_field(const std::string& key);
  Section* find_section(const std::string& key);
  std::vector<std::string> keys() const;
};

/// The declaration tree bound to `config` (which must outlive it). With `typed_keys`, the model
/// section also declares the keys of `config.model.type`.
std::unique_ptr<Section> declare_experiment(ExperimentConfig& config, bool typed_keys = false);

/// Loads `path`, applies `overrides` ("a.b.c=value"), validates, and returns the typed config.
/// Throws ConfigError with `file:line:col: key.path: problem`.
ExperimentConfig load_config(const std::string& path,
                             const std::vector<std::string>& overrides = {});

/// Parses YAML text (used for configs saved inside checkpoints and by tests); `source` names it.
ExperimentConfig parse_config(const std::string& yaml_text, const std::string& source,
                              const std::vector<std::string>& overrides = {});

/// The resolved config as YAML, every key present, in declaration order.
std::string dump_config(const ExperimentConfig& config);

/// The key reference (markdown tables) generated from the declarations, for configs/README.md.
std::string config_reference_markdown();

/// Closest candidate within edit distance 2 (or a prefix match), "" when none.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace nlpkit
