#include "trainers/tasks/word2vec.h"

#include <algorithm>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include "datasets/file_io.h"
#include "datasets/text_classification.h"
#include "datasets/tokenizers.h"
#include "datasets/word_vectors.h"
#include "trainers/logging.h"
#include "trainers/registry.h"

namespace nlpkit {

Word2VecData build_word2vec_data(const std::vector<std::string>& documents,
                                 const Tokenizer& tokenizer, int64_t min_count, int64_t max_size,
                                 const std::string& source) {
  std::vector<std::vector<std::string>> tokens;
  tokens.reserve(documents.size());
  std::unordered_map<std::string, int64_t> counts;
  int64_t total = 0;
  for (const auto& doc : documents) {
    tokens.push_back(tokenizer.tokenize(doc));
    for (const auto& t : tokens.back()) ++counts[t];
    total += static_cast<int64_t>(tokens.back().size());
  }
  if (total == 0) throw InputError("word2vec: " + source + " holds no words (empty corpus)");
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (sorted.front().second < min_count) {
    throw InputError("word2vec: data.min_freq " + std::to_string(min_count) +
                     " removes every word of " + source + " (the most frequent, '" +
                     sorted.front().first + "', occurs " + std::to_string(sorted.front().second) +
                     " times; lower data.min_freq)");
  }
  Word2VecData data;
  std::unordered_map<std::string, int32_t> id;
  for (const auto& [word, count] : sorted) {
    if (count < min_count) break;
    if (max_size > 0 && static_cast<int64_t>(data.words.size()) >= max_size) break;
    id.emplace(word, static_cast<int32_t>(data.words.size()));
    data.words.push_back(word);
    data.counts.push_back(count);
  }
  std::vector<int32_t> sentence;
  for (const auto& doc : tokens) {
    sentence.clear();
    for (const auto& t : doc) {
      auto it = id.find(t);
      if (it != id.end()) sentence.push_back(it->second);  // rare words are dropped, not <unk>
    }
    if (!sentence.empty()) data.corpus.add(sentence);
  }
  // Subsampling and the noise table use the counts of the words actually in the corpus.
  return data;
}

namespace {

class Word2VecTask : public Task {
 public:
  Word2VecTask(const ExperimentConfig& config, const std::string& artifacts_dir) : config_(config) {
    if (config.model.type != "word2vec") {
      throw ConfigError("model.type: task word2vec takes model.type word2vec, not '" +
                        config.model.type + "'");
    }
    if (!artifacts_dir.empty()) {
      throw InputError(
          "task word2vec writes word vectors, not checkpoints: query them with `nlpkit "
          "embeddings neighbors RUN/vectors.txt WORD`");
    }
    if (config.data.train.empty()) throw ConfigError("data.train: no corpus file given");
    const auto tokenizer = find_entry(tokenizer_registry(), config.tokenizer.type, "tokenizer type")
                               .build(config.tokenizer);
    ClassificationFileOptions o;
    o.format = config.data.format;
    o.text_field = config.data.text_field;
    o.label_field = config.data.label_field;
    o.on_error = config.data.on_error;
    data_ =
        build_word2vec_data(read_documents(config.data.train, o), *tokenizer, config.data.min_freq,
                            config.data.max_vocab_size, config.data.train);
    const Word2VecModelConfig& m = config.model.word2vec;
    model_ = Word2Vec(Word2VecOptions(static_cast<int64_t>(data_.words.size()), m.embedding_dim)
                          .architecture(m.architecture)
                          .loss(m.loss)
                          .negative(m.negative)
                          .window(m.window));
  }

  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }
  int64_t batches_per_epoch() override { return 0; }
  StepOutput train_step(int64_t, int64_t) override {
    throw std::logic_error("task word2vec trains in train_standalone(), not by steps");
  }
  bool has_split(Split) const override { return false; }
  Evaluation evaluate(Split) override {
    throw InputError(
        "task word2vec has nothing to evaluate; query the vectors with `nlpkit "
        "embeddings neighbors|analogy`");
  }
  std::vector<std::string> predict(const std::vector<std::string>&) override {
    throw InputError("task word2vec: use `nlpkit embeddings neighbors RUN/vectors.txt WORD`");
  }

