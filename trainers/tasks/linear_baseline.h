// Task `linear_baseline`: multinomial logistic regression on classic sparse features
// (datasets/features.h: tfidf, bow counts or binary) of a classification file. Stratified k-fold
// cross-validation on data.train chooses the n-gram range (1..n for n in linear.ngram_max) and
// the L2 strength (linear.l2) by linear.metric; the winner is refitted on all of data.train and
// evaluated on data.valid / data.test. No Trainer steps: each fit is full-batch L-BFGS.
// The run directory gets linear_baseline.json (the grid and the final metrics).
#pragma once

#include "trainers/task.h"

namespace nlpkit {

/// Weights of a multinomial logistic regression fitted by full-batch L-BFGS on
/// mean cross-entropy + l2 / 2 * ||W||^2 (the bias is not penalised).
struct LogisticRegression {
  torch::Tensor weight;  // (F, C)
  torch::Tensor bias;    // (C)
  /// x (N, F), sparse or dense -> logits (N, C).
  torch::Tensor logits(const torch::Tensor& x) const;
};

LogisticRegression fit_logistic_regression(const torch::Tensor& x, const torch::Tensor& labels,
                                           int64_t num_classes, double l2, int64_t iterations);

std::unique_ptr<Task> make_linear_baseline_task(const ExperimentConfig& config,
                                                const std::string& artifacts_dir,
                                                torch::Device device);

}  // namespace nlpkit
