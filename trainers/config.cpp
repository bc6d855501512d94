#include "trainers/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "trainers/registry.h"

namespace nlpkit {
namespace {

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

std::string describe(const YAML::Node& node) {
  if (node.IsScalar()) return quote(node.Scalar());
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a section";
  return "nothing";
}

[[noreturn]] void fail(const std::string& where, const std::string& path, const std::string& what) {
  throw ConfigError(where + ": " + path + ": " + what);
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || std::isnan(v)) return false;
  *out = v;
  return true;
}

std::string format_double(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  std::string s = os.str();
  // Keep it a float in YAML's eyes: "1" -> "1.0".
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string yaml_string(const std::string& s) {
  YAML::Emitter e;
  e << YAML::DoubleQuoted << s;
  return e.c_str();
}

Field& make_field(Section& section, const std::string& key, const std::string& type,
                  const std::string& doc) {
  TORCH_CHECK(!section.find_field(key) && !section.find_section(key),
              "config key declared twice: ", section.name, ".", key);
  section.fields.push_back(std::make_unique<Field>());
  Field& f = *section.fields.back();
  f.name = key;
  f.type = type;
  f.doc = doc;
  return f;
}

/// The location of a list element, from the list's own location "file:line:col".
std::string element_where(const std::string& list_where, const YAML::Node& element) {
  const YAML::Mark mark = element.Mark();
  const size_t colon = list_where.find(':');
  if (mark.is_null() || colon == std::string::npos) return list_where;
  return list_where.substr(0, colon) + ":" + std::to_string(mark.line + 1) + ":" +
         std::to_string(mark.column + 1);
}

void check_number(const Field& f, double v, const std::string& where, const std::string& path) {
  for (const auto& check : f.checks) {
    std::string problem = check(v);
    if (!problem.empty()) fail(where, path, problem);
  }
}

}  // namespace

// ------------------------------------------------------------------------------ Field, Section

Field& Field::at_least(double v) {
  checks.push_back([v](double x) {
    return x >= v ? "" : "must be >= " + format_double(v) + ", found " + format_double(x);
  });
  return *this;
}

Field& Field::greater_than(double v) {
  checks.push_back([v](double x) {
    return x > v ? "" : "must be > " + format_double(v) + ", found " + format_double(x);
  });
  return *this;
}

Field& Field::at_most(double v) {
  checks.push_back([v](double x) {
    return x <= v ? "" : "must be <= " + format_double(v) + ", found " + format_double(x);
  });
  return *this;
}

Field& Field::one_of(std::vector<std::string> values) {
  choices = std::move(values);
  return *this;
}

Field& Section::add(const std::string& key, bool* target, const std::string& doc) {
  Field& f = make_field(*this, key, "bool", doc);
  f.read = [target](const YAML::Node& n, const std::string& where, const std::string& path) {
    if (!n.IsScalar()) fail(where, path, "expected true or false, found " + describe(n));
    const std::string& s = n.Scalar();
    if (s == "true" || s == "True" || s == "yes" || s == "on") {
      *target = true;
    } else if (s == "false" || s == "False" || s == "no" || s == "off") {
      *target = false;
    } else {
      fail(where, path, "expected true or false, found " + quote(s));
    }
  };
  f.show = [target] { return std::string(*target ? "true" : "false"); };
  return f;
}

Field& Section::add(const std::string& key, int64_t* target, const std::string& doc) {
  Field& f = make_field(*this, key, "int", doc);
  f.read = [target, &f](const YAML::Node& n, const std::string& where, const std::string& path) {
    int64_t v = 0;
    if (!n.IsScalar() || !parse_int(n.Scalar(), &v)) {
      fail(where, path, "expected an integer, found " + describe(n));
    }
    check_number(f, static_cast<double>(v), where, path);
    *target = v;
  };
  f.show = [target] { return std::to_string(*target); };
  return f;
}

Field& Section::add(const std::string& key, double* target, const std::string& doc) {
  Field& f = make_field(*this, key, "float", doc);
  f.read = [target, &f](const YAML::Node& n, const std::string& where, const std::string& path) {
    double v = 0;
    if (!n.IsScalar() || !parse_double(n.Scalar(), &v)) {
      fail(where, path, "expected a number, found " + describe(n));
    }
    check_number(f, v, where, path);
    *target = v;
  };
  f.show = [target] { return format_double(*target); };
  return f;
}

Field& Section::add(const std::string& key, std::string* target, const std::string& doc) {
  Field& f = make_field(*this, key, "string", doc);
  f.read = [target, &f](const YAML::Node& n, const std::string& where, const std::string& path) {
    if (!n.IsScalar()) fail(where, path, "expected a string, found " + describe(n));
    const std::string& s = n.Scalar();
    if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
      std::string hint = did_you_mean(s, f.choices);
      fail(where, path,
           "unknown value " + quote(s) + "; expected one of: " + join(f.choices) +
               (hint.empty() ? "" : "; did you mean " + quote(hint) + "?"));
    }
    *target = s;
  };
  f.show = [target] { return yaml_string(*target); };
  return f;
}

