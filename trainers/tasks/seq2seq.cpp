#include "trainers/tasks/seq2seq.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "datasets/batching.h"
#include "datasets/parallel_text.h"
#include "datasets/png.h"
#include "datasets/vocab.h"
#include "modules/search.h"
#include "modules/seq2seq.h"
#include "modules/transformer.h"
#include "trainers/metrics.h"
#include "trainers/plot.h"

namespace nlpkit {
namespace {

const char* kBos = "<bos>";
const char* kEos = "<eos>";

/// One (source, target) pair as ids.
struct Pair {
  std::vector<int64_t> source;
  std::vector<int64_t> target;
};

/// A distinct source and all its references, for decoding.
struct Example {
  std::string source_text;
  std::vector<int64_t> source;
  std::vector<TokenSequence> references;
};

struct SplitData {
  std::vector<Pair> pairs;
  std::vector<Example> examples;
  int64_t skipped = 0;
  int64_t truncated = 0;
  int64_t oov_targets = 0;
};

struct Batch {
  torch::Tensor src;      // (B, S)
  torch::Tensor lengths;  // (B) on the CPU
  torch::Tensor mask;     // (B, S) bool
  torch::Tensor tgt_in;   // (B, T+1): BOS, target, padding
  torch::Tensor tgt_out;  // (B, T+1): target, EOS, padding
};

class Seq2SeqTask : public Task {
 public:
  Seq2SeqTask(const ExperimentConfig& config, const std::string& artifacts_dir,
              torch::Device device)
      : config_(config), device_(device) {
    const std::string& type = config.model.type;
    if (type != "seq2seq_attention" && type != "transformer") {
      throw ConfigError("model.type: '" + type +
                        "' is not a sequence-to-sequence model; task seq2seq takes "
                        "seq2seq_attention or transformer");
    }
    const Seq2SeqConfig& s = config.seq2seq;
    if (type == "transformer") {
      const int64_t needed = std::max(s.max_source_length, decode_length());
      if (config.model.transformer.max_length() < needed) {
        throw ConfigError(
            "model.max_length: " + std::to_string(config.model.transformer.max_length()) +
            " positions, but seq2seq.max_source_length and the decoding length "
            "need " +
            std::to_string(needed));
      }
    }
    if (artifacts_dir.empty()) {
      if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
      const ParallelFile file = read_parallel_tsv(config.data.train, config.data.on_error);
      std::vector<std::vector<std::string>> sources, targets;
      for (const auto& p : file.pairs) {
        sources.push_back(split_tokens(p.source, s.source_tokens));
        targets.push_back(split_tokens(p.target, s.target_tokens));
      }
      VocabOptions vo;
      vo.min_freq = config.data.min_freq;
      vo.max_size = config.data.max_vocab_size;
      source_vocab_ = Vocab::from_documents(sources, vo);
      vo.specials = {"<pad>", "<unk>", kBos, kEos};
      vo.max_size = 0;  // every training target token stays predictable
      vo.min_freq = 1;
      target_vocab_ = Vocab::from_documents(targets, vo);
      splits_[Split::kTrain] = encode_file(file, config.data.train);
      for (Split split : {Split::kValid, Split::kTest}) {
        if (has_split(split)) data(split);  // a bad file fails before the run writes anything
      }
    } else {
      source_vocab_ = Vocab::load(artifacts_dir + "/source_vocab.txt");
      target_vocab_ = Vocab::load(artifacts_dir + "/target_vocab.txt");
    }
    bos_ = target_vocab_.id(kBos);
    eos_ = target_vocab_.id(kEos);
    if (type == "seq2seq_attention") {
      Seq2SeqOptions o = config.model.seq2seq_attention;
      o.src_vocab_size(source_vocab_.size())
          .tgt_vocab_size(target_vocab_.size())
          .pad_id(source_vocab_.pad_id());
      seq2seq_ = Seq2Seq(o);
      model_ = seq2seq_.ptr();
    } else {
      TransformerOptions o = config.model.transformer;
      o.src_vocab_size(source_vocab_.size())
          .tgt_vocab_size(target_vocab_.size())
          .pad_id(source_vocab_.pad_id());
      if (o.tie_embeddings() == "all" && source_vocab_.tokens() != target_vocab_.tokens()) {
        throw ConfigError(
            "model.tie_embeddings: 'all' needs the same source and target vocabulary; use "
            "'decoder' when source and target tokens differ (e.g. letters -> phonemes)");
      }
      transformer_ = Transformer(o);
      model_ = transformer_.ptr();
    }
    model_->to(device_);
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_; }

