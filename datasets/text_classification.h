// Labelled text files for classification (TSV, CSV, JSONL) and the label <-> id map.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace nlpkit {

/// One labelled document.
struct TextExample {
  std::string text;
  std::string label;
};

/// How load_classification_file reads a file.
struct ClassificationFileOptions {
  /// "tsv", "csv", "jsonl", or "auto": from the extension (.tsv, .csv, .jsonl/.ndjson).
  std::string format = "auto";
  /// Column (TSV/CSV header) or key (JSONL) holding the text.
  std::string text_field = "text";
  /// Column or key holding the label.
  std::string label_field = "label";
  /// "error": a malformed record throws; "skip": it is left out and counted.
  std::string on_error = "error";
};

/// The examples of a file, in file order, and how many malformed records were skipped.
struct ClassificationData {
  std::vector<TextExample> examples;
  int64_t skipped = 0;
};

/// Reads labelled text. TSV and CSV start with a header row naming the columns (CSV follows
/// RFC 4180: quoted fields may hold commas, line breaks and doubled quotes); JSONL holds one
/// object per line, whose label may be a string or an integer. Blank lines, a UTF-8 byte order
/// mark and CRLF line ends are accepted. A malformed record (wrong field count, bad JSON,
/// missing field, empty label, unterminated quote) throws std::runtime_error "PATH:LINE: what",
/// e.g. "data/x.tsv:17: expected 2 tab-separated fields, found 3", or is skipped and counted
/// with on_error "skip". A header without the named columns always throws, as does a missing
/// file: "data file not found: PATH".
///   ClassificationData d = load_classification_file("data/spam/train.tsv", {});
ClassificationData load_classification_file(const std::string& path,
                                            const ClassificationFileOptions& options = {});

/// The documents of a corpus file: the text column of a TSV/CSV/JSONL file (by `options`), or
/// every non-empty line of a plain text file. InputError when there is no text.
std::vector<std::string> read_documents(const std::string& path,
                                        const ClassificationFileOptions& options);

/// Labels <-> ids 0..n-1. Built from examples, the ids follow the sorted label names, so the
/// same data always gives the same ids; loaded from a checkpoint, the saved order is kept.
///   LabelMap m = LabelMap::from_examples(data.examples);  // {"ham", "spam"}
///   m.id("spam") == 1; m.name(0) == "ham"
class LabelMap {
 public:
  LabelMap() = default;
  /// Labels in id order; they must be distinct and non-empty (std::invalid_argument otherwise).
  explicit LabelMap(std::vector<std::string> names);
  /// The sorted distinct labels of `examples`.
  static LabelMap from_examples(const std::vector<TextExample>& examples);

  /// Throws std::runtime_error "unknown label 'x' (known labels: a, b)".
  int64_t id(const std::string& label) const;
  /// Ids of the labels of `examples` (see id()).
  std::vector<int64_t> ids(const std::vector<TextExample>& examples) const;
  bool contains(const std::string& label) const { return index_.count(label) > 0; }
  /// The label with this id (TORCH_CHECKs the range).
  const std::string& name(int64_t id) const;
  const std::vector<std::string>& names() const { return names_; }
  int64_t size() const { return static_cast<int64_t>(names_.size()); }

  /// A JSON array of the names in id order.
  nlohmann::json to_json() const;
  /// Reads to_json()'s array; throws std::invalid_argument when it is not an array of
  /// distinct non-empty strings.
  static LabelMap from_json(const nlohmann::json& json);
  /// Writes to_json() atomically to `path`.
  void save(const std::string& path) const;
  /// Reads a file written by save(); errors name the path.
  static LabelMap load(const std::string& path);

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, int64_t> index_;
};

}  // namespace nlpkit
