#include "trainers/metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

torch::Tensor longs(std::vector<int64_t> values) { return torch::tensor(values, torch::kLong); }

torch::Tensor floats(const std::vector<std::vector<float>>& rows) {
  std::vector<torch::Tensor> tensors;
  for (const auto& row : rows) tensors.push_back(torch::tensor(row));
  return torch::stack(tensors);
}

// sklearn's classification_report docstring example: y_true = [0, 1, 2, 2, 2],
// y_pred = [0, 0, 2, 2, 1]. The probabilities below have those argmaxes.
ClassificationReport sklearn_docstring_example() {
  return classification_report(longs({0, 1, 2, 2, 2}),
                               floats({{0.8f, 0.1f, 0.1f},
                                       {0.6f, 0.3f, 0.1f},
                                       {0.1f, 0.2f, 0.7f},
                                       {0.2f, 0.2f, 0.6f},
                                       {0.1f, 0.5f, 0.4f}}),
                               {"class 0", "class 1", "class 2"});
}

TEST(ClassificationReportTest, SklearnDocstringExample) {
  const ClassificationReport r = sklearn_docstring_example();
  // confusion[true][pred]
  EXPECT_EQ(r.confusion, (std::vector<std::vector<int64_t>>{{1, 0, 0}, {1, 0, 0}, {0, 1, 2}}));
  EXPECT_DOUBLE_EQ(r.accuracy, 3.0 / 5);
  ASSERT_EQ(r.classes.size(), 3u);
  // class 0: tp 1, fp 1 (the class-1 example), fn 0 -> P 1/2, R 1, F1 2/3.
  EXPECT_EQ(r.classes[0].name, "class 0");
  EXPECT_DOUBLE_EQ(r.classes[0].precision, 0.5);
  EXPECT_DOUBLE_EQ(r.classes[0].recall, 1.0);
  EXPECT_DOUBLE_EQ(r.classes[0].f1, 2.0 / 3);
  EXPECT_EQ(r.classes[0].support, 1);
  // class 1: tp 0, fp 1, fn 1 -> all 0.
  EXPECT_DOUBLE_EQ(r.classes[1].precision, 0.0);
  EXPECT_DOUBLE_EQ(r.classes[1].recall, 0.0);
  EXPECT_DOUBLE_EQ(r.classes[1].f1, 0.0);
  // class 2: tp 2, fp 0, fn 1 -> P 1, R 2/3, F1 0.8.
  EXPECT_DOUBLE_EQ(r.classes[2].precision, 1.0);
  EXPECT_DOUBLE_EQ(r.classes[2].recall, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.classes[2].f1, 0.8);
  EXPECT_EQ(r.classes[2].support, 3);
  // sklearn: macro avg 0.50 0.56 0.49, weighted avg 0.70 0.60 0.61.
  EXPECT_DOUBLE_EQ(r.macro_precision, 0.5);
  EXPECT_DOUBLE_EQ(r.macro_recall, (1 + 0 + 2.0 / 3) / 3);
  EXPECT_DOUBLE_EQ(r.macro_f1, (2.0 / 3 + 0 + 0.8) / 3);
  EXPECT_DOUBLE_EQ(r.weighted_precision, (0.5 + 0 + 3 * 1.0) / 5);
  EXPECT_DOUBLE_EQ(r.weighted_recall, 0.6);
  EXPECT_DOUBLE_EQ(r.weighted_f1, (2.0 / 3 + 0 + 3 * 0.8) / 5);
  // Single-label: micro P = R = F1 = accuracy.
  EXPECT_DOUBLE_EQ(r.micro_precision, 0.6);
  EXPECT_DOUBLE_EQ(r.micro_recall, 0.6);
  EXPECT_DOUBLE_EQ(r.micro_f1, 0.6);
  // One-vs-rest AUCs: class 0 column [.8 .6 .1 .2 .1], positive .8 beats all 4 -> 1;
  // class 1 column [.1 .3 .2 .2 .5], positive .3 beats 3 of 4 -> 0.75;
  // class 2 column [.1 .1 .7 .6 .4], positives all beat both negatives -> 1. Macro 2.75/3.
  ASSERT_TRUE(r.roc_auc.has_value());
  EXPECT_DOUBLE_EQ(*r.roc_auc, 2.75 / 3);
  EXPECT_TRUE(std::isnan(r.loss));
}