  int64_t batches_per_epoch() override {
    const auto n = static_cast<int64_t>(data(Split::kTrain).pairs.size());
    return (n + config_.data.batch_size - 1) / config_.data.batch_size;
  }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const SplitData& train = data(Split::kTrain);
    if (epoch != batches_epoch_) {
      std::vector<std::pair<int64_t, int64_t>> lengths;
      for (const Pair& p : train.pairs) {
        lengths.push_back(
            {static_cast<int64_t>(p.source.size()), static_cast<int64_t>(p.target.size())});
      }
      batches_ = length_grouped_batches(
          lengths, config_.data.batch_size, config_.seq2seq.maxi_batch, config_.data.shuffle,
          static_cast<uint64_t>(config_.seed) * 1000003ULL + static_cast<uint64_t>(epoch));
      batches_epoch_ = epoch;
    }
    std::vector<const Pair*> pairs;
    for (int64_t i : batches_[batch]) pairs.push_back(&train.pairs[i]);
    model_->train();
    const Batch b = collate(pairs);
    const torch::Tensor logits = run(b).logits;
    StepOutput out;
    out.loss = loss(logits, b.tgt_out, config_.seq2seq.label_smoothing);
    out.examples = static_cast<int64_t>(pairs.size());
    out.tokens = b.tgt_out.ne(0).sum().item<int64_t>();
    return out;
  }

  bool has_split(Split s) const override { return !path(s).empty(); }

  Evaluation evaluate(Split split) override {
    const SplitData& d = data(split);
    torch::NoGradGuard no_grad;
    model_->eval();
    // Teacher-forced loss and next-token accuracy over every pair.
    double nll = 0;
    int64_t tokens = 0, correct = 0;
    for (size_t begin = 0; begin < d.pairs.size(); begin += config_.data.eval_batch_size) {
      std::vector<const Pair*> pairs;
      for (size_t i = begin; i < std::min(d.pairs.size(), begin + config_.data.eval_batch_size);
           ++i) {
        pairs.push_back(&d.pairs[i]);
      }
      const Batch b = collate(pairs);
      const torch::Tensor logits = run(b).logits.to(torch::kFloat);
      const torch::Tensor real = b.tgt_out.ne(0);
      nll += torch::nn::functional::cross_entropy(
                 logits.reshape({-1, logits.size(-1)}), b.tgt_out.reshape(-1),
                 torch::nn::functional::CrossEntropyFuncOptions().ignore_index(0).reduction(
                     torch::kSum))
                 .item<double>();
      correct += (logits.argmax(-1).eq(b.tgt_out) & real).sum().item<int64_t>();
      tokens += real.sum().item<int64_t>();
    }
    // Decoding metrics over the distinct sources.
    std::vector<TokenSequence> hypotheses;
    std::vector<std::vector<TokenSequence>> references;
    for (size_t begin = 0; begin < d.examples.size(); begin += config_.data.eval_batch_size) {
      std::vector<const Example*> batch;
      for (size_t i = begin; i < std::min(d.examples.size(), begin + config_.data.eval_batch_size);
           ++i) {
        batch.push_back(&d.examples[i]);
      }
      for (const Hypothesis& h : decode(batch)) hypotheses.push_back(target_tokens(h.tokens));
      for (const Example* e : batch) references.push_back(e->references);
    }
    const SequenceMetrics m = sequence_metrics(hypotheses, references);
    const double mean_loss = nll / std::max<int64_t>(tokens, 1);
    const double token_accuracy = double(correct) / std::max<int64_t>(tokens, 1);
    Evaluation e;
    e.metrics = {{"loss", mean_loss},
                 {"token_accuracy", token_accuracy},
                 {"sequence_accuracy", m.sequence_accuracy},
                 {"wer", m.wer},
                 {"per", m.per},
                 {"bleu", m.bleu}};
    e.report = {{"loss", mean_loss},
                {"token_accuracy", token_accuracy},
                {"sequence_accuracy", m.sequence_accuracy},
                {"wer", m.wer},
                {"per", m.per},
                {"bleu", m.bleu},
                {"examples", m.examples},
                {"pairs", d.pairs.size()},
                {"target_tokens", tokens},
                {"beam_size", config_.seq2seq.beam_size},
                {"skipped_lines", d.skipped},
                {"truncated_sequences", d.truncated},
                {"oov_target_tokens", d.oov_targets}};
    char table[512];
    std::snprintf(
        table, sizeof table,
        "  examples           %ld (%zu pairs)\n  loss               %.4f\n"
        "  token_accuracy     %.4f\n  sequence_accuracy  %.4f\n  wer                %.4f\n"
        "  per                %.4f\n  bleu               %.4f\n",
        long(m.examples), d.pairs.size(), mean_loss, token_accuracy, m.sequence_accuracy, m.wer,
        m.per, m.bleu);
    e.table = table;
    if (!config_.seq2seq.score_strip.empty()) {
      // The same outputs and references without the score_strip characters (CMUdict: stress).
      const std::string& chars = config_.seq2seq.score_strip;
      const auto strip = [&](const TokenSequence& tokens) {
        TokenSequence out;
        for (std::string t : tokens) {
          t.erase(std::remove_if(t.begin(), t.end(),
                                 [&](char c) { return chars.find(c) != std::string::npos; }),
                  t.end());
          if (!t.empty()) out.push_back(std::move(t));
        }
        return out;
      };
      std::vector<TokenSequence> stripped_hypotheses;
      std::vector<std::vector<TokenSequence>> stripped_references;
      for (const TokenSequence& h : hypotheses) stripped_hypotheses.push_back(strip(h));
      for (const auto& refs : references) {
        stripped_references.emplace_back();
        for (const TokenSequence& r : refs) stripped_references.back().push_back(strip(r));
      }
      const SequenceMetrics s = sequence_metrics(stripped_hypotheses, stripped_references);
      for (const auto& [name, value] :
           {std::pair<std::string, double>{"stripped_sequence_accuracy", s.sequence_accuracy},
            {"stripped_wer", s.wer},
            {"stripped_per", s.per}}) {
        e.metrics[name] = value;
        e.report[name] = value;
      }
      std::snprintf(table, sizeof table,
                    "  without '%s':\n  stripped_seq_acc   %.4f\n  stripped_wer       %.4f\n"
                    "  stripped_per       %.4f\n",
                    chars.c_str(), s.sequence_accuracy, s.wer, s.per);
      e.table += table;
    }
    if (d.truncated > 0 || d.oov_targets > 0 || d.skipped > 0) {
      e.table += "  (" + std::to_string(d.skipped) + " lines skipped, " +
                 std::to_string(d.truncated) + " sequences truncated, " +
                 std::to_string(d.oov_targets) + " target tokens outside the vocabulary)\n";
    }
    return e;
  }

