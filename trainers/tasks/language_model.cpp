#include "trainers/tasks/language_model.h"

#include <cmath>
#include <filesystem>

#include "datasets/file_io.h"
#include "datasets/text_classification.h"
#include "datasets/tokenizers.h"
#include "datasets/vocab.h"
#include "modules/language_model.h"
#include "modules/word_embeddings.h"
#include "trainers/registry.h"

namespace nlpkit {
namespace {

const char* kEos = "<eos>";

ClassificationFileOptions file_options(const DataConfig& data) {
  ClassificationFileOptions o;
  o.format = data.format;
  o.text_field = data.text_field;
  o.label_field = data.label_field;
  o.on_error = data.on_error;
  return o;
}

class LanguageModelTask : public Task {
 public:
  LanguageModelTask(const ExperimentConfig& config, const std::string& artifacts_dir,
                    torch::Device device)
      : config_(config),
        device_(device),
        tokenizer_(find_entry(tokenizer_registry(), config.tokenizer.type, "tokenizer type")
                       .build(config.tokenizer)),
        generator_(at::detail::createCPUGenerator(static_cast<uint64_t>(config.seed))) {
    const std::string& type = config.model.type;
    if (type != "rnn" && type != "lstm" && type != "gru" && type != "nnlm") {
      throw ConfigError(
          "model.type: '" + type +
          "' is not a language model; task language_model takes rnn, lstm, gru or nnlm");
    }
    if (artifacts_dir.empty()) {
      if (config.data.train.empty()) throw ConfigError("data.train: no training file given");
      std::vector<std::vector<std::string>> docs;
      for (const auto& d : read_documents(config.data.train, file_options(config.data))) {
        docs.push_back(tokenizer_->tokenize(d));
      }
      VocabOptions vo;
      vo.min_freq = config.data.min_freq;
      vo.max_size = config.data.max_vocab_size;
      vo.specials = {"<pad>", "<unk>", kEos};
      vocab_ = Vocab::from_documents(docs, vo);
      streams_[Split::kTrain] = batchify(encode(docs), config.data.batch_size);
      for (Split s : {Split::kValid, Split::kTest}) {
        if (has_split(s)) stream(s);  // a bad file fails before the run writes anything
      }
    } else {
      vocab_ = Vocab::load(artifacts_dir + "/vocab.txt");
    }
    if (type == "nnlm") {
      const NNLMModelConfig& m = config.model.nnlm;
      nnlm_ = NNLM(NNLMOptions(vocab_.size())
                       .context_size(m.context_size)
                       .embedding_dim(m.embedding_dim)
                       .hidden_size(m.hidden_size)
                       .direct_connections(m.direct_connections)
                       .dropout(m.dropout)
                       .pad_id(vocab_.id(kEos)));  // the context before the corpus: a document end
      nnlm_->to(device_);
    } else {
      RecurrentLMOptions options = config.model.recurrent_lm;
      options.vocab_size(vocab_.size()).cell(type);
      model_ = RecurrentLanguageModel(options);
      model_->to(device_);
    }
  }

  std::shared_ptr<torch::nn::Module> model() override {
    if (nnlm_) return nnlm_.ptr();
    return model_.ptr();
  }

