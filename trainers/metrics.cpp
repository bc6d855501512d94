#include "trainers/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>

namespace nlpkit {

namespace {

// a / b with sklearn's zero_division=0 convention.
double safe_divide(double a, double b) { return b == 0 ? 0.0 : a / b; }

// One "%*s" cell, right-aligned.
std::string right(const std::string& text, size_t width) {
  return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

std::string fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

}  // namespace

std::optional<double> roc_auc_score(const torch::Tensor& is_positive, const torch::Tensor& scores) {
  TORCH_CHECK(is_positive.dim() == 1 && scores.dim() == 1 && is_positive.size(0) == scores.size(0),
              "roc_auc_score: expected two 1-D tensors of the same length, got is_positive of "
              "shape ",
              is_positive.sizes(), " and scores of shape ", scores.sizes());
  const torch::Tensor positive = is_positive.to(torch::kCPU, torch::kBool).contiguous();
  const torch::Tensor score = scores.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t n = score.size(0);
  const bool* pos = positive.data_ptr<bool>();
  const double* s = score.data_ptr<double>();
  const int64_t n_pos = std::count(pos, pos + n, true);
  const int64_t n_neg = n - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::nullopt;

  // Mann-Whitney U: the sum of the positives' ranks (1-based, ties sharing their mean rank)
  // minus its minimum n_pos (n_pos + 1) / 2, over the number of positive-negative pairs.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
  double positive_rank_sum = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && s[order[j + 1]] == s[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2;
    for (int64_t k = i; k <= j; ++k) {
      if (pos[order[k]]) positive_rank_sum += mean_rank;
    }
    i = j + 1;
  }
  const double u = positive_rank_sum - static_cast<double>(n_pos) * (n_pos + 1) / 2;
  return u / (static_cast<double>(n_pos) * static_cast<double>(n_neg));
}

ClassificationReport classification_report(const torch::Tensor& labels, const torch::Tensor& probs,
                                           const std::vector<std::string>& class_names) {
  TORCH_CHECK(probs.dim() == 2, "classification_report: expected probs of shape (N, C), got ",
              probs.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == probs.size(0),
              "classification_report: expected labels of shape (N) = (", probs.size(0),
              ") to match probs of shape ", probs.sizes(), ", got labels of shape ",
              labels.sizes());
  TORCH_CHECK(
      !labels.is_floating_point() && !labels.is_complex() && labels.scalar_type() != torch::kBool,
      "classification_report: labels must be integer class ids, got ", labels.scalar_type());
  const int64_t n = labels.size(0);
  const int64_t c = probs.size(1);
  TORCH_CHECK(n > 0, "classification_report: no examples (N = 0)");
  TORCH_CHECK(c > 0, "classification_report: probs has no classes (C = 0)");
  TORCH_CHECK(class_names.empty() || static_cast<int64_t>(class_names.size()) == c,
              "classification_report: got ", class_names.size(), " class names for ", c,
              " classes (probs of shape ", probs.sizes(), ")");

  const torch::Tensor truth = labels.to(torch::kCPU, torch::kLong).contiguous();
  const torch::Tensor scores = probs.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t min_label = truth.min().item<int64_t>();
  const int64_t max_label = truth.max().item<int64_t>();
  TORCH_CHECK(min_label >= 0 && max_label < c, "classification_report: labels must be in [0, ", c,
              "), got values in [", min_label, ", ", max_label, "]");
  const torch::Tensor predicted = scores.argmax(1).contiguous();

  ClassificationReport report;
  report.confusion.assign(c, std::vector<int64_t>(c, 0));
  const int64_t* t = truth.data_ptr<int64_t>();
  const int64_t* p = predicted.data_ptr<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    ++report.confusion[t[i]][p[i]];
    correct += t[i] == p[i];
  }
  report.accuracy = static_cast<double>(correct) / static_cast<double>(n);