  /// The best hypothesis of each input line (a source; text after a tab is ignored).
  std::vector<std::string> predict(const std::vector<std::string>& inputs) override {
    std::vector<std::string> out;
    for (const Hypothesis& h : decode_inputs(inputs)) {
      out.push_back(join_tokens(target_tokens(h.tokens), config_.seq2seq.target_tokens));
    }
    return out;
  }

  /// One heatmap per input: output tokens (EOS included) x source tokens.
  std::vector<std::string> explain(const std::vector<std::string>& inputs,
                                   const std::string& out_dir) override {
    const std::vector<Hypothesis> best = decode_inputs(inputs);
    std::filesystem::create_directories(out_dir);
    std::vector<std::string> written;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Hypothesis& h = best[i];
      TORCH_CHECK(h.attention.defined(), "seq2seq: the model returned no attention weights");
      HeatmapOptions options;
      options.column_labels = source_tokens(inputs[i]);
      options.row_labels = target_tokens(h.tokens);
      const int64_t steps = h.attention.size(0);
      while (static_cast<int64_t>(options.row_labels.size()) < steps) {
        options.row_labels.push_back(kEos);
      }
      const std::string output =
          join_tokens(target_tokens(h.tokens), config_.seq2seq.target_tokens);
      options.title =
          "input " + std::to_string(i + 1) + ": " + input_source(inputs[i]) + " -> " + output;
      options.vmin = 0;
      options.vmax = 1;
      char name[32];
      std::snprintf(name, sizeof name, "seq_%04zu.png", i + 1);
      const std::string path = (std::filesystem::path(out_dir) / name).string();
      // The source as the model read it: cut to max_source_length, without batch padding.
      const auto columns = std::min<int64_t>(options.column_labels.size(), h.attention.size(1));
      options.column_labels.resize(static_cast<size_t>(columns));
      const torch::Tensor weights = h.attention.slice(1, 0, columns);
      write_png(path, render_heatmap(weights, options));  // (T, S)
      written.push_back(path);
    }
    return written;
  }