Field& Section::add(const std::string& key, std::vector<int64_t>* target, const std::string& doc) {
  Field& f = make_field(*this, key, "list of int", doc);
  f.read = [target, &f](const YAML::Node& n, const std::string& where, const std::string& path) {
    if (!n.IsSequence()) fail(where, path, "expected a list of integers, found " + describe(n));
    std::vector<int64_t> values;
    for (size_t i = 0; i < n.size(); ++i) {
      int64_t v = 0;
      const std::string at = element_where(where, n[i]);
      if (!n[i].IsScalar() || !parse_int(n[i].Scalar(), &v)) {
        fail(at, path + "[" + std::to_string(i) + "]",
             "expected an integer, found " + describe(n[i]));
      }
      check_number(f, static_cast<double>(v), at, path + "[" + std::to_string(i) + "]");
      values.push_back(v);
    }
    if (values.empty()) fail(where, path, "expected a non-empty list");
    *target = values;
  };
  f.show = [target] {
    std::string s = "[";
    for (size_t i = 0; i < target->size(); ++i) s += (i ? ", " : "") + std::to_string((*target)[i]);
    return s + "]";
  };
  return f;
}

Field& Section::add(const std::string& key, std::vector<double>* target, const std::string& doc) {
  Field& f = make_field(*this, key, "list of float", doc);
  f.read = [target, &f](const YAML::Node& n, const std::string& where, const std::string& path) {
    if (!n.IsSequence()) fail(where, path, "expected a list of numbers, found " + describe(n));
    std::vector<double> values;
    for (size_t i = 0; i < n.size(); ++i) {
      double v = 0;
      const std::string at = element_where(where, n[i]);
      if (!n[i].IsScalar() || !parse_double(n[i].Scalar(), &v)) {
        fail(at, path + "[" + std::to_string(i) + "]", "expected a number, found " + describe(n[i]));
      }
      check_number(f, v, at, path + "[" + std::to_string(i) + "]");
      values.push_back(v);
    }
    if (values.empty()) fail(where, path, "expected a non-empty list");
    *target = values;
  };
  f.show = [target] {
    std::string s = "[";
    for (size_t i = 0; i < target->size(); ++i) s += (i ? ", " : "") + format_double((*target)[i]);
    return s + "]";
  };
  return f;
}

Section& Section::section(const std::string& key, const std::string& section_doc) {
  TORCH_CHECK(!find_field(key) && !find_section(key), "config key declared twice: ", key);
  sections.push_back(std::make_unique<Section>(key, section_doc));
  return *sections.back();
}

Field* Section::find_field(const std::string& key) {
  for (auto& f : fields) {
    if (f->name == key) return f.get();
  }
  return nullptr;
}

Section* Section::find_section(const std::string& key) {
  for (auto& s : sections) {
    if (s->name == key) return s.get();
  }
  return nullptr;
}

std::vector<std::string> Section::keys() const {
  std::vector<std::string> out;
  for (const auto& f : fields) out.push_back(f->name);
  for (const auto& s : sections) out.push_back(s->name);
  return out;
}

// ------------------------------------------------------------------------------ declarations