  int64_t total_tp = 0, total_fp = 0, total_fn = 0;
  for (int64_t k = 0; k < c; ++k) {
    int64_t tp = report.confusion[k][k], fp = 0, fn = 0;
    for (int64_t j = 0; j < c; ++j) {
      if (j == k) continue;
      fp += report.confusion[j][k];
      fn += report.confusion[k][j];
    }
    ClassMetrics m;
    m.name = class_names.empty() ? std::to_string(k) : class_names[k];
    m.precision = safe_divide(tp, tp + fp);
    m.recall = safe_divide(tp, tp + fn);
    m.f1 = safe_divide(2.0 * tp, 2.0 * tp + fp + fn);
    m.support = tp + fn;
    total_tp += tp;
    total_fp += fp;
    total_fn += fn;
    report.macro_precision += m.precision / c;
    report.macro_recall += m.recall / c;
    report.macro_f1 += m.f1 / c;
    const double weight = static_cast<double>(m.support) / static_cast<double>(n);
    report.weighted_precision += m.precision * weight;
    report.weighted_recall += m.recall * weight;
    report.weighted_f1 += m.f1 * weight;
    report.classes.push_back(std::move(m));
  }
  report.micro_precision = safe_divide(total_tp, total_tp + total_fp);
  report.micro_recall = safe_divide(total_tp, total_tp + total_fn);
  report.micro_f1 = safe_divide(2.0 * total_tp, 2.0 * total_tp + total_fp + total_fn);

  if (c == 2) {
    report.roc_auc = roc_auc_score(truth == 1, scores.select(1, 1));
  } else if (c > 2) {
    // One-vs-rest, macro: undefined as soon as one class has no positives.
    double sum = 0;
    bool defined = true;
    for (int64_t k = 0; k < c && defined; ++k) {
      const std::optional<double> auc = roc_auc_score(truth == k, scores.select(1, k));
      defined = auc.has_value();
      if (defined) sum += *auc;
    }
    if (defined) report.roc_auc = sum / c;
  }
  return report;
}

nlohmann::json ClassificationReport::to_json() const {
  nlohmann::json j;
  j["accuracy"] = accuracy;
  j["macro_precision"] = macro_precision;
  j["macro_recall"] = macro_recall;
  j["macro_f1"] = macro_f1;
  j["micro_precision"] = micro_precision;
  j["micro_recall"] = micro_recall;
  j["micro_f1"] = micro_f1;
  j["weighted_precision"] = weighted_precision;
  j["weighted_recall"] = weighted_recall;
  j["weighted_f1"] = weighted_f1;
  j["roc_auc"] = roc_auc ? nlohmann::json(*roc_auc) : nlohmann::json(nullptr);
  j["loss"] = std::isnan(loss) ? nlohmann::json(nullptr) : nlohmann::json(loss);
  j["classes"] = nlohmann::json::array();
  for (const ClassMetrics& m : classes) {
    j["classes"].push_back({{"name", m.name},
                            {"precision", m.precision},
                            {"recall", m.recall},
                            {"f1", m.f1},
                            {"support", m.support}});
  }
  j["confusion"] = confusion;
  return j;
}

std::string ClassificationReport::to_table() const {
  // sklearn's layout: names right-aligned in `width`, then " %9s" columns; 4 digits.
  constexpr int kDigits = 4;
  constexpr size_t kColumn = 9;
  size_t width = std::string("weighted avg").size();
  for (const ClassMetrics& m : classes) width = std::max(width, m.name.size());
  int64_t total = 0;
  for (const ClassMetrics& m : classes) total += m.support;

  std::ostringstream out;
  auto row = [&](const std::string& name, const std::vector<std::string>& cells) {
    out << right(name, width) << ' ';
    for (const std::string& cell : cells) out << ' ' << right(cell, kColumn);
    out << '\n';
  };
  row("", {"precision", "recall", "f1-score", "support"});
  out << '\n';
  for (const ClassMetrics& m : classes) {
    row(m.name, {fixed(m.precision, kDigits), fixed(m.recall, kDigits), fixed(m.f1, kDigits),
                 std::to_string(m.support)});
  }
  out << '\n';
  row("accuracy", {"", "", fixed(accuracy, kDigits), std::to_string(total)});
  row("macro avg", {fixed(macro_precision, kDigits), fixed(macro_recall, kDigits),
                    fixed(macro_f1, kDigits), std::to_string(total)});
  row("weighted avg", {fixed(weighted_precision, kDigits), fixed(weighted_recall, kDigits),
                       fixed(weighted_f1, kDigits), std::to_string(total)});
  out << '\n';
  row("roc_auc", {"", "", roc_auc ? fixed(*roc_auc, kDigits) : "n/a"});
  if (!std::isnan(loss)) row("loss", {"", "", fixed(loss, kDigits)});

  // Confusion matrix: every column as wide as its longest name or count.
  out << "\nconfusion matrix (rows: true, columns: predicted)\n";
  size_t cell = 1;
  for (const ClassMetrics& m : classes) cell = std::max(cell, m.name.size());
  for (const auto& counts : confusion) {
    for (int64_t v : counts) cell = std::max(cell, std::to_string(v).size());
  }
  out << right("", width);
  for (const ClassMetrics& m : classes) out << "  " << right(m.name, cell);
  out << '\n';
  for (size_t i = 0; i < confusion.size(); ++i) {
    out << right(i < classes.size() ? classes[i].name : std::to_string(i), width);
    for (int64_t v : confusion[i]) out << "  " << right(std::to_string(v), cell);
    out << '\n';
  }
  return out.str();
}

}  // namespace nlpkit

