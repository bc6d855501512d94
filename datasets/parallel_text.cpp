#include "datasets/parallel_text.h"

#include <stdexcept>

#include "datasets/file_io.h"
#include "datasets/input_error.h"
#include "datasets/tokenizers.h"

namespace nlpkit {

namespace {

bool blank(const std::string& text) {
  for (char32_t cp : utf8_decode(text)) {
    if (!is_whitespace(cp)) return false;
  }
  return true;
}

}  // namespace

ParallelFile read_parallel_tsv(const std::string& path, const std::string& on_error) {
  std::string content;
  try {
    content = detail::read_file(path, "data");
  } catch (const std::runtime_error& e) {
    throw InputError(e.what());  // a missing data file is the user's input, exit code 2
  }
  ParallelFile out;
  size_t pos = 0;
  int64_t line_number = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line_number == 1 && line == "source\ttarget") continue;
    const size_t tab = line.find('\t');
    std::string problem;
    if (tab == std::string::npos) {
      problem = "expected source<TAB>target, found no tab";
    } else if (blank(line.substr(0, tab))) {
      problem = "empty source";
    } else if (blank(line.substr(tab + 1))) {
      problem = "empty target";
    }
    if (!problem.empty()) {
      if (on_error == "skip") {
        ++out.skipped;
        continue;
      }
      throw InputError(path + ":" + std::to_string(line_number) + ": " + problem +
                       " (data.on_error: skip leaves such lines out)");
    }
    out.pairs.push_back({line.substr(0, tab), line.substr(tab + 1), line_number});
  }
  if (out.pairs.empty()) throw InputError(path + ": no source<TAB>target pairs");
  return out;
}

std::vector<std::string> split_tokens(const std::string& text, const std::string& kind) {
  std::vector<std::string> tokens;
  if (kind == "char") {
    for (char32_t cp : utf8_decode(text)) {
      if (is_whitespace(cp)) continue;
      std::string token;
      utf8_append(token, cp);
      tokens.push_back(std::move(token));
    }
  } else if (kind == "whitespace") {
    std::string token;
    for (char32_t cp : utf8_decode(text)) {
      if (is_whitespace(cp)) {
        if (!token.empty()) tokens.push_back(std::move(token));
        token.clear();
      } else {
        utf8_append(token, cp);
      }
    }
    if (!token.empty()) tokens.push_back(std::move(token));
  } else {
    throw std::invalid_argument("split_tokens: kind must be char or whitespace, got '" + kind +
                                "'");
  }
  return tokens;
}

std::string join_tokens(const std::vector<std::string>& tokens, const std::string& kind) {
  std::string out;
  for (const auto& t : tokens) {
    if (!out.empty() && kind != "char") out += ' ';
    out += t;
  }
  return out;
}

}  // namespace nlpkit