TEST(ClassificationReportTest, TableMatchesSklearnLayout) {
  ClassificationReport r = sklearn_docstring_example();
  // The first block is sklearn's classification_report(..., digits=4) verbatim.
  const std::string expected =
      "              precision    recall  f1-score   support\n"
      "\n"
      "     class 0     0.5000    1.0000    0.6667         1\n"
      "     class 1     0.0000    0.0000    0.0000         1\n"
      "     class 2     1.0000    0.6667    0.8000         3\n"
      "\n"
      "    accuracy                         0.6000         5\n"
      "   macro avg     0.5000    0.5556    0.4889         5\n"
      "weighted avg     0.7000    0.6000    0.6133         5\n"
      "\n"
      "     roc_auc                         0.9167\n"
      "\n"
      "confusion matrix (rows: true, columns: predicted)\n"
      "              class 0  class 1  class 2\n"
      "     class 0        1        0        0\n"
      "     class 1        1        0        0\n"
      "     class 2        0        1        2\n";
  EXPECT_EQ(r.to_table(), expected);
  r.loss = 0.25;
  EXPECT_NE(r.to_table().find("\n        loss                         0.2500\n"), std::string::npos)
      << r.to_table();
}

TEST(ClassificationReportTest, Json) {
  ClassificationReport r = sklearn_docstring_example();
  nlohmann::json j = r.to_json();
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(j["macro_precision"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["roc_auc"].get<double>(), 2.75 / 3);
  EXPECT_TRUE(j["loss"].is_null());
  EXPECT_EQ(j["classes"][2]["name"], "class 2");
  EXPECT_DOUBLE_EQ(j["classes"][2]["f1"].get<double>(), 0.8);
  EXPECT_EQ(j["classes"][2]["support"], 3);
  EXPECT_EQ(j["confusion"], nlohmann::json::parse("[[1,0,0],[1,0,0],[0,1,2]]"));
  r.loss = 1.5;
  r.roc_auc.reset();
  j = r.to_json();
  EXPECT_DOUBLE_EQ(j["loss"].get<double>(), 1.5);
  EXPECT_TRUE(j["roc_auc"].is_null());
  // Serializable (no NaN sneaks into the text).
  EXPECT_EQ(nlohmann::json::parse(j.dump()), j);
}

TEST(ClassificationReportTest, BinaryAucSklearnExample) {
  // sklearn's roc_auc_score docstring: y = [0, 0, 1, 1], scores [.1 .4 .35 .8] -> 0.75
  // (positives .35 and .8 against negatives .1 and .4: 1 + 2 of 4 pairs).
  const ClassificationReport r = classification_report(
      longs({0, 0, 1, 1}), floats({{0.9f, 0.1f}, {0.6f, 0.4f}, {0.65f, 0.35f}, {0.2f, 0.8f}}), {});
  ASSERT_TRUE(r.roc_auc.has_value());
  EXPECT_DOUBLE_EQ(*r.roc_auc, 0.75);
  // Predictions [0 0 0 1]: class 1 P 1 R 1/2 F1 2/3; class 0 P 2/3 R 1 F1 0.8.
  EXPECT_EQ(r.classes[0].name, "0");
  EXPECT_EQ(r.classes[1].name, "1");
  EXPECT_DOUBLE_EQ(r.classes[1].precision, 1.0);
  EXPECT_DOUBLE_EQ(r.classes[1].recall, 0.5);
  EXPECT_DOUBLE_EQ(r.classes[1].f1, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.classes[0].precision, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.classes[0].f1, 0.8);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.75);
}

TEST(RocAucTest, TiesShareTheirAverageRank) {
  // Scores [.5 .5 .5 .9], labels [0 1 0 1]: ranks 2 2 2 4; positives' rank sum 6,
  // U = 6 - 2*3/2 = 3 of 4 pairs -> 0.75 (a tied pair counts one half).
  EXPECT_DOUBLE_EQ(*roc_auc_score(torch::tensor({false, true, false, true}),
                                  torch::tensor({0.5, 0.5, 0.5, 0.9})),
                   0.75);
  // Everything tied: a coin flip.
  EXPECT_DOUBLE_EQ(*roc_auc_score(torch::tensor({false, true, true}), torch::ones({3})), 0.5);
  // Perfectly wrong ordering.
  EXPECT_DOUBLE_EQ(
      *roc_auc_score(torch::tensor({true, true, false}), torch::tensor({0.1, 0.2, 0.3})), 0.0);
}