namespace nlpkit {

int64_t edit_distance(const TokenSequence& a, const TokenSequence& b) {
  std::vector<int64_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diagonal = row[0];
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

double corpus_bleu(const std::vector<TokenSequence>& hypotheses,
                   const std::vector<std::vector<TokenSequence>>& references, int max_n) {
  TORCH_CHECK(hypotheses.size() == references.size(), "corpus_bleu: ", hypotheses.size(),
              " hypotheses but ", references.size(), " reference lists");
  std::vector<double> matched(max_n, 0), total(max_n, 0);
  double hyp_length = 0, ref_length = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const TokenSequence& h = hypotheses[i];
    TORCH_CHECK(!references[i].empty(), "corpus_bleu: example ", i, " has no reference");
    hyp_length += h.size();
    // The reference length closest to the hypothesis' (the shorter on ties), as sacrebleu.
    size_t best = references[i][0].size();
    for (const auto& r : references[i]) {
      const auto d = std::abs(static_cast<int64_t>(r.size()) - static_cast<int64_t>(h.size()));
      const auto d_best = std::abs(static_cast<int64_t>(best) - static_cast<int64_t>(h.size()));
      if (d < d_best || (d == d_best && r.size() < best)) best = r.size();
    }
    ref_length += best;
    for (int n = 1; n <= max_n; ++n) {
      std::map<TokenSequence, int64_t> counts, max_ref;
      for (size_t s = 0; s + n <= h.size(); ++s)
        ++counts[TokenSequence(h.begin() + s, h.begin() + s + n)];
      for (const auto& r : references[i]) {
        std::map<TokenSequence, int64_t> rc;
        for (size_t s = 0; s + n <= r.size(); ++s)
          ++rc[TokenSequence(r.begin() + s, r.begin() + s + n)];
        for (const auto& [gram, c] : rc) max_ref[gram] = std::max(max_ref[gram], c);
      }
      for (const auto& [gram, c] : counts) {
        auto it = max_ref.find(gram);
        matched[n - 1] += std::min(c, it == max_ref.end() ? 0 : it->second);
        total[n - 1] += c;
      }
    }
  }
  double log_precision = 0;
  for (int n = 0; n < max_n; ++n) {
    if (total[n] == 0 || matched[n] == 0) return 0.0;
    log_precision += std::log(matched[n] / total[n]) / max_n;
  }
  const double brevity =
      hyp_length >= ref_length || hyp_length == 0 ? 1.0 : std::exp(1.0 - ref_length / hyp_length);
  return brevity * std::exp(log_precision);
}

SequenceMetrics sequence_metrics(const std::vector<TokenSequence>& hypotheses,
                                 const std::vector<std::vector<TokenSequence>>& references) {
  TORCH_CHECK(hypotheses.size() == references.size(), "sequence_metrics: ", hypotheses.size(),
              " hypotheses but ", references.size(), " reference lists");
  SequenceMetrics m;
  m.examples = static_cast<int64_t>(hypotheses.size());
  if (hypotheses.empty()) return m;
  int64_t exact = 0, wrong = 0, edits = 0, length = 0;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    TORCH_CHECK(!references[i].empty(), "sequence_metrics: example ", i, " has no reference");
    if (hypotheses[i] == references[i][0]) ++exact;
    int64_t best = -1;
    size_t best_length = 0;
    for (const auto& r : references[i]) {
      const int64_t d = edit_distance(hypotheses[i], r);
      if (best < 0 || d < best) {
        best = d;
        best_length = r.size();
      }
    }
    if (best > 0) ++wrong;
    edits += best;
    length += static_cast<int64_t>(best_length);
  }
  m.sequence_accuracy = double(exact) / m.examples;
  m.wer = double(wrong) / m.examples;
  m.per = length > 0 ? double(edits) / length : 0.0;
  m.bleu = corpus_bleu(hypotheses, references);
  return m;
}

}  // namespace nlpkit
