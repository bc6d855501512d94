#include "datasets/text_classification.h"
#include "datasets/input_error.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "datasets/file_io.h"

namespace nlpkit {
namespace {

using nlohmann::json;

std::string join(const std::vector<std::string>& names, size_t limit = 20) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > limit) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

std::string resolve_format(const std::string& path, const std::string& format) {
  if (format == "tsv" || format == "csv" || format == "jsonl") return format;
  if (format != "auto") {
    throw std::invalid_argument("unknown data format '" + format +
                                "' (expected auto, csv, jsonl or tsv)");
  }
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  });
  if (ext == ".tsv") return "tsv";
  if (ext == ".csv") return "csv";
  if (ext == ".jsonl" || ext == ".ndjson") return "jsonl";
  throw InputError("cannot tell the format of " + path +
                           " from its extension; set the format to csv, jsonl or tsv");
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

std::vector<std::string> split_tabs(std::string_view line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.emplace_back(line.substr(start));
      return fields;
    }
    fields.emplace_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

// One row of a delimited file and the line it starts on.
struct Record {
  int64_t line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 CSV: fields separated by commas, records by (CR)LF; a field that starts with a
// quote runs to the matching quote, may hold commas and line breaks, and writes a quote as
// "". A quote inside an unquoted field is kept as a literal character, as spreadsheets do.
class CsvReader {
 public:
  explicit CsvReader(const std::string& text) : text_(text) {}

  /// The next non-blank record; false at the end. A malformed record throws BadRecord after
  /// moving past it, so that the caller may skip it and go on.
  struct BadRecord {
    int64_t line;
    std::string what;
  };
  bool next(Record& record) {
    while (pos_ < text_.size()) {
      record.line = line_;
      record.fields.clear();
      bool blank = true;
      if (read_record(record.fields, blank) && !blank) return true;
    }
    return false;
  }

 private:
  // Reads one record; `blank` says it was an empty line.
  bool read_record(std::vector<std::string>& fields, bool& blank) {
    const int64_t start_line = line_;
    std::string field;
    while (true) {
      field.clear();
      if (pos_ < text_.size() && text_[pos_] == '"') {
        blank = false;
        ++pos_;
        while (true) {
          if (pos_ >= text_.size()) {
            throw BadRecord{start_line, "unterminated quoted field"};
          }
          const char c = text_[pos_];
          if (c == '"') {
            if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
              field += '"';
              pos_ += 2;
              continue;
            }
            ++pos_;
            break;
          }
          if (c == '\n') ++line_;
          field += c;
          ++pos_;
        }
        if (pos_ + 1 < text_.size() && text_[pos_] == '\r' && text_[pos_ + 1] == '\n') ++pos_;
        if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n') {
          const std::string found(1, text_[pos_]);
          skip_line();
          throw BadRecord{start_line, "unexpected '" + found + "' after a closing quote"};
        }
      } else {
        const size_t end = text_.find_first_of(",\n", pos_);
        const size_t stop = end == std::string::npos ? text_.size() : end;
        field.assign(text_, pos_, stop - pos_);
        if (!field.empty() && field.back() == '\r' &&
            (stop == text_.size() || text_[stop] == '\n')) {
          field.pop_back();
        }
        if (!field.empty() || (stop < text_.size() && text_[stop] == ',')) blank = false;
        pos_ = stop;
      }
      fields.push_back(field);
      if (pos_ >= text_.size()) return true;
      if (text_[pos_] == '\n') {
        ++pos_;
        ++line_;
        return true;
      }
      ++pos_;  // the comma
    }
  }

  void skip_line() {
    const size_t end = text_.find('\n', pos_);
    pos_ = end == std::string::npos ? text_.size() : end + 1;
    if (end != std::string::npos) ++line_;
  }

  const std::string& text_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

// What both delimited formats share: the header names the columns, every record has as many.
class DelimitedLoader {
 public:
  DelimitedLoader(const std::string& path, const ClassificationFileOptions& options,
                  const char* kind)
      : path_(path), options_(options), kind_(kind) {}

  bool has_header() const { return !header_.empty(); }