std::unique_ptr<Section> declare_experiment(ExperimentConfig& c, bool typed_keys) {
  auto root = std::make_unique<Section>("", "The experiment.");
  Section& r = *root;
  r.add("name", &c.name, "run name; the run directory defaults to runs/<name>");
  r.add("task", &c.task, "what is trained: a registered task (nlpkit list)")
      .one_of(registry_names(task_registry()));
  r.add("output_dir", &c.output_dir, "run directory (checkpoints, logs); empty = runs/<name>");
  r.add("seed", &c.seed, "seed for every random number generator (init, dropout, shuffling)")
      .at_least(0);
  r.add("device", &c.device, "auto (CUDA when available), cpu, cuda or cuda:N");
  r.add("threads", &c.threads, "CPU threads for LibTorch; 0 = all cores").at_least(0);
  r.add("precision", &c.precision,
        "fp32; bf16 (autocast: CUDA, or CPU matmuls); fp16 (CUDA autocast + dynamic loss "
        "scaling); weights stay fp32")
      .one_of({"fp32", "bf16", "fp16"});
  r.add("cudnn_benchmark", &c.cudnn_benchmark,
        "CUDA: let cuDNN time its algorithms for each new input shape (fixed shapes run faster)");

  Section& m = r.section("model", "The model; the keys besides `type` depend on the type.");
  m.add("type", &c.model.type, "model architecture: a registered model type (nlpkit list)")
      .one_of(registry_names(model_registry()));
  for (const auto& entry : model_registry()) m.type_names.push_back(entry.name);
  m.declare_type = [&c](Section& section) {
    find_entry(model_registry(), c.model.type, "model type").declare(section, c.model);
  };
  if (typed_keys) m.declare_type(m);

  Section& t = r.section("tokenizer", "How text becomes tokens.");
  t.add("type", &c.tokenizer.type,
        "whitespace (words; CJK split into characters), char, wordpiece (BERT's subwords) or "
        "sentencepiece (DeBERTa-v3's)")
      .one_of(registry_names(tokenizer_registry()));
  t.add("lowercase", &c.tokenizer.lowercase,
        "lowercase the text first (wordpiece: and strip accents, as BERT uncased does; not "
        "sentencepiece: its spm.model normalizes, see nlpkit tokenizer train --lowercase)");
  t.add("split_punctuation", &c.tokenizer.split_punctuation,
        "whitespace tokenizer: punctuation marks become tokens of their own");
  t.add("vocab", &c.tokenizer.vocab,
        "wordpiece: vocab.txt, one token per line (nlpkit tokenizer train writes one); for "
        "model.type bert/deberta empty = the pretrained model's, or learned from data.train "
        "(data.max_vocab_size entries, 0 = 8000)");
  t.add("model", &c.tokenizer.model,
        "sentencepiece: spm.model (nlpkit tokenizer train --type sentencepiece writes one); for "
        "model.type bert/deberta empty = the pretrained model's, or a unigram model learned from "
        "data.train (data.max_vocab_size pieces, 0 = 8000)");

  Section& d = r.section("data", "Data files and batching.");
  d.add("train", &c.data.train, "training file (.tsv, .csv or .jsonl)");
  d.add("valid", &c.data.valid, "validation file; empty = no validation");
  d.add("test", &c.data.test, "test file, evaluated after training; empty = none");
  d.add("format", &c.data.format, "file format; auto = from the file extension")
      .one_of({"auto", "tsv", "csv", "jsonl"});
  d.add("text_field", &c.data.text_field, "column or JSON field holding the text");
  d.add("label_field", &c.data.label_field, "column or JSON field holding the label");
  d.add("on_error", &c.data.on_error, "a malformed line: error (stop, naming file:line) or skip")
      .one_of({"error", "skip"});
  d.add("train_examples", &c.data.train_examples,
        "classification: train on a stratified sample of this many training examples (seeded "
        "by data.train_subset_seed); 0 = all")
      .at_least(0);
  d.add("train_subset_seed", &c.data.train_subset_seed,
        "seed of the data.train_examples sample (kept apart from `seed`, so that runs with "
        "different seeds see the same examples)");
  d.add("bootstrap", &c.data.bootstrap,
        "classification: train on a bootstrap sample (n draws with replacement, seeded by "
        "`seed`) of the training examples; what `nlpkit train --bagging K` sets");
  d.add("batch_size", &c.data.batch_size, "training examples per batch").at_least(1);
  d.add("eval_batch_size", &c.data.eval_batch_size, "examples per evaluation batch").at_least(1);
  d.add("shuffle", &c.data.shuffle, "reshuffle the training set every epoch (seeded)");
  d.add("min_freq", &c.data.min_freq,
        "vocabulary: drop tokens seen fewer times (bert/deberta: least frequency of a learned "
        "WordPiece merge, at least 2)")
      .at_least(1);
  d.add("max_vocab_size", &c.data.max_vocab_size,
        "vocabulary: keep the most frequent; 0 = all (bert/deberta: size of the WordPiece "
        "vocabulary or SentencePiece model learned when tokenizer.vocab / tokenizer.model is "
        "empty; 0 = 8000)")
      .at_least(0);
  d.add("max_sentences", &c.data.max_sentences, "documents: keep the first N sentences")
      .at_least(1);
  d.add("max_sentence_length", &c.data.max_sentence_length, "sentences: keep the first N tokens")
      .at_least(1);
  d.add("pretrained_embeddings", &c.data.pretrained_embeddings,
        "word2vec text file with fixed vectors added to the trained embedding; empty = none");
  d.add("bptt", &c.data.bptt,
        "language_model: tokens per truncated-backpropagation window (state carried across)")
      .at_least(1);
  d.add("max_length", &c.data.max_length,
        "bert/deberta: tokens per sequence, [CLS] and [SEP] included (longer texts are truncated)")
      .at_least(8);
  d.add("mlm_probability", &c.data.mlm_probability,
        "masked_lm, replaced_token_detection: fraction of tokens to predict (80% [MASK], 10% "
        "random, 10% kept)")
      .greater_than(0)
      .at_most(1);
  d.add("whole_word_mask", &c.data.whole_word_mask,
        "masked_lm, replaced_token_detection: mask all the WordPiece pieces of a word together");
  d.add("next_sentence", &c.data.next_sentence,
        "masked_lm with bert: sentence pairs with next-sentence prediction (50% random second "
        "segments); DeBERTa has no next-sentence head");

  Section& o = r.section("optimizer", "The optimizer. Biases and norm weights get no decay.");
  o.add("type", &c.optimizer.type,
        "sgd, adam or adamw (adam/adamw: LibTorch's arithmetic in one pass over each parameter, "
        "fused_adam.h)")
      .one_of(registry_names(optimizer_registry()));
  o.add("lr", &c.optimizer.lr, "peak learning rate").greater_than(0);
  o.add("weight_decay", &c.optimizer.weight_decay, "L2 (adam, sgd) or decoupled (adamw) decay")
      .at_least(0);
  o.add("momentum", &c.optimizer.momentum, "sgd: momentum").at_least(0).at_most(1);
  o.add("nesterov", &c.optimizer.nesterov, "sgd: Nesterov momentum (needs momentum > 0)");
  o.add("beta1", &c.optimizer.beta1, "adam/adamw: first-moment decay").at_least(0).at_most(1);
  o.add("beta2", &c.optimizer.beta2, "adam/adamw: second-moment decay").at_least(0).at_most(1);
  o.add("eps", &c.optimizer.eps, "adam/adamw: denominator epsilon").greater_than(0);

  Section& s = r.section("scheduler", "Learning rate as a function of the optimizer step.");
  s.add("type", &c.scheduler.type, "constant, linear, cosine, inverse_sqrt or step")
      .one_of(registry_names(scheduler_registry()));
  s.add("warmup_steps", &c.scheduler.warmup_steps, "linear warmup from 0 over this many steps")
      .at_least(0);
  s.add("min_lr_ratio", &c.scheduler.min_lr_ratio, "linear/cosine: final lr as a fraction of lr")
      .at_least(0)
      .at_most(1);
  s.add("step_size", &c.scheduler.step_size, "step: multiply by gamma every step_size steps")
      .at_least(1);
  s.add("gamma", &c.scheduler.gamma, "step: decay factor").greater_than(0);

  Section& tr = r.section("trainer", "The training loop.");
  tr.add("epochs", &c.trainer.epochs, "passes over the training set (when max_steps is 0)")
      .at_least(1);
  tr.add("max_steps", &c.trainer.max_steps, "optimizer steps to run; 0 = use epochs").at_least(0);
  tr.add("grad_accum_steps", &c.trainer.grad_accum_steps, "batches accumulated per step")
      .at_least(1);
  tr.add("clip_grad_norm", &c.trainer.clip_grad_norm, "clip the global gradient norm; 0 = off")
      .at_least(0);
  tr.add("clip_grad_value", &c.trainer.clip_grad_value, "clip each gradient value; 0 = off")
      .at_least(0);
  tr.add("l1", &c.trainer.l1, "L1 penalty on weights (not biases/norms) added to the loss")
      .at_least(0);
  tr.add("l2", &c.trainer.l2, "L2 penalty on weights (not biases/norms) added to the loss")
      .at_least(0);
  tr.add("eval_every", &c.trainer.eval_every, "validate every N steps; 0 = off").at_least(0);
  tr.add("eval_each_epoch", &c.trainer.eval_each_epoch, "validate at the end of every epoch");
  tr.add("metric", &c.trainer.metric,
         "validation metric for keep_best and early stopping (accuracy, macro_f1, loss, ...)");
  tr.add("metric_mode", &c.trainer.metric_mode, "max: higher is better; min: lower is better")
      .one_of({"max", "min"});
  tr.add("patience", &c.trainer.patience,
         "early stopping: evaluations without improvement before stopping; 0 = off")
      .at_least(0);
  tr.add("min_delta", &c.trainer.min_delta, "early stopping: smallest change that counts")
      .at_least(0);
  tr.add("save_every", &c.trainer.save_every, "checkpoint every N steps; 0 = at the end only")
      .at_least(0);
  tr.add("keep_last", &c.trainer.keep_last, "keep the newest K checkpoints").at_least(1);
  tr.add("keep_best", &c.trainer.keep_best, "also keep the best checkpoint by trainer.metric");
  tr.add("resume", &c.trainer.resume,
         "none, auto (latest checkpoint of the run directory, if any) or a checkpoint directory");
  tr.add("max_nonfinite_steps", &c.trainer.max_nonfinite_steps,
         "stop after this many non-finite losses/gradients in a row (each is skipped)")
      .at_least(1);

  Section& lg = r.section("logging",
                          "What a run reports: the console, metrics.jsonl and TensorBoard events "
                          "in the run directory.");
  lg.add("every", &c.logging.every,
         "every N steps: a log line, a metrics.jsonl record and TensorBoard scalars")
      .at_least(1);
  lg.add("progress", &c.logging.progress,
         "auto (bar on a terminal, log lines otherwise), bar, line or none (silent)")
      .one_of({"auto", "bar", "line", "none"});
  lg.add("jsonl", &c.logging.jsonl,
         "write metrics.jsonl (read by `nlpkit plot` and `nlpkit runs list`)");
  lg.add("tensorboard", &c.logging.tensorboard,
         "write TensorBoard events (events.out.tfevents.*): scalars, the config as text");
  lg.add("histograms_every", &c.logging.histograms_every,
         "TensorBoard histograms of every weight and gradient every N steps; 0 = off")
      .at_least(0);

  Section& ds = r.section(
      "distributed",
      "Data-parallel training on c10d. Ranks come from the environment (torchrun, `nlpkit "
      "launch`, Slurm); a single process ignores this section.");
  ds.add("backend", &c.distributed.backend, "auto (nccl on CUDA, gloo on CPU), gloo or nccl")
      .one_of({"auto", "gloo", "nccl"});
  ds.add("bucket_mb", &c.distributed.bucket_mb,
         "gradients are all-reduced in buckets of this many MiB, overlapping backward")
      .greater_than(0);
  ds.add("timeout_s", &c.distributed.timeout_s,
         "a rendezvous or collective not done in this many seconds fails the run (dead rank)")
      .at_least(1);
  ds.add("master_addr", &c.distributed.master_addr,
         "Slurm: rendezvous host (rank 0's node) when MASTER_ADDR is not set");
  ds.add("master_port", &c.distributed.master_port,
         "Slurm: rendezvous port when MASTER_PORT is not set")
      .at_least(1)
      .at_most(65535);

  Section& g = r.section("generation", "Sampling text with `nlpkit predict` (language models).");
  g.add("max_tokens", &c.generation.max_tokens, "tokens generated after each prompt").at_least(1);
  g.add("temperature", &c.generation.temperature, "softmax temperature; lower = more greedy")
      .greater_than(0);
  g.add("top_k", &c.generation.top_k, "sample among the k most likely tokens; 0 = all").at_least(0);

  Section& reg = r.section(
      "regularization",
      "Training-step regularizers of task classification (both models); at most one is on.");
  Section& rd = reg.section(
      "rdrop", "R-Drop: two passes with independent dropout; their cross-entropies + alpha * KL.");
  rd.add("alpha", &c.regularization.rdrop.alpha, "weight of the symmetric KL; 0 = off").at_least(0);
  rd.add("variant", &c.regularization.rdrop.variant,
         "the reference weighting: readme (0.5 (CE1 + CE2)), fairseq (summed NLLs), bert "
         "(CE1 + CE2; the reference uses alpha 0.5)")
      .one_of({"readme", "fairseq", "bert"});
  Section& sf =
      reg.section("sift", "SiFT: an adversarial perturbation of the normalised embeddings.");
  sf.add("weight", &c.regularization.sift.weight, "weight of the adversarial loss; 0 = off")
      .at_least(0);
  sf.add("sigma", &c.regularization.sift.sigma,
         "std of the initial perturbation (clamped to 2 sigma)")
      .greater_than(0);
  sf.add("step_size", &c.regularization.sift.step_size,
         "ascent step on the perturbation, relative to its largest gradient per token")
      .greater_than(0);
  sf.add("layer_norm_eps", &c.regularization.sift.layer_norm_eps,
         "eps of the normalisation of the perturbed embeddings")
      .greater_than(0);
  Section& mx = reg.section("mixup", "Mixup of pairs inside a batch, labels mixed alike.");
  mx.add("alpha", &c.regularization.mixup.alpha, "lambda ~ Beta(alpha, alpha); 0 = off")
      .at_least(0);
  mx.add("level", &c.regularization.mixup.level,
         "what is mixed: embedding (word vectors) or sentence (the classifier's input)")
      .one_of({"embedding", "sentence"});

  Section& au =
      r.section("augmentation", "Data augmentation of the training split (task classification).");
  Section& eda = au.section("eda",
                            "EDA (Wei & Zou 2019): synonym replacement, random insertion, swap "
                            "and deletion.");
  eda.add("copies", &c.augmentation.eda.copies,
          "augmented copies added per training example; 0 = off")
      .at_least(0);
  eda.add("synonym_rate", &c.augmentation.eda.synonym_rate,
          "fraction of the words replaced by a synonym")
      .at_least(0)
      .at_most(1);
  eda.add("insertion_rate", &c.augmentation.eda.insertion_rate,
          "words inserted (synonyms of other words), as a fraction of the length")
      .at_least(0)
      .at_most(1);
  eda.add("swap_rate", &c.augmentation.eda.swap_rate, "word pairs swapped, as a fraction")
      .at_least(0)
      .at_most(1);
  eda.add("deletion_rate", &c.augmentation.eda.deletion_rate, "probability of deleting each word")
      .at_least(0)
      .at_most(1);
  eda.add("wordnet", &c.augmentation.eda.wordnet,
          "WordNet dict folder (index.* and data.* files; Debian package wordnet-base); empty = "
          "none");
  eda.add("synonyms", &c.augmentation.eda.synonyms,
          "a synonym table (TSV: a word, then its synonyms), any language; used with WordNet");
  eda.add("stopwords", &c.augmentation.eda.stopwords,
          "words never replaced or inserted: english (built in), none, or a file (one a line)");
  eda.add("keep_original", &c.augmentation.eda.keep_original,
          "keep each original example besides its copies");

  Section& sq = r.section("seq2seq", "Sequence-to-sequence (task seq2seq): TSV source<TAB>target.");
  sq.add("source_tokens", &c.seq2seq.source_tokens,
         "source tokens: char (one per character) or whitespace (space-separated)")
      .one_of({"char", "whitespace"});
  sq.add("target_tokens", &c.seq2seq.target_tokens,
         "target tokens: char or whitespace (CMUdict phonemes)")
      .one_of({"char", "whitespace"});
  sq.add("max_source_length", &c.seq2seq.max_source_length, "longest source, in tokens")
      .at_least(1);
  sq.add("max_target_length", &c.seq2seq.max_target_length,
         "longest target, in tokens (EOS not counted)")
      .at_least(1);
  sq.add("on_too_long", &c.seq2seq.on_too_long,
         "a longer sequence: truncate (counted, reported) or error (naming file:line)")
      .one_of({"truncate", "error"});
  sq.add("beam_size", &c.seq2seq.beam_size, "beam width of evaluation and predict; 1 = greedy")
      .at_least(1);
  sq.add("length_penalty", &c.seq2seq.length_penalty,
         "GNMT length penalty alpha ((5 + len) / 6)^alpha; 0 = none")
      .at_least(0);
  sq.add("max_decode_length", &c.seq2seq.max_decode_length,
         "most tokens generated (EOS included); 0 = max_target_length + 1")
      .at_least(0);
  sq.add("label_smoothing", &c.seq2seq.label_smoothing, "label smoothing of the training loss")
      .at_least(0)
      .at_most(0.99);
  sq.add("incremental", &c.seq2seq.incremental,
         "transformer: decode with the key/value cache (false = recompute the prefix)");
  sq.add("maxi_batch", &c.seq2seq.maxi_batch,
         "training batches of similar length: each pool of this many shuffled batches is sorted "
         "by length, then the batches are shuffled (as Marian's maxi-batch); 1 = off")
      .at_least(1);
  sq.add("score_strip", &c.seq2seq.score_strip,
         "characters removed from every output and reference token for the extra stripped_wer, "
         "stripped_per and stripped_sequence_accuracy (CMUdict: \"012\" scores without stress, "
         "as most published G2P results are); empty = none");
  Section& lin = r.section(
      "linear", "Task linear_baseline: logistic regression on classic features, cross-validated.");
  lin.add("features", &c.linear.features,
          "tfidf (TF = count/length, IDF = log(N/(df+1))), bow (counts) or binary")
      .one_of({"tfidf", "bow", "binary"});
  lin.add("ngram_max", &c.linear.ngram_max,
          "grid of n-gram ranges 1..n tried (data.min_freq and data.max_vocab_size limit terms)")
      .at_least(1);
  lin.add("l2", &c.linear.l2, "grid of L2 strengths tried (loss = mean CE + l2/2 ||W||^2)")
      .at_least(0);
  lin.add("folds", &c.linear.folds, "stratified cross-validation folds on data.train").at_least(2);
  lin.add("iterations", &c.linear.iterations, "L-BFGS iterations per fit").at_least(1);
  lin.add("metric", &c.linear.metric, "what the grid search maximises")
      .one_of({"accuracy", "macro_f1"});

  Section& f = r.section("frames", "Frame prediction (task frame_prediction, Moving MNIST).");
  f.add("input_frames", &c.frames.input_frames, "frames the model sees").at_least(1);
  f.add("future_frames", &c.frames.future_frames, "frames it predicts").at_least(1);
  f.add("patch_size", &c.frames.patch_size,
        "frames are cut into patch x patch blocks stacked as channels (Shi et al.: 64x64 -> "
        "16x16x16 with 4); 1 = none")
      .at_least(1);
  f.add("loss", &c.frames.loss, "bce (on logits) or mse (on sigmoid outputs)")
      .one_of({"bce", "mse"});
  f.add("train_sequences", &c.frames.train_sequences,
        "training sequences per epoch, generated afresh from the training digits")
      .at_least(1);
  f.add("valid_sequences", &c.frames.valid_sequences,
        "validation sequences (fixed, from the training digits); 0 = none")
      .at_least(0);
  f.add("test_sequences", &c.frames.test_sequences,
        "test sequences evaluated (the first N of the fixed test set); 0 = none")
      .at_least(0);
  f.add("predictions_dir", &c.frames.predictions_dir,
        "where `nlpkit predict` writes PNG strips (inputs | truth | prediction)");
  return root;
}

