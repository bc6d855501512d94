// Task `word2vec`: word vectors from a corpus (model.type word2vec; modules/word_embeddings.h).
// It does not train through the Trainer: word2vec's SGD runs lock-free on plain arrays, in
// config.threads threads, over trainer.epochs passes with a learning rate decaying linearly from
// optimizer.lr to 1e-4 * optimizer.lr. The run directory gets vectors.txt and/or vectors.bin
// (word2vec's text and binary formats) and config.yaml; `nlpkit embeddings neighbors|analogy`
// queries the vectors and data.pretrained_embeddings of a classifier reads vectors.txt.
#pragma once

#include "modules/word_embeddings.h"
#include "trainers/task.h"

namespace nlpkit {

class Tokenizer;

/// A tokenized corpus and its vocabulary: words by descending count (ties by byte order),
/// those seen fewer than min_count times left out, at most max_size kept (0 = all).
struct Word2VecData {
  std::vector<std::string> words;
  std::vector<int64_t> counts;
  Word2VecCorpus corpus;  // one sentence per document (line, or TSV/CSV/JSONL record)
};

/// Builds Word2VecData. Throws InputError naming `source` when the documents hold no words or
/// when min_count leaves none.
Word2VecData build_word2vec_data(const std::vector<std::string>& documents,
                                 const Tokenizer& tokenizer, int64_t min_count, int64_t max_size,
                                 const std::string& source);

std::unique_ptr<Task> make_word2vec_task(const ExperimentConfig& config,
                                         const std::string& artifacts_dir, torch::Device device);

}  // namespace nlpkit
