// Task `classification`: text -> label, read from TSV/CSV/JSONL, trained with cross-entropy,
// evaluated with accuracy, per-class and macro/micro precision/recall/F1, ROC-AUC and the
// confusion matrix. Models: text_cnn_bilstm_attention (documents -> sentences -> words) and bert.
#pragma once

#include "trainers/task.h"

namespace nlpkit {

struct ClassificationReport;

/// The Evaluation of a classification report: metrics accuracy, loss, macro/micro P/R/F1 and
/// roc_auc when defined; the report as JSON and its table.
Evaluation classification_evaluation(const ClassificationReport& report);

/// Task `classification`; model.type bert builds the BERT classifier (trainers/tasks/bert.h).
std::unique_ptr<Task> make_classification_task(const ExperimentConfig& config,
                                               const std::string& artifacts_dir,
                                               torch::Device device);

}  // namespace nlpkit