TEST(RocAucTest, UndefinedWithOneClass) {
  EXPECT_FALSE(roc_auc_score(torch::tensor({true, true}), torch::tensor({0.1, 0.2})).has_value());
  EXPECT_FALSE(roc_auc_score(torch::tensor({false, false}), torch::tensor({0.1, 0.2})).has_value());
  EXPECT_THROW_WITH(roc_auc_score(torch::tensor({true}), torch::tensor({0.1, 0.2})),
                    "expected two 1-D tensors of the same length");
}

TEST(ClassificationReportTest, MulticlassOneVsRestAuc) {
  // Class 0 column [.7 .3 .2 .5 .1 .4], positives .7 and .3: 4 + 2 of 8 pairs -> 0.75.
  // Class 1 column [.2 .4 .6 .3 .2 .1], positives .6 and .3: 4 + 3 of 8 -> 0.875.
  // Class 2 column [.1 .3 .2 .2 .7 .5], positives .7 and .5 beat all -> 1. Macro 0.875.
  const ClassificationReport r = classification_report(longs({0, 0, 1, 1, 2, 2}),
                                                       floats({{0.7f, 0.2f, 0.1f},
                                                               {0.3f, 0.4f, 0.3f},
                                                               {0.2f, 0.6f, 0.2f},
                                                               {0.5f, 0.3f, 0.2f},
                                                               {0.1f, 0.2f, 0.7f},
                                                               {0.4f, 0.1f, 0.5f}}),
                                                       {"a", "b", "c"});
  ASSERT_TRUE(r.roc_auc.has_value());
  EXPECT_DOUBLE_EQ(*r.roc_auc, 0.875);
  EXPECT_DOUBLE_EQ(r.accuracy, 4.0 / 6);
}

TEST(ClassificationReportTest, AbsentClassScoresZeroAndLeavesAucUndefined) {
  // Class 2 never occurs but is predicted once: P 0 (tp 0, fp 1), R 0 (0/0), F1 0, support 0.
  const ClassificationReport r = classification_report(
      longs({0, 1, 0, 1}),
      floats({{0.9f, 0.05f, 0.05f}, {0.1f, 0.8f, 0.1f}, {0.2f, 0.1f, 0.7f}, {0.3f, 0.6f, 0.1f}}),
      {"x", "y", "z"});
  EXPECT_EQ(r.classes[2].support, 0);
  EXPECT_DOUBLE_EQ(r.classes[2].precision, 0.0);
  EXPECT_DOUBLE_EQ(r.classes[2].recall, 0.0);
  EXPECT_DOUBLE_EQ(r.classes[2].f1, 0.0);
  // class 0: tp 1, fn 1 -> P 1 R .5 F1 2/3; class 1: tp 2 -> 1 1 1. Macro includes class 2.
  EXPECT_DOUBLE_EQ(r.macro_precision, (1 + 1 + 0) / 3.0);
  EXPECT_DOUBLE_EQ(r.macro_recall, (0.5 + 1 + 0) / 3.0);
  EXPECT_DOUBLE_EQ(r.macro_f1, (2.0 / 3 + 1 + 0) / 3.0);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.75);
  EXPECT_FALSE(r.roc_auc.has_value());
  EXPECT_NE(r.to_table().find("roc_auc                            n/a"), std::string::npos)
      << r.to_table();
}

TEST(ClassificationReportTest, NothingPredictedForAClassIsZeroPrecision) {
  // Everything predicted as class 0: class 1 has tp = fp = 0 -> precision 0 (not NaN).
  const ClassificationReport r = classification_report(
      longs({0, 1, 1}), floats({{0.9f, 0.1f}, {0.8f, 0.2f}, {0.7f, 0.3f}}), {});
  EXPECT_DOUBLE_EQ(r.classes[1].precision, 0.0);
  EXPECT_DOUBLE_EQ(r.classes[1].recall, 0.0);
  EXPECT_DOUBLE_EQ(r.classes[0].precision, 1.0 / 3);
  // Scores still rank class 1 perfectly: .3 and .2 above .1.
  EXPECT_DOUBLE_EQ(*r.roc_auc, 1.0);
}

