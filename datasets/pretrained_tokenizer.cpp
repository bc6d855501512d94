#include "datasets/pretrained_tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "datasets/file_io.h"
#include "datasets/input_error.h"
#include "datasets/sentencepiece.h"
#include "datasets/wordpiece.h"

namespace fs = std::filesystem;

namespace nlpkit {
namespace {

/// do_lower_case from the folder's tokenizer_config.json, when it says.
std::optional<bool> folder_lowercase(const std::string& dir) {
  const fs::path file = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(file)) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(detail::read_file(file.string(), "tokenizer config"));
    if (j.contains("do_lower_case") && j["do_lower_case"].is_boolean()) {
      return j["do_lower_case"].get<bool>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file.string() + ": invalid JSON: " + e.what());
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<SubwordTokenizer> load_pretrained_tokenizer(const std::string& dir, bool lowercase,
                                                            const std::string& prefer) {
  const std::string spm = (fs::path(dir) / "spm.model").string();
  const std::string vocab = (fs::path(dir) / "vocab.txt").string();
  const bool has_spm = fs::exists(spm), has_vocab = fs::exists(vocab);
  if (!has_spm && !has_vocab) {
    throw InputError(dir + " has no vocab.txt (BERT's WordPiece vocabulary) nor spm.model "
                     "(DeBERTa-v3's SentencePiece model)");
  }
  const std::optional<bool> folder = folder_lowercase(dir);
  if (has_spm && (!has_vocab || prefer == "sentencepiece")) {
    SentencePieceOptions options;
    options.lower_case = folder.value_or(false);
    return std::make_unique<SentencePieceTokenizer>(
        SentencePieceTokenizer::from_file(spm, options));
  }
  WordPieceOptions options;
  options.lower_case = folder.value_or(lowercase);
  return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(vocab, options));
}

}  // namespace nlpkit