  // The first record is the header; the others become examples or go to `bad`.
  void add(const Record& record, ClassificationData& data,
           const std::function<void(int64_t, const std::string&)>& bad) {
    if (header_.empty()) {
      header_ = record.fields;
      text_column_ = column(options_.text_field, record.line);
      label_column_ = column(options_.label_field, record.line);
      return;
    }
    if (record.fields.size() != header_.size()) {
      bad(record.line, "expected " + std::to_string(header_.size()) + " " + kind_ +
                           "-separated fields, found " + std::to_string(record.fields.size()));
      return;
    }
    const std::string& label = record.fields[label_column_];
    if (label.empty()) {
      bad(record.line, "empty label (column '" + options_.label_field + "')");
      return;
    }
    data.examples.push_back({record.fields[text_column_], label});
  }

  void finish() const {
    if (header_.empty()) {
      throw InputError(path_ + ": empty file; expected a header row naming the columns " +
                               "(e.g. " + options_.text_field + ", " + options_.label_field + ")");
    }
  }

 private:
  size_t column(const std::string& name, int64_t line) const {
    auto it = std::find(header_.begin(), header_.end(), name);
    if (it == header_.end()) {
      throw InputError(detail::where(path_, line) + ": no column '" + name +
                               "' in the header (columns: " + join(header_) + ")");
    }
    return static_cast<size_t>(it - header_.begin());
  }

  const std::string& path_;
  const ClassificationFileOptions& options_;
  std::string kind_;
  std::vector<std::string> header_;
  size_t text_column_ = 0;
  size_t label_column_ = 0;
};

std::string json_type(const json& value) { return value.type_name(); }

void load_jsonl(const std::string& path, const std::string& text,
                const ClassificationFileOptions& options, ClassificationData& data,
                const std::function<void(int64_t, const std::string&)>& bad) {
  detail::for_each_line(text, [&](std::string_view line, int64_t number) {
    if (is_blank(line)) return;
    json object;
    try {
      object = json::parse(line.begin(), line.end());
    } catch (const json::parse_error& e) {
      std::string what = e.what();
      const size_t prefix = what.find("] ");  // drop "[json.exception.parse_error.101] "
      if (prefix != std::string::npos) what = what.substr(prefix + 2);
      bad(number, "bad JSON: " + what);
      return;
    }
    if (!object.is_object()) {
      bad(number, "expected a JSON object, found " + json_type(object));
      return;
    }
    auto text_it = object.find(options.text_field);
    auto label_it = object.find(options.label_field);
    if (text_it == object.end()) return bad(number, "missing field '" + options.text_field + "'");
    if (label_it == object.end()) {
      return bad(number, "missing field '" + options.label_field + "'");
    }
    if (!text_it->is_string()) {
      return bad(number, "field '" + options.text_field + "' must be a string, found " +
                             json_type(*text_it));
    }
    std::string label;
    if (label_it->is_string()) {
      label = label_it->get<std::string>();
    } else if (label_it->is_number_integer()) {
      label = label_it->dump();  // 3 -> "3": integer class ids are common in JSONL data
    } else {
      return bad(number, "field '" + options.label_field +
                             "' must be a string or an integer, found " + json_type(*label_it));
    }
    if (label.empty()) return bad(number, "empty label (field '" + options.label_field + "')");
    data.examples.push_back({text_it->get<std::string>(), std::move(label)});
  });
}

}  // namespace

