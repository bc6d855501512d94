// Task `classification` with model.type fasttext (modules/word_embeddings.h): each document is
// the bag of its word ids and hashed word n-gram ids (model.word_ngrams, model.buckets), fed
// to the FastText classifier through the Trainer; evaluation and prediction as the other
// classifiers (accuracy, per-class and macro F1, ROC-AUC; "label<TAB>probability").
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_fasttext_classification_task(const ExperimentConfig& config,
                                                        const std::string& artifacts_dir,
                                                        torch::Device device);

}  // namespace nlpkit