// ------------------------------------------------------------------------------ parsing

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = 3;
  for (const auto& c : candidates) {
    // Levenshtein distance, two rows.
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j) {
        size_t sub = prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_distance) {
      best_distance = prev[c.size()];
      best = c;
    }
  }
  if (best.empty()) {
    for (const auto& c : candidates) {
      if (word.size() >= 3 && c.rfind(word, 0) == 0) return c;
    }
  }
  return best;
}

namespace {

/// Keys that moved to another section: their error names the new place instead of a guess.
const std::map<std::string, std::string>& moved_keys() {
  static const std::map<std::string, std::string> moved = {
      {"trainer.log_every", "logging.every"}, {"trainer.progress", "logging.progress"}};
  return moved;
}

struct Reader {
  std::string file;
  std::set<std::string> overridden;  // key paths set on the command line

  std::string where(const YAML::Node& node, const std::string& path) const {
    for (const auto& o : overridden) {
      if (path == o || path.rfind(o + ".", 0) == 0 || path.rfind(o + "[", 0) == 0) {
        return "command line";
      }
    }
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  void read_section(Section& section, const YAML::Node& node, const std::string& prefix) const {
    if (!node.IsMap()) {
      fail(where(node, prefix), prefix.empty() ? "(top level)" : prefix,
           "expected a section of key: value lines, found " + describe(node));
    }
    // A typed section reads `type` first: it decides which other keys exist.
    if (section.declare_type) {
      if (const YAML::Node type = node["type"]) {
        Field* f = section.find_field("type");
        f->read(type, where(type, prefix + ".type"), prefix + ".type");
      }
      section.declare_type(section);  // the bound field now holds the chosen (or default) type
    }
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      const std::string path = prefix.empty() ? key : prefix + "." + key;
      const std::string at = where(kv.first, path);
      if (Section* sub = section.find_section(key)) {
        read_section(*sub, kv.second, path);
      } else if (Field* f = section.find_field(key)) {
        if (section.declare_type && key == "type") continue;
        if (kv.second.IsNull()) fail(at, path, "missing value");
        f->read(kv.second, where(kv.second, path), path);
      } else if (auto moved = moved_keys().find(path); moved != moved_keys().end()) {
        fail(at, path, "unknown key; it moved to '" + moved->second + "'");
      } else {
        std::string hint = did_you_mean(key, section.keys());
        fail(
            at, path,
            "unknown key" + (hint.empty() ? std::string() : "; did you mean " + quote(hint) + "?"));
      }
    }
  }
};

void apply_override(YAML::Node& root, const std::string& text, std::set<std::string>* overridden) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("command line: " + quote(text) + ": expected key.path=value");
  }
  const std::string path = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) throw ConfigError("command line: " + quote(text) + ": empty key in path");
    parts.push_back(part);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw ConfigError("command line: " + path + ": cannot parse value " + quote(value));
  }
  // yaml-cpp's `a = b` assigns into a's node; reset() rebinds the handle.
  YAML::Node node;
  node.reset(root);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = node[parts[i]];
    if (child && !child.IsMap() && !child.IsNull()) {
      throw ConfigError("command line: " + path + ": " + parts[i] + " is not a section");
    }
    if (!child || child.IsNull()) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    YAML::Node next = node[parts[i]];
    node.reset(next);
  }
  node[parts.back()] = parsed;
  overridden->insert(path);
}