  std::string summary() const override {
    return "data: " + std::to_string(data_.corpus.sentences()) + " sentences, " +
           std::to_string(data_.corpus.ids.size()) + " words | vocab " +
           std::to_string(data_.words.size()) + " (min_freq " +
           std::to_string(config_.data.min_freq) + ")";
  }

  void save_artifacts(const std::string& dir) const override {
    std::string vocab;
    for (size_t i = 0; i < data_.words.size(); ++i) {
      vocab += data_.words[i] + " " + std::to_string(data_.counts[i]) + "\n";
    }
    write_file_atomic(dir + "/vocab.txt", vocab);  // word2vec.c's -save-vocab format
  }

  bool train_standalone() override {
    const std::string run_dir = config_.run_dir();
    std::filesystem::create_directories(run_dir);
    const int64_t threads = config_.threads > 0
                                ? config_.threads
                                : std::max<int64_t>(1, std::thread::hardware_concurrency());
    ProgressReporter reporter(config_.logging.progress == "bar" ? "line"
                                                                : config_.logging.progress);
    auto show = [&](const Word2VecProgress& p) {
      char line[200];
      std::snprintf(line, sizeof line,
                    "words %lld/%lld (%.1f%%) | lr %.2e | %.0f words/s | %.0f words/s/thread | "
                    "%.1f s",
                    static_cast<long long>(p.words_done), static_cast<long long>(p.words_total),
                    100.0 * p.words_done / std::max<int64_t>(p.words_total, 1), p.lr,
                    p.words_per_second, p.words_per_second_per_thread, p.seconds);
      reporter.message(line);
    };
    const Word2VecModelConfig& m = config_.model.word2vec;
    const Word2VecProgress done = train_word2vec(model_, data_.corpus, data_.counts,
                                                 Word2VecTrainOptions()
                                                     .lr(config_.optimizer.lr)
                                                     .epochs(config_.trainer.epochs)
                                                     .threads(threads)
                                                     .sample(m.sample)
                                                     .seed(static_cast<uint64_t>(config_.seed) + 1),
                                                 show);
    const torch::Tensor vectors = model_->input_embeddings.detach();
    std::vector<std::string> written;
    if (m.output_format != "binary") {
      save_word_vectors(run_dir + "/vectors.txt", data_.words, vectors, "text");
      written.push_back(run_dir + "/vectors.txt");
    }
    if (m.output_format != "text") {
      save_word_vectors(run_dir + "/vectors.bin", data_.words, vectors, "binary");
      written.push_back(run_dir + "/vectors.bin");
    }
    save_artifacts(run_dir);
    write_file_atomic(run_dir + "/config.yaml", dump_config(config_));
    nlohmann::json summary = {{"words", done.words_done},
                              {"seconds", done.seconds},
                              {"words_per_second", done.words_per_second},
                              {"words_per_second_per_thread", done.words_per_second_per_thread},
                              {"threads", threads},
                              {"vocab_size", data_.words.size()}};
    write_file_atomic(run_dir + "/train_summary.json", summary.dump(2) + "\n");
    for (const auto& path : written) reporter.message("wrote " + path);
    return true;
  }

 private:
  ExperimentConfig config_;
  Word2VecData data_;
  Word2Vec model_{nullptr};
};

}  // namespace

std::unique_ptr<Task> make_word2vec_task(const ExperimentConfig& config,
                                         const std::string& artifacts_dir, torch::Device device) {
  return std::make_unique<Word2VecTask>(config, artifacts_dir);
}

}  // namespace nlpkit
