#include "datasets/vocab.h"
#include "datasets/input_error.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "datasets/file_io.h"

namespace nlpkit {
namespace {

// Splits a line into fields separated by runs of spaces or tabs (word2vec's own writer leaves
// a trailing space on every line).
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

bool parse_int(std::string_view s, int64_t& value) {
  const auto result = std::from_chars(s.data(), s.data() + s.size(), value);
  return result.ec == std::errc() && result.ptr == s.data() + s.size();
}

bool parse_float(std::string_view s, float& value) {
  const auto result = std::from_chars(s.data(), s.data() + s.size(), value);
  return result.ec == std::errc() && result.ptr == s.data() + s.size();
}

}  // namespace

Vocab::Vocab(std::vector<std::string> tokens, std::string pad_token, std::string unk_token)
    : tokens_(std::move(tokens)),
      pad_token_(std::move(pad_token)),
      unk_token_(std::move(unk_token)) {
  index_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& t = tokens_[i];
    TORCH_CHECK(!t.empty(), "Vocab: token ", i, " is empty");
    TORCH_CHECK(t.find_first_of("\r\n") == std::string::npos, "Vocab: token ", i,
                " contains a line break (a vocab file holds one token per line)");
    const bool inserted = index_.emplace(t, static_cast<int64_t>(i)).second;
    TORCH_CHECK(inserted, "Vocab: token '", t, "' appears twice (ids ", index_.at(t), " and ", i,
                ")");
  }
  auto find = [&](const std::string& t) -> int64_t {
    auto it = index_.find(t);
    return it == index_.end() ? -1 : it->second;
  };
  pad_id_ = find(pad_token_);
  unk_id_ = find(unk_token_);
}

Vocab Vocab::from_counts(const std::unordered_map<std::string, int64_t>& counts,
                         const VocabOptions& options) {
  const int64_t num_specials = static_cast<int64_t>(options.specials.size());
  TORCH_CHECK(options.max_size >= 0, "VocabOptions: max_size (", options.max_size,
              ") must be >= 0 (0 = no limit)");
  TORCH_CHECK(options.max_size == 0 || options.max_size >= num_specials, "VocabOptions: max_size (",
              options.max_size, ") must leave room for the ", num_specials, " special tokens");
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(counts.size());
  for (const auto& [token, count] : counts) {
    if (count < options.min_freq) continue;
    if (std::find(options.specials.begin(), options.specials.end(), token) !=
        options.specials.end()) {
      continue;  // a special keeps its fixed place at the front
    }
    entries.emplace_back(token, count);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> tokens = options.specials;
  const size_t limit =
      options.max_size > 0 ? static_cast<size_t>(options.max_size) : tokens.size() + entries.size();
  for (auto& entry : entries) {
    if (tokens.size() >= limit) break;
    tokens.push_back(std::move(entry.first));
  }
  return Vocab(std::move(tokens), options.pad_token, options.unk_token);
}

Vocab Vocab::from_documents(const std::vector<std::vector<std::string>>& documents,
                            const VocabOptions& options) {
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& document : documents) {
    for (const auto& token : document) ++counts[token];
  }
  return from_counts(counts, options);
}

int64_t Vocab::id(const std::string& token) const {
  auto it = index_.find(token);
  if (it != index_.end()) return it->second;
  if (unk_id_ < 0) {
    throw std::out_of_range("Vocab: token '" + token + "' is not in the vocabulary, which has " +
                            "no unk token '" + unk_token_ + "'");
  }
  return unk_id_;
}

std::vector<int64_t> Vocab::ids(const std::vector<std::string>& tokens) const {
  std::vector<int64_t> out;
  out.reserve(tokens.size());
  for (const auto& t : tokens) out.push_back(id(t));
  return out;
}

const std::string& Vocab::token(int64_t id) const {
  TORCH_CHECK(id >= 0 && id < size(), "Vocab: id ", id, " out of range [0, ", size(), ")");
  return tokens_[static_cast<size_t>(id)];
}

void Vocab::save(const std::string& path) const {
  std::string content;
  for (const auto& t : tokens_) {
    content += t;
    content += '\n';
  }
  write_file_atomic(path, content);
}

Vocab Vocab::load(const std::string& path, const std::string& pad_token,
                  const std::string& unk_token) {
  const std::string text = detail::read_file(path, "vocab");
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int64_t> first_line;
  detail::for_each_line(text, [&](std::string_view line, int64_t number) {
    if (line.empty()) throw InputError(detail::where(path, number) + ": empty token");
    std::string token(line);
    auto [it, inserted] = first_line.emplace(token, number);
    if (!inserted) {
      throw InputError(detail::where(path, number) + ": duplicate token '" + token +
                               "' (first on line " + std::to_string(it->second) + ")");
    }
    tokens.push_back(std::move(token));
  });
  return Vocab(std::move(tokens), pad_token, unk_token);
}

torch::Tensor load_word2vec_text(const std::string& path, const Vocab& vocab, int64_t dim,
                                 int64_t* found) {
  TORCH_CHECK(dim > 0, "load_word2vec_text: dim (", dim, ") must be positive");
  const std::string text = detail::read_file(path, "word vectors");
  torch::Tensor weights = torch::zeros({vocab.size(), dim}, torch::kFloat32);
  auto rows = weights.accessor<float, 2>();
  std::vector<bool> filled(static_cast<size_t>(vocab.size()), false);
  int64_t num_found = 0;
  int64_t header_count = -1;
  int64_t num_vectors = 0;
  auto error = [&](int64_t line, const std::string& what) {
    return InputError(detail::where(path, line) + ": " + what);
  };
  detail::for_each_line(text, [&](std::string_view line, int64_t number) {
    if (number == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // BOM
    const std::vector<std::string_view> fields = split_fields(line);
    if (fields.empty()) return;  // blank lines carry nothing
    int64_t count = 0, header_dim = 0;
    if (number == 1 && fields.size() == 2 && parse_int(fields[0], count) &&
        parse_int(fields[1], header_dim)) {
      if (header_dim != dim) {
        throw error(number, "the header says vectors have " + std::to_string(header_dim) +
                                " values but dim is " + std::to_string(dim));
      }
      header_count = count;
      return;
    }
    ++num_vectors;
    const std::string word(fields[0]);
    const int64_t num_values = static_cast<int64_t>(fields.size()) - 1;
    if (num_values != dim) {
      throw error(number, "expected " + std::to_string(dim) + " values for '" + word + "', found " +
                              std::to_string(num_values));
    }
    float value = 0;
    const int64_t id = vocab.contains(word) ? vocab.id(word) : -1;
    const bool take = id >= 0 && !filled[static_cast<size_t>(id)];
    for (int64_t j = 0; j < dim; ++j) {
      const std::string_view field = fields[static_cast<size_t>(j + 1)];
      if (!parse_float(field, value)) {
        throw error(number, "bad number '" + std::string(field) + "' (value " +
                                std::to_string(j + 1) + " of '" + word + "')");
      }
      if (take) rows[id][j] = value;
    }
    if (take) {
      filled[static_cast<size_t>(id)] = true;
      ++num_found;
    }
  });
  if (header_count >= 0 && header_count != num_vectors) {
    throw InputError(path + ": the header says " + std::to_string(header_count) +
                             " vectors but the file holds " + std::to_string(num_vectors) +
                             " (truncated download?)");
  }
  if (found != nullptr) *found = num_found;
  return weights;
}

}  // namespace nlpkit