ClassificationData load_classification_file(const std::string& path,
                                            const ClassificationFileOptions& options) {
  if (options.on_error != "error" && options.on_error != "skip") {
    throw std::invalid_argument("unknown on_error '" + options.on_error +
                                "' (expected error or skip)");
  }
  const std::string format = resolve_format(path, options.format);
  std::string text = detail::read_file(path, "data");
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // spreadsheets write a BOM

  ClassificationData data;
  const bool skip = options.on_error == "skip";
  const std::function<void(int64_t, const std::string&)> bad = [&](int64_t line,
                                                                   const std::string& what) {
    if (!skip) throw InputError(detail::where(path, line) + ": " + what);
    ++data.skipped;
  };

  if (format == "jsonl") {
    load_jsonl(path, text, options, data, bad);
  } else if (format == "tsv") {
    DelimitedLoader loader(path, options, "tab");
    detail::for_each_line(text, [&](std::string_view line, int64_t number) {
      if (is_blank(line)) return;
      loader.add(Record{number, split_tabs(line)}, data, bad);
    });
    loader.finish();
  } else {
    DelimitedLoader loader(path, options, "comma");
    CsvReader reader(text);
    Record record;
    while (true) {
      try {
        if (!reader.next(record)) break;
      } catch (const CsvReader::BadRecord& e) {
        if (!loader.has_header()) {  // without the header no later record can be read
          throw InputError(detail::where(path, e.line) + ": " + e.what);
        }
        bad(e.line, e.what);
        continue;
      }
      loader.add(record, data, bad);
    }
    loader.finish();
  }
  return data;
}

LabelMap::LabelMap(std::vector<std::string> names) : names_(std::move(names)) {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i].empty())
      throw std::invalid_argument("LabelMap: label " + std::to_string(i) + " is empty");
    if (!index_.emplace(names_[i], static_cast<int64_t>(i)).second) {
      throw std::invalid_argument("LabelMap: label '" + names_[i] + "' appears twice");
    }
  }
}

LabelMap LabelMap::from_examples(const std::vector<TextExample>& examples) {
  std::vector<std::string> names;
  names.reserve(examples.size());
  for (const auto& e : examples) names.push_back(e.label);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return LabelMap(std::move(names));
}

int64_t LabelMap::id(const std::string& label) const {
  auto it = index_.find(label);
  if (it == index_.end()) {
    throw InputError("unknown label '" + label + "' (known labels: " + join(names_) + ")");
  }
  return it->second;
}

std::vector<int64_t> LabelMap::ids(const std::vector<TextExample>& examples) const {
  std::vector<int64_t> out;
  out.reserve(examples.size());
  for (const auto& e : examples) out.push_back(id(e.label));
  return out;
}

const std::string& LabelMap::name(int64_t id) const {
  TORCH_CHECK(id >= 0 && id < size(), "LabelMap: id ", id, " out of range [0, ", size(), ")");
  return names_[static_cast<size_t>(id)];
}

nlohmann::json LabelMap::to_json() const { return nlohmann::json(names_); }

LabelMap LabelMap::from_json(const nlohmann::json& value) {
  if (!value.is_array()) {
    throw std::invalid_argument("LabelMap: expected a JSON array of label names, found " +
                                std::string(value.type_name()));
  }
  std::vector<std::string> names;
  for (const auto& item : value) {
    if (!item.is_string()) {
      throw std::invalid_argument("LabelMap: expected label names to be strings, found " +
                                  std::string(item.type_name()));
    }
    names.push_back(item.get<std::string>());
  }
  return LabelMap(std::move(names));
}

void LabelMap::save(const std::string& path) const {
  write_file_atomic(path, to_json().dump() + "\n");
}

LabelMap LabelMap::load(const std::string& path) {
  const std::string text = detail::read_file(path, "label map");
  try {
    return from_json(nlohmann::json::parse(text));
  } catch (const std::exception& e) {
    throw InputError(path + ": " + e.what());
  }
}

std::vector<std::string> read_documents(const std::string& path,
                                        const ClassificationFileOptions& options) {
  const std::string ext = std::filesystem::path(path).extension().string();
  const bool table =
      options.format != "auto" || ext == ".tsv" || ext == ".csv" || ext == ".jsonl";
  std::vector<std::string> docs;
  if (table) {
    for (auto& e : load_classification_file(path, options).examples) docs.push_back(std::move(e.text));
  } else {
    const std::string text = detail::read_file(path, "data");
    detail::for_each_line(text, [&](std::string_view line, int64_t) {
      if (!line.empty()) docs.emplace_back(line);
    });
  }
  if (docs.empty()) throw InputError("data file has no text: " + path);
  return docs;
}

}  // namespace nlpkit