/// The node of `a.b` (or of `a` when `a.b` is absent), for locating an error.
YAML::Node node_at(const YAML::Node& root, const std::string& a, const std::string& b) {
  const YAML::Node section = root[a];
  if (section && section.IsMap() && section[b]) return section[b];
  return section ? section : root;
}

/// Checks that span several keys: the training-step regularizers and the augmentation are
/// options of task classification, and one regularizer at a time changes the step.
void check_training_options(const ExperimentConfig& config, const YAML::Node& root,
                            const Reader& reader) {
  const std::vector<std::string> on = config.regularization.active();
  if (on.size() > 1) {
    const std::string path = "regularization." + on[1];
    fail(reader.where(node_at(root, "regularization", on[1]), path), path,
         "only one training-step regularizer at a time; " + on[0] + " is on too (set one of " +
             "their alpha/weight to 0)");
  }
  if (!on.empty() && config.task != "classification") {
    const std::string path = "regularization." + on[0];
    fail(reader.where(node_at(root, "regularization", on[0]), path), path,
         "is an option of task classification, not of task " + quote(config.task));
  }
  if (config.model.type == "deberta") {
    // DeBERTa's relative embeddings have 2 * position_buckets rows, within the longest distance.
    const DebertaOptions& o = config.model.encoder.deberta;
    const bool by_max_relative = o.max_relative_positions() >= 1;
    const int64_t limit =
        by_max_relative ? o.max_relative_positions() : o.max_position_embeddings();
    if (o.relative_attention() && o.position_buckets() > limit) {
      fail(reader.where(node_at(root, "model", "position_buckets"), "model.position_buckets"),
           "model.position_buckets",
           std::to_string(o.position_buckets()) + " must not exceed model." +
               (by_max_relative ? "max_relative_positions (" : "max_position_embeddings (") +
               std::to_string(limit) + ")");
    }
  }
  if (config.augmentation.eda.copies > 0 && config.task != "classification") {
    fail(reader.where(node_at(root, "augmentation", "eda"), "augmentation.eda"), "augmentation.eda",
         "is an option of task classification, not of task " + quote(config.task));
  }
}