  std::string summary() const override {
    std::string out = "data:";
    int64_t skipped = 0, truncated = 0, oov = 0;
    for (const auto& [s, d] : splits_) {
      out += std::string(" ") + split_name(s) + " " + std::to_string(d.examples.size()) +
             " sources (" + std::to_string(d.pairs.size()) + " pairs)";
      skipped += d.skipped;
      truncated += d.truncated;
      oov += d.oov_targets;
    }
    out += " | vocab source " + std::to_string(source_vocab_.size()) + ", target " +
           std::to_string(target_vocab_.size());
    if (skipped > 0) out += " | " + std::to_string(skipped) + " malformed lines skipped";
    if (truncated > 0) {
      out += " | " + std::to_string(truncated) + " sequences truncated (seq2seq.max_*_length)";
    }
    if (oov > 0) {
      out += " | " + std::to_string(oov) + " valid/test target tokens not in the vocabulary";
    }
    return out;
  }

  void save_artifacts(const std::string& dir) const override {
    source_vocab_.save(dir + "/source_vocab.txt");
    target_vocab_.save(dir + "/target_vocab.txt");
  }

 private:
  const std::string& path(Split s) const {
    return s == Split::kTrain   ? config_.data.train
           : s == Split::kValid ? config_.data.valid
                                : config_.data.test;
  }

  int64_t decode_length() const {
    return config_.seq2seq.max_decode_length > 0 ? config_.seq2seq.max_decode_length
                                                 : config_.seq2seq.max_target_length + 1;
  }

  const SplitData& data(Split s) {
    auto it = splits_.find(s);
    if (it != splits_.end()) return it->second;
    if (path(s).empty())
      throw ConfigError(std::string("data.") + split_name(s) + ": no file given");
    return splits_[s] = encode_file(read_parallel_tsv(path(s), config_.data.on_error), path(s));
  }

  /// Cuts `tokens` to `limit`, or throws, by seq2seq.on_too_long; returns whether it cut.
  bool fit(std::vector<std::string>& tokens, int64_t limit, const char* side, const char* key,
           const std::string& where) const {
    if (static_cast<int64_t>(tokens.size()) <= limit) return false;
    if (config_.seq2seq.on_too_long == "error") {
      throw InputError(where + ": " + side + " has " + std::to_string(tokens.size()) +
                       " tokens, more than seq2seq." + key + " " + std::to_string(limit) +
                       " (seq2seq.on_too_long: truncate cuts such sequences and counts them)");
    }
    tokens.resize(static_cast<size_t>(limit));
    return true;
  }

  SplitData encode_file(const ParallelFile& file, const std::string& file_path) const {
    const Seq2SeqConfig& s = config_.seq2seq;
    SplitData out;
    out.skipped = file.skipped;
    std::map<std::string, size_t> example_of;  // source text -> index in out.examples
    for (const ParallelPair& p : file.pairs) {
      const std::string where = file_path + ":" + std::to_string(p.line);
      std::vector<std::string> src = split_tokens(p.source, s.source_tokens);
      std::vector<std::string> tgt = split_tokens(p.target, s.target_tokens);
      out.truncated += fit(src, s.max_source_length, "source", "max_source_length", where);
      out.truncated += fit(tgt, s.max_target_length, "target", "max_target_length", where);
      Pair pair{source_vocab_.ids(src), {}};
      for (const auto& token : tgt) {
        if (!target_vocab_.contains(token)) ++out.oov_targets;
        pair.target.push_back(target_vocab_.id(token));
      }
      auto [it, inserted] = example_of.emplace(p.source, out.examples.size());
      if (inserted) out.examples.push_back({p.source, pair.source, {}});
      out.examples[it->second].references.push_back(tgt);
      out.pairs.push_back(std::move(pair));
    }
    return out;
  }

