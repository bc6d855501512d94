// Task `classification`: text -> label, read from TSV/CSV/JSONL, trained with cross-entropy,
// evaluated with accuracy, per-class and macro/micro precision/recall/F1, ROC-AUC and the
// confusion matrix. Model: text_cnn_bilstm_attention (documents -> sentences -> words).
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_classification_task(const ExperimentConfig& config,
                                               const std::string& artifacts_dir,
                                               torch::Device device);

}  // namespace nlpkit