ExperimentConfig parse_node(YAML::Node root, const std::string& source,
                            const std::vector<std::string>& overrides) {
  Reader reader{source, {}};
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) {
    throw ConfigError(reader.where(root, "") +
                      ": expected a YAML mapping (key: value lines) at the top level, found " +
                      describe(root));
  }
  for (const auto& o : overrides) apply_override(root, o, &reader.overridden);
  ExperimentConfig config;
  auto schema = declare_experiment(config);
  reader.read_section(*schema, root, "");
  check_training_options(config, root, reader);
  return config;
}

}  // namespace

ExperimentConfig parse_config(const std::string& yaml_text, const std::string& source,
                              const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg);
  }
  return parse_node(root, source, overrides);
}

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("config file not found: " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path, overrides);
}

// ------------------------------------------------------------------------------ output

namespace {

void dump_section(const Section& section, int indent, std::string* out) {
  const std::string pad(indent, ' ');
  for (const auto& f : section.fields) *out += pad + f->name + ": " + f->show() + "\n";
  for (const auto& s : section.sections) {
    *out += pad + s->name + ":\n";
    dump_section(*s, indent + 2, out);
  }
}

void markdown_fields(const Section& section, const std::string& prefix, size_t skip,
                     std::string* out) {
  *out += "| key | type | default | description |\n|---|---|---|---|\n";
  for (size_t i = skip; i < section.fields.size(); ++i) {
    const Field& f = *section.fields[i];
    std::string doc = f.doc;
    if (!f.choices.empty()) doc += " (one of: " + join(f.choices) + ")";
    *out += "| `" + prefix + f.name + "` | " + f.type + " | `" + f.show() + "` | " + doc + " |\n";
  }
}

}  // namespace