  int64_t batches_per_epoch() override {
    const int64_t length = stream(Split::kTrain).size(1);
    return std::max<int64_t>(1, (length - 1 + config_.data.bptt - 1) / config_.data.bptt);
  }

  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const torch::Tensor& data = stream(Split::kTrain);
    if (batch == 0) h_ = c_ = torch::Tensor();  // each epoch starts from a zero state
    auto [x, y] = window(data, batch);
    LMOutput out = forward(x, h_, c_);
    // Truncated BPTT: carry the state into the next window, but not its graph.
    h_ = out.h_n.detach();
    c_ = out.c_n.defined() ? out.c_n.detach() : torch::Tensor();
    StepOutput step;
    step.loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, vocab_.size()}),
                                                     y.reshape({-1}));
    step.examples = x.size(0);
    step.tokens = x.numel();
    return step;
  }

  bool has_split(Split s) const override { return !path(s).empty(); }

  Evaluation evaluate(Split s) override {
    const torch::Tensor& data = stream(s);
    torch::NoGradGuard no_grad;
    model()->eval();
    torch::Tensor h, c;
    double nll = 0;
    int64_t tokens = 0, correct = 0;
    const int64_t windows = (data.size(1) - 1 + config_.data.bptt - 1) / config_.data.bptt;
    for (int64_t i = 0; i < windows; ++i) {
      auto [x, y] = window(data, i);
      LMOutput out = forward(x, h, c);
      h = out.h_n;
      c = out.c_n;
      torch::Tensor logits = out.logits.reshape({-1, vocab_.size()});
      nll += torch::nn::functional::cross_entropy(
                 logits, y.reshape({-1}),
                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
      correct += logits.argmax(-1).eq(y.reshape({-1})).sum().item<int64_t>();
      tokens += y.numel();
    }
    const double loss = nll / std::max<int64_t>(tokens, 1);
    Evaluation e;
    e.metrics = {{"loss", loss},
                 {"perplexity", std::exp(loss)},
                 {"accuracy", double(correct) / std::max<int64_t>(tokens, 1)}};
    e.report = {{"loss", loss}, {"perplexity", std::exp(loss)}, {"accuracy", e.metrics["accuracy"]},
                {"tokens", tokens}};
    char table[256];
    std::snprintf(table, sizeof table,
                  "  tokens      %ld\n  loss        %.4f\n  perplexity  %.2f\n  accuracy    %.4f\n",
                  long(tokens), loss, std::exp(loss), e.metrics["accuracy"]);
    e.table = table;
    return e;
  }

  /// Continues each prompt with sampled tokens (generation.temperature, top_k, max_tokens).
  std::vector<std::string> predict(const std::vector<std::string>& prompts) override {
    torch::NoGradGuard no_grad;
    model()->eval();
    const GenerationConfig& g = config_.generation;
    const bool chars = config_.tokenizer.type == "char";
    const int64_t eos = vocab_.id(kEos);
    std::vector<std::string> out;
    for (const auto& prompt : prompts) {
      std::vector<int64_t> ids = vocab_.ids(tokenizer_->tokenize(prompt));
      if (ids.empty()) ids.push_back(eos);  // an empty prompt starts a new document
      torch::Tensor h, c;
      torch::Tensor input = torch::tensor(ids, torch::kInt64).unsqueeze(0).to(device_);
      std::string text = prompt;
      for (int64_t i = 0; i < g.max_tokens; ++i) {
        LMOutput o = forward(input, h, c);
        h = o.h_n;
        c = o.c_n;
        torch::Tensor logits = o.logits[0][-1].to(torch::kCPU, torch::kFloat) / g.temperature;
        if (g.top_k > 0 && g.top_k < logits.size(0)) {
          const double kth = std::get<0>(logits.topk(g.top_k)).min().item<double>();
          logits = logits.masked_fill(logits < kth, -INFINITY);
        }
        const int64_t next =
            torch::multinomial(torch::softmax(logits, -1), 1, false, generator_).item<int64_t>();
        if (next == eos) break;
        text += (chars ? "" : " ") + vocab_.token(next);
        input = torch::tensor({next}, torch::kInt64).unsqueeze(0).to(device_);
      }
      out.push_back(text);
    }
    return out;
  }

  std::string summary() const override {
    std::string out = "data:";
    for (const auto& [s, data] : streams_) {
      out += std::string(" ") + split_name(s) + " " + std::to_string(data.numel()) + " tokens";
    }
    return out + " | vocab " + std::to_string(vocab_.size());
  }

  NamedTensors state() const override {
    NamedTensors s;
    if (h_.defined()) s.emplace_back("h", h_);
    if (c_.defined()) s.emplace_back("c", c_);
    return s;
  }

  void load_state(const NamedTensors& state, const std::string& source) override {
    for (const auto& [name, t] : state) {
      if (name == "h") {
        h_ = t.to(device_);
      } else if (name == "c") {
        c_ = t.to(device_);
      } else {
        throw InputError(source + ": unexpected tensor '" + name + "' in a language-model state");
      }
    }
  }

  void save_artifacts(const std::string& dir) const override { vocab_.save(dir + "/vocab.txt"); }

 private:
  /// One window through either model family; NNLM's "state" is the last context_size words.
  LMOutput forward(const torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& c) {
    if (nnlm_) return nnlm_->forward(x, h);
    return model_->forward(x, h, c);
  }

  const std::string& path(Split s) const {
    return s == Split::kTrain ? config_.data.train
           : s == Split::kValid ? config_.data.valid
                                : config_.data.test;
  }

  std::vector<int64_t> encode(const std::vector<std::vector<std::string>>& docs) const {
    std::vector<int64_t> ids;
    const int64_t eos = vocab_.id(kEos);
    for (const auto& d : docs) {
      for (const auto& t : d) ids.push_back(vocab_.id(t));
      ids.push_back(eos);
    }
    return ids;
  }

  /// The token stream cut into `batch` parallel rows (B, N / B), dropping the remainder, as in
  /// PyTorch's word_language_model example.
  torch::Tensor batchify(const std::vector<int64_t>& ids, int64_t batch) const {
    const int64_t columns = static_cast<int64_t>(ids.size()) / batch;
    if (columns < 2) {
      throw InputError("corpus too small: " + std::to_string(ids.size()) + " tokens for " +
                       std::to_string(batch) + " rows (lower data.batch_size)");
    }
    return torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + columns * batch),
                         torch::kInt64)
        .view({batch, columns})
        .to(device_);
  }

  const torch::Tensor& stream(Split s) {
    auto it = streams_.find(s);
    if (it != streams_.end()) return it->second;
    if (path(s).empty()) throw ConfigError(std::string("data.") + split_name(s) + ": no file given");
    std::vector<std::vector<std::string>> docs;
    for (const auto& d : read_documents(path(s), file_options(config_.data))) docs.push_back(tokenizer_->tokenize(d));
    const int64_t rows = s == Split::kTrain ? config_.data.batch_size : config_.data.eval_batch_size;
    return streams_[s] = batchify(encode(docs), rows);
  }

  /// Window `i`: inputs data[:, i*bptt : i*bptt+n] and the same shifted by one as targets.
  std::pair<torch::Tensor, torch::Tensor> window(const torch::Tensor& data, int64_t i) const {
    const int64_t begin = i * config_.data.bptt;
    const int64_t n = std::min(config_.data.bptt, data.size(1) - 1 - begin);
    TORCH_CHECK(n > 0, "language_model: window ", i, " is past the end of the data");
    return {data.narrow(1, begin, n), data.narrow(1, begin + 1, n)};
  }

  ExperimentConfig config_;
  torch::Device device_;
  std::unique_ptr<Tokenizer> tokenizer_;
  at::Generator generator_;
  Vocab vocab_;
  RecurrentLanguageModel model_{nullptr};
  NNLM nnlm_{nullptr};
  std::map<Split, torch::Tensor> streams_;
  torch::Tensor h_, c_;  // the state carried from one training window to the next
};

}  // namespace

std::unique_ptr<Task> make_language_model_task(const ExperimentConfig& config,
                                               const std::string& artifacts_dir,
                                               torch::Device device) {
  return std::make_unique<LanguageModelTask>(config, artifacts_dir, device);
}

}  // namespace nlpkit