TEST(ClassificationReportTest, BadInputThrows) {
  const torch::Tensor probs = torch::full({3, 2}, 0.5);
  EXPECT_THROW_WITH(classification_report(longs({0, 1, 2}), probs, {}),
                    "classification_report: labels must be in [0, 2), got values in [0, 2]");
  EXPECT_THROW_WITH(classification_report(longs({0, -1, 1}), probs, {}), "got values in [-1, 1]");
  EXPECT_THROW_WITH(classification_report(longs({0, 1}), probs, {}),
                    "expected labels of shape (N) = (3) to match probs of shape [3, 2], got "
                    "labels of shape [2]");
  EXPECT_THROW_WITH(classification_report(longs({0, 1, 1}), torch::ones({3}), {}),
                    "expected probs of shape (N, C), got [3]");
  EXPECT_THROW_WITH(classification_report(longs({0, 1, 1}), probs, {"a", "b", "c"}),
                    "got 3 class names for 2 classes");
  EXPECT_THROW_WITH(classification_report(torch::zeros({3}), probs, {}),
                    "labels must be integer class ids, got Float");
  EXPECT_THROW_WITH(classification_report(longs({}), torch::zeros({0, 2}), {}),
                    "no examples (N = 0)");
}

}  // namespace
}  // namespace nlpkit

namespace nlpkit {
namespace {

TEST(SequenceMetricsTest, EditDistance) {
  EXPECT_EQ(edit_distance({"K", "AE1", "T"}, {"K", "AE1", "T"}), 0);
  EXPECT_EQ(edit_distance({"K", "AE1", "T"}, {"K", "AH0", "T", "S"}), 2);
  EXPECT_EQ(edit_distance({}, {"A", "B"}), 2);
  EXPECT_EQ(edit_distance({"A", "B", "C"}, {}), 3);
}

TEST(SequenceMetricsTest, AnyReferenceCountsAndPerUsesTheClosest) {
  const std::vector<TokenSequence> hyps = {{"DH", "IY0"}, {"K", "AE1", "T"}, {"D", "AO1"}};
  const std::vector<std::vector<TokenSequence>> refs = {
      {{"DH", "AH0"}, {"DH", "IY0"}},  // matches the second reference
      {{"K", "AE1", "T"}},             // exact
      {{"D", "AO1", "G"}}};            // one deletion
  const SequenceMetrics m = sequence_metrics(hyps, refs);
  EXPECT_EQ(m.examples, 3);
  EXPECT_NEAR(m.sequence_accuracy, 1.0 / 3, 1e-12);  // first references only
  EXPECT_NEAR(m.wer, 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.per, 1.0 / (2 + 3 + 3), 1e-12);
}

TEST(SequenceMetricsTest, CorpusBleuWithBrevityPenalty) {
  const TokenSequence ref = {"a", "b", "c", "d", "e", "f"};
  EXPECT_NEAR(corpus_bleu({ref}, {{ref}}), 1.0, 1e-12);
  // All n-grams right but too short: only the brevity penalty exp(1 - 6/4).
  EXPECT_NEAR(corpus_bleu({{"a", "b", "c", "d"}}, {{ref}}), std::exp(1.0 - 6.0 / 4.0), 1e-12);
  // The closest reference length is used.
  EXPECT_NEAR(corpus_bleu({{"a", "b", "c", "d"}}, {{ref, {"a", "b", "c", "d"}}}), 1.0, 1e-12);
  // No 4-gram in common -> 0.
  EXPECT_EQ(corpus_bleu({{"a", "b", "c"}}, {{ref}}), 0.0);
  // Clipping: "a a a a a a" against "a b c d e f" has unigram precision 1/6.
  const double p1 = 1.0 / 6;
  EXPECT_EQ(corpus_bleu({{"a", "a", "a", "a", "a", "a"}}, {{ref}}), 0.0);  // no bigram matches
  EXPECT_NEAR(corpus_bleu({{"a", "a", "a", "a", "a", "a"}}, {{ref}}, 1), p1, 1e-12);
}

}  // namespace
}  // namespace nlpkit