std::string dump_config(const ExperimentConfig& config) {
  ExperimentConfig copy = config;
  auto schema = declare_experiment(copy, /*typed_keys=*/true);
  std::string out;
  dump_section(*schema, 0, &out);
  return out;
}

std::string config_reference_markdown() {
  ExperimentConfig defaults;
  auto schema = declare_experiment(defaults);
  std::string out;
  out += "### Top level\n\n";
  markdown_fields(*schema, "", 0, &out);
  for (const auto& s : schema->sections) {
    out += "\n### `" + s->name + "`\n\n" + s->doc + "\n\n";
    if (!s->fields.empty()) markdown_fields(*s, s->name + ".", 0, &out);
    for (const auto& sub : s->sections) {
      const std::string name = s->name + "." + sub->name;
      // A section of subsections only has printed its doc and a blank line already.
      if (!s->fields.empty() || sub != s->sections.front()) out += "\n";
      out += "#### `" + name + "`\n\n" + sub->doc + "\n\n";
      markdown_fields(*sub, name + ".", 0, &out);
    }
    // A typed section (model): one table per type with that type's own keys.
    for (const auto& type : s->type_names) {
      ExperimentConfig c;
      c.model.type = type;
      auto typed = declare_experiment(c, /*typed_keys=*/true);
      out += "\n#### `" + s->name + ".type: " + type + "`\n\n" +
             find_entry(model_registry(), type, "model type").doc + "\n\n";
      markdown_fields(*typed->find_section(s->name), s->name + ".", s->fields.size(), &out);
    }
  }
  return out;
}

}  // namespace nlpkit
