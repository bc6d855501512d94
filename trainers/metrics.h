// Classification metrics: accuracy, per-class and averaged precision/recall/F1, ROC-AUC and the
// confusion matrix, with scikit-learn's definitions and zero-division convention (0), so that
// numbers compare with sklearn.metrics.classification_report and roc_auc_score.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace nlpkit {

/// Precision, recall and F1 of one class, as one row of sklearn's classification_report.
struct ClassMetrics {
  std::string name;
  double precision = 0;  ///< tp / (tp + fp), 0 when nothing was predicted as this class
  double recall = 0;     ///< tp / (tp + fn), 0 when the class has no examples
  double f1 = 0;         ///< 2 tp / (2 tp + fp + fn), 0 when the class never occurs
  int64_t support = 0;   ///< number of examples whose true label is this class
};

/// Everything an evaluation reports about a single-label classifier.
struct ClassificationReport {
  double accuracy = 0;
  /// Unweighted means over all classes (absent classes included, scoring 0).
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  /// Pooled counts over classes; for single-label data all three equal the accuracy.
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  /// Means weighted by support (sklearn's "weighted avg" row).
  double weighted_precision = 0, weighted_recall = 0, weighted_f1 = 0;
  /// Binary: class 1 is the positive class, scored by probs[:, 1]. Multiclass: one-vs-rest,
  /// macro-averaged over classes. nullopt when undefined: a class is absent from the labels
  /// (or every example is of one class).
  std::optional<double> roc_auc;
  std::vector<ClassMetrics> classes;
  /// confusion[true][pred]: number of examples of class `true` predicted as `pred`.
  std::vector<std::vector<int64_t>> confusion;
  /// Mean loss, filled in by whoever computed it; NaN = not known.
  double loss = NAN;

  /// Every field; roc_auc and an unknown loss are null.
  /// {"accuracy":..,"macro_f1":..,..,"classes":[{"name":..,"precision":..,..}],"confusion":[[..]]}
  nlohmann::json to_json() const;
  /// An aligned text table like sklearn's classification_report, followed by ROC-AUC, the loss
  /// when known, and the confusion matrix (rows: true class, columns: predicted class).
  std::string to_table() const;
};

/// Scores predictions `argmax(probs, 1)` against `labels`.
///
/// labels: (N) integer class ids in [0, C); probs: (N, C) class probabilities (any monotone
/// scores work for the per-class metrics; ROC-AUC ranks each column as given). class_names has
/// C names, or is empty for "0", "1", ... . ROC-AUC is the Mann-Whitney rank statistic with
/// tied scores sharing their average rank, which equals the area under the ROC curve.
///
/// Example:
/// ```
/// auto report = nlpkit::classification_report(labels, logits.softmax(1), {"ham", "spam"});
/// std::cout << report.to_table();
/// ```
ClassificationReport classification_report(const torch::Tensor& labels, const torch::Tensor& probs,
                                           const std::vector<std::string>& class_names);

/// Area under the ROC curve of `scores` (N) for binary `is_positive` (N, bool), by the rank
/// statistic with ties averaged; nullopt unless both classes occur.
std::optional<double> roc_auc_score(const torch::Tensor& is_positive, const torch::Tensor& scores);

// ---------------------------------------------------------------------------------------------
// Sequence-to-sequence metrics (tokens are strings: phonemes, words, characters)

using TokenSequence = std::vector<std::string>;

/// Levenshtein distance (insertions, deletions, substitutions, each 1) between two sequences.
int64_t edit_distance(const TokenSequence& a, const TokenSequence& b);

/// Scores of hypotheses against one or more references each.
struct SequenceMetrics {
  /// Exact matches of the first reference / examples.
  double sequence_accuracy = 0;
  /// Word error rate as the G2P literature counts it: examples whose hypothesis matches none
  /// of the references / examples.
  double wer = 0;
  /// Token (phoneme) error rate: sum over examples of the edit distance to the closest
  /// reference / sum of that reference's length.
  double per = 0;
  /// Corpus BLEU-4 (Papineni et al. 2002): clipped n-gram precisions with counts clipped by
  /// the most in any reference, geometric mean over n = 1..4, brevity penalty against the
  /// reference length closest to each hypothesis; 0 when a precision is 0.
  double bleu = 0;
  int64_t examples = 0;
};

/// hypotheses[i] is scored against references[i] (at least one each).
///   sequence_metrics({{"K", "AE1", "T"}}, {{{"K", "AE1", "T"}}}).wer == 0
SequenceMetrics sequence_metrics(const std::vector<TokenSequence>& hypotheses,
                                 const std::vector<std::vector<TokenSequence>>& references);

/// Corpus BLEU alone (see SequenceMetrics::bleu), up to max_n-grams.
double corpus_bleu(const std::vector<TokenSequence>& hypotheses,
                   const std::vector<std::vector<TokenSequence>>& references, int max_n = 4);

}  // namespace nlpkit