  Batch collate(const std::vector<const Pair*>& pairs) const {
    const auto n = static_cast<int64_t>(pairs.size());
    int64_t s_max = 1, t_max = 0;
    for (const Pair* p : pairs) {
      s_max = std::max<int64_t>(s_max, p->source.size());
      t_max = std::max<int64_t>(t_max, p->target.size());
    }
    Batch b;
    b.src = torch::zeros({n, s_max}, torch::kLong);
    b.lengths = torch::zeros({n}, torch::kLong);
    b.tgt_in = torch::zeros({n, t_max + 1}, torch::kLong);
    b.tgt_out = torch::zeros({n, t_max + 1}, torch::kLong);
    auto src = b.src.accessor<int64_t, 2>();
    auto tin = b.tgt_in.accessor<int64_t, 2>();
    auto tout = b.tgt_out.accessor<int64_t, 2>();
    auto lengths = b.lengths.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) {
      const Pair& p = *pairs[i];
      // An empty source (all of it cut, or whitespace for char tokens) reads one <unk>.
      const int64_t len = std::max<int64_t>(1, p.source.size());
      for (int64_t j = 0; j < len; ++j) {
        src[i][j] = p.source.empty() ? source_vocab_.unk_id() : p.source[j];
      }
      lengths[i] = len;
      tin[i][0] = bos_;
      for (size_t j = 0; j < p.target.size(); ++j) {
        tin[i][j + 1] = p.target[j];
        tout[i][j] = p.target[j];
      }
      tout[i][p.target.size()] = eos_;
    }
    b.mask = lengths_to_mask(b.lengths, s_max).to(device_);
    b.src = b.src.to(device_);
    b.tgt_in = b.tgt_in.to(device_);
    b.tgt_out = b.tgt_out.to(device_);
    return b;
  }

  struct Forward {
    torch::Tensor logits;
    torch::Tensor attention;
  };

  Forward run(const Batch& b) {
    if (seq2seq_) {
      Seq2SeqOutput out = seq2seq_(b.src, b.lengths, b.tgt_in);
      return {out.logits, out.attention};
    }
    TransformerOutput out = transformer_(b.src, b.mask, b.tgt_in);
    return {out.logits, out.attention};
  }

  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& target,
                     double smoothing) const {
    return torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}).to(torch::kFloat), target.reshape(-1),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(0).label_smoothing(
            smoothing));
  }

  /// Beam (or greedy, beam_size 1) search over a batch of examples: the best hypothesis each.
  std::vector<Hypothesis> decode(const std::vector<const Example*>& batch) {
    torch::NoGradGuard no_grad;
    model_->eval();
    std::vector<Pair> pairs;
    for (const Example* e : batch) pairs.push_back({e->source, {}});
    std::vector<const Pair*> pointers;
    for (const Pair& p : pairs) pointers.push_back(&p);
    const Batch b = collate(pointers);
    std::unique_ptr<StepDecoder> decoder =
        seq2seq_ ? seq2seq_->step_decoder(b.src, b.lengths)
                 : transformer_->step_decoder(b.src, b.mask, config_.seq2seq.incremental);
    const SearchOptions options = SearchOptions(bos_, eos_)
                                      .beam_size(config_.seq2seq.beam_size)
                                      .max_length(decode_length())
                                      .length_penalty(config_.seq2seq.length_penalty);
    const auto n = static_cast<int64_t>(batch.size());
    if (options.beam_size() == 1) return greedy_search(*decoder, n, options);
    std::vector<Hypothesis> best;
    for (auto& list : beam_search(*decoder, n, options)) {
      best.push_back(list.empty() ? Hypothesis() : list.front());
    }
    return best;
  }

  static std::string input_source(const std::string& line) {
    return line.substr(0, line.find('\t'));
  }

  std::vector<std::string> source_tokens(const std::string& line) const {
    return split_tokens(input_source(line), config_.seq2seq.source_tokens);
  }

  std::vector<Hypothesis> decode_inputs(const std::vector<std::string>& inputs) {
    std::vector<Example> examples;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<std::string> tokens = source_tokens(inputs[i]);
      if (tokens.empty()) {
        throw InputError("predict: input line " + std::to_string(i + 1) + " has an empty source");
      }
      fit(tokens, config_.seq2seq.max_source_length, "source", "max_source_length",
          "predict: input line " + std::to_string(i + 1));
      examples.push_back({inputs[i], source_vocab_.ids(tokens), {}});
    }
    std::vector<Hypothesis> out;
    for (size_t begin = 0; begin < examples.size(); begin += config_.data.eval_batch_size) {
      std::vector<const Example*> batch;
      for (size_t i = begin; i < std::min(examples.size(), begin + config_.data.eval_batch_size);
           ++i) {
        batch.push_back(&examples[i]);
      }
      for (Hypothesis& h : decode(batch)) out.push_back(std::move(h));
    }
    return out;
  }

  TokenSequence target_tokens(const std::vector<int64_t>& ids) const {
    TokenSequence out;
    for (int64_t id : ids) out.push_back(target_vocab_.token(id));
    return out;
  }

  ExperimentConfig config_;
  torch::Device device_;
  Vocab source_vocab_;
  Vocab target_vocab_;
  int64_t bos_ = 2;
  int64_t eos_ = 3;
  Seq2Seq seq2seq_{nullptr};
  Transformer transformer_{nullptr};
  std::shared_ptr<torch::nn::Module> model_;
  std::map<Split, SplitData> splits_;
  std::vector<std::vector<int64_t>> batches_;  // the epoch's batches of training pairs
  int64_t batches_epoch_ = -1;
};

}  // namespace

std::unique_ptr<Task> make_seq2seq_task(const ExperimentConfig& config,
                                        const std::string& artifacts_dir, torch::Device device) {
  return std::make_unique<Seq2SeqTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
