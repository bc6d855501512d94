#include "datasets/word_vectors.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <set>

#include "datasets/file_io.h"
#include "datasets/input_error.h"

namespace nlpkit {
namespace {

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

/// Checks a word before it goes into a file whose fields are separated by spaces.
void check_word(const std::string& word, const std::string& path) {
  if (word.empty() || word.find_first_of(" \t\r\n") != std::string::npos) {
    throw InputError(path + ": cannot write the word '" + word +
                     "': words in word2vec files must be non-empty and free of whitespace");
  }
}

WordVectors finish(std::vector<std::string> words, std::vector<float> values, int64_t dim,
                   const std::string& path) {
  if (words.empty()) throw InputError(path + ": no word vectors in the file");
  WordVectors out;
  out.source = path;
  const auto n = static_cast<int64_t>(words.size());
  out.vectors = torch::from_blob(values.data(), {n, dim}, torch::kFloat32).clone();
  out.words = std::move(words);
  out.build_index();
  return out;
}

WordVectors load_text(const std::string& path) {
  const std::string text = detail::read_file(path, "word vectors");
  std::vector<std::string> words;
  std::vector<float> values;
  int64_t dim = -1, dim_line = 0, header_count = -1;
  auto error = [&](int64_t line, const std::string& what) {
    return InputError(detail::where(path, line) + ": " + what);
  };
  detail::for_each_line(text, [&](std::string_view line, int64_t number) {
    if (number == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);  // BOM
    const std::vector<std::string_view> fields = split_fields(line);
    if (fields.empty()) return;
    int64_t count = 0, header_dim = 0;
    if (number == 1 && fields.size() == 2 && parse_int(fields[0], count) &&
        parse_int(fields[1], header_dim)) {
      if (count < 0 || header_dim <= 0)
        throw error(number, "bad header '" + std::string(line) + "'");
      header_count = count;
      dim = header_dim;
      dim_line = number;
      return;
    }
    const std::string word(fields[0]);
    const auto num_values = static_cast<int64_t>(fields.size()) - 1;
    if (dim < 0) {
      if (num_values == 0) throw error(number, "'" + word + "' has no values");
      dim = num_values;  // no header (GloVe): the first vector decides
      dim_line = number;
    }
    if (num_values != dim) {
      throw error(number, "'" + word + "' has " + std::to_string(num_values) +
                              " values, expected " + std::to_string(dim) + " (as on line " +
                              std::to_string(dim_line) + ")");
    }
    for (int64_t j = 0; j < dim; ++j) {
      float v = 0;
      const std::string_view field = fields[static_cast<size_t>(j + 1)];
      if (!parse_float(field, v)) {
        throw error(number, "bad number '" + std::string(field) + "' (value " +
                                std::to_string(j + 1) + " of '" + word + "')");
      }
      values.push_back(v);
    }
    words.push_back(word);
  });
  if (header_count >= 0 && header_count != static_cast<int64_t>(words.size())) {
    throw InputError(path + ": the header says " + std::to_string(header_count) +
                     " vectors but the file holds " + std::to_string(words.size()) +
                     " (truncated?)");
  }
  return finish(std::move(words), std::move(values), std::max<int64_t>(dim, 1), path);
}

WordVectors load_binary(const std::string& path) {
  const std::string bytes = detail::read_file(path, "word vectors");
  const size_t eol = bytes.find('\n');
  const std::vector<std::string_view> header =
      split_fields(std::string_view(bytes).substr(0, eol == std::string::npos ? 0 : eol));
  int64_t count = 0, dim = 0;
  if (eol == std::string::npos || header.size() != 2 || !parse_int(header[0], count) ||
      !parse_int(header[1], dim) || count < 0 || dim <= 0) {
    throw InputError(detail::where(path, 1) +
                     ": expected a header 'COUNT DIM' (is this a word2vec binary file?)");
  }
  std::vector<std::string> words;
  std::vector<float> values(static_cast<size_t>(count * dim));
  size_t pos = eol + 1;
  for (int64_t i = 0; i < count; ++i) {
    while (pos < bytes.size() && (bytes[pos] == '\n' || bytes[pos] == ' ')) ++pos;
    const size_t space = bytes.find(' ', pos);
    const std::string where =
        path + ": vector " + std::to_string(i + 1) + " of " + std::to_string(count);
    if (pos >= bytes.size() || space == std::string::npos) {
      throw InputError(where + ": the file ends early (truncated?)");
    }
    std::string word = bytes.substr(pos, space - pos);
    pos = space + 1;
    const size_t need = static_cast<size_t>(dim) * sizeof(float);
    if (bytes.size() - pos < need) {
      throw InputError(where + " ('" + word + "'): expected " + std::to_string(dim) +
                       " float32 values, the file ends after " +
                       std::to_string((bytes.size() - pos) / sizeof(float)));
    }
    std::memcpy(values.data() + i * dim, bytes.data() + pos, need);
    pos += need;
    words.push_back(std::move(word));
  }
  while (pos < bytes.size() && (bytes[pos] == '\n' || bytes[pos] == ' ')) ++pos;
  if (pos != bytes.size()) {
    throw InputError(path + ": " + std::to_string(bytes.size() - pos) +
                     " bytes after the last of the header's " + std::to_string(count) +
                     " vectors (wrong dimension in the header?)");
  }
  return finish(std::move(words), std::move(values), dim, path);
}

/// Rows scaled to unit length (zero rows stay zero).
torch::Tensor unit_rows(const torch::Tensor& m) { return m / m.norm(2, 1, true).clamp_min(1e-12); }

std::vector<ScoredWord> best(const WordVectors& vectors, const torch::Tensor& scores,
                             const std::set<int64_t>& excluded, int64_t k) {
  torch::Tensor s = scores.clone();
  for (int64_t e : excluded) s[e] = -std::numeric_limits<float>::infinity();
  const int64_t n = std::min<int64_t>(k, vectors.size() - static_cast<int64_t>(excluded.size()));
  std::vector<ScoredWord> out;
  if (n <= 0) return out;
  const auto [values, indices] = s.topk(n);
  for (int64_t i = 0; i < n; ++i) {
    out.emplace_back(vectors.words[indices[i].item<int64_t>()], values[i].item<float>());
  }
  return out;
}

}  // namespace

int64_t WordVectors::index(const std::string& word) const {
  auto it = index_.find(word);
  if (it == index_.end()) {
    throw InputError("unknown word '" + word + "' (not among the " + std::to_string(size()) +
                     " words of " + source + ")");
  }
  return it->second;
}

void WordVectors::build_index() {
  index_.clear();
  index_.reserve(words.size());
  // The first vector of a repeated word wins, as in the other word2vec readers.
  for (size_t i = 0; i < words.size(); ++i) index_.emplace(words[i], static_cast<int64_t>(i));
}

std::string word_vectors_format(const std::string& path, const std::string& format) {
  if (format == "text" || format == "binary") return format;
  if (format != "auto") {
    throw InputError("unknown word vectors format '" + format +
                     "' (expected text, binary or auto)");
  }
  const bool bin = path.size() >= 4 && path.compare(path.size() - 4, 4, ".bin") == 0;
  return bin ? "binary" : "text";
}

void save_word_vectors(const std::string& path, const std::vector<std::string>& words,
                       const torch::Tensor& vectors, const std::string& format) {
  TORCH_CHECK(vectors.dim() == 2 && vectors.size(0) == static_cast<int64_t>(words.size()),
              "save_word_vectors: ", words.size(), " words for vectors of shape ", vectors.sizes());
  const torch::Tensor m = vectors.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t n = m.size(0), d = m.size(1);
  const float* data = m.data_ptr<float>();
  std::string out = std::to_string(n) + " " + std::to_string(d) + "\n";
  const bool binary = word_vectors_format(path, format) == "binary";
  out.reserve(out.size() + n * (binary ? d * 4 + 16 : d * 12 + 16));
  char buffer[64];
  for (int64_t i = 0; i < n; ++i) {
    check_word(words[i], path);
    out += words[i];
    out += ' ';
    const float* row = data + i * d;
    if (binary) {
      out.append(reinterpret_cast<const char*>(row), d * sizeof(float));
    } else {
      for (int64_t j = 0; j < d; ++j) {
        // Shortest text that reads back as the same float.
        const auto r = std::to_chars(buffer, buffer + sizeof buffer, row[j]);
        out.append(buffer, r.ptr);
        if (j + 1 < d) out += ' ';
      }
    }
    out += '\n';
  }
  write_file_atomic(path, out);
}

WordVectors load_word_vectors(const std::string& path, const std::string& format) {
  return word_vectors_format(path, format) == "binary" ? load_binary(path) : load_text(path);
}

std::vector<ScoredWord> nearest_neighbors(const WordVectors& vectors, const std::string& word,
                                          int64_t k) {
  const int64_t i = vectors.index(word);
  const torch::Tensor unit = unit_rows(vectors.vectors);
  return best(vectors, unit.mv(unit[i]), {i}, k);
}

std::vector<ScoredWord> analogy(const WordVectors& vectors, const std::string& a,
                                const std::string& b, const std::string& c, int64_t k) {
  const int64_t ia = vectors.index(a), ib = vectors.index(b), ic = vectors.index(c);
  const torch::Tensor unit = unit_rows(vectors.vectors);
  torch::Tensor query = unit[ib] - unit[ia] + unit[ic];
  query = query / query.norm().clamp_min(1e-12);
  return best(vectors, unit.mv(query), {ia, ib, ic}, k);
}

}  // namespace nlpkit
