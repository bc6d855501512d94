#include "datasets/sentencepiece.h"

#include <dlfcn.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "datasets/file_io.h"
#include "datasets/input_error.h"
#include "datasets/sentencepiece_backend.h"

namespace nlpkit {
namespace {

constexpr std::string_view kWordStart = "\xE2\x96\x81";  // U+2581 "▁"
constexpr std::string_view kSpaces = " \t\n\r\f\v";

/// SentencePiece's messages start with the source line and the failed check
/// ("./src/x.cc(660) [(a) == (b)] Vocabulary size too high ..."): keep the sentence only.
std::string status_message(std::string m) {
  const size_t check = m.rfind("] ");
  if (m.rfind("./src/", 0) == 0 && check != std::string::npos) m.erase(0, check + 2);
  if (m.rfind("./src/", 0) == 0) m.clear();  // a failed check without a sentence
  return m;
}

std::string_view trim(std::string_view s, bool left, bool right) {
  if (left) {
    const size_t first = s.find_first_not_of(kSpaces);
    s.remove_prefix(first == std::string_view::npos ? s.size() : first);
  }
  if (right) {
    const size_t last = s.find_last_not_of(kSpaces);
    s = s.substr(0, last == std::string_view::npos ? 0 : last + 1);
  }
  return s;
}

}  // namespace

namespace detail {

const SpmBackend& sentencepiece_backend() {
  static const SpmBackend* backend = [] {
    namespace fs = std::filesystem;
    const char* name = "libnlpkit_sentencepiece.so";
    std::vector<std::string> candidates;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) candidates.push_back((exe.parent_path() / name).string());
    candidates.push_back(NLPKIT_SENTENCEPIECE_BACKEND);
    std::string tried;
    for (const auto& path : candidates) {
      tried += (tried.empty() ? "" : ", ") + path;
      if (!fs::exists(path)) continue;
      // RTLD_DEEPBIND: libsentencepiece binds to its own protobuf, not to LibTorch's.
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!handle) throw std::runtime_error(std::string("cannot load ") + path + ": " + dlerror());
      using Entry = const SpmBackend* (*)();
      auto entry = reinterpret_cast<Entry>(dlsym(handle, "nlpkit_sentencepiece_backend"));
      if (!entry) throw std::runtime_error(path + " lacks nlpkit_sentencepiece_backend()");
      return entry();
    }
    throw std::runtime_error(std::string("the SentencePiece backend ") + name +
                             " is missing (looked for " + tried + "; build nlpkit again)");
  }();
  return *backend;
}

}  // namespace detail

// ---------------------------------------------------------------------------- the tokenizer

SentencePieceTokenizer SentencePieceTokenizer::from_file(const std::string& spm_model,
                                                         SentencePieceOptions options) {
  return from_bytes(detail::read_file(spm_model, "SentencePiece model"), spm_model, options);
}

SentencePieceTokenizer SentencePieceTokenizer::from_bytes(std::string bytes,
                                                          const std::string& name,
                                                          SentencePieceOptions options) {
  if (bytes.empty()) throw InputError(name + ": empty file, not a SentencePiece model");
  std::string error;
  std::shared_ptr<const detail::SpmModel> sp(detail::sentencepiece_backend().load(bytes, &error));
  if (!sp || sp->piece_size() == 0) {
    const std::string why = sp ? "no pieces" : status_message(error);
    throw InputError(name + ": not a SentencePiece model (spm.model)" +
                     (why.empty() ? "" : ": " + why));
  }
  return SentencePieceTokenizer(std::move(sp), std::make_shared<const std::string>(std::move(bytes)),
                                options);
}

SentencePieceTokenizer::SentencePieceTokenizer(
    std::shared_ptr<const detail::SpmModel> sp,
    std::shared_ptr<const std::string> bytes, SentencePieceOptions options)
    : sp_(std::move(sp)), bytes_(std::move(bytes)), options_(options) {
  pieces_ = sp_->piece_size();
  tokens_.reserve(pieces_ + 4);
  for (int i = 0; i < pieces_; ++i) tokens_.push_back(sp_->id_to_piece(i));
  unk_id_ = sp_->unk_id();
  // The model's piece when it has one, else an added token after the pieces (HuggingFace's
  // sanitize_special_tokens adds them in this order).
  auto special = [&](const char* token) -> int64_t {
    const int id = sp_->piece_to_id(token);
    if (tokens_[id] == token) return id;
    tokens_.push_back(token);
    return static_cast<int64_t>(tokens_.size()) - 1;
  };
  cls_id_ = special(kCls);
  sep_id_ = special(kSep);
  pad_id_ = special(kPad);
  mask_id_ = special(kMask);
  continues_.resize(tokens_.size(), 0);
  for (int i = 0; i < pieces_; ++i) {
    continues_[i] = !is_special_id(i) && !sp_->is_control(i) && !sp_->is_unknown(i) &&
                    tokens_[i].compare(0, kWordStart.size(), kWordStart) != 0;
  }
}

template <class Chunk, class Special>
void SentencePieceTokenizer::split_specials(const std::string& text, Chunk&& chunk,
                                            Special&& special) const {
  const std::array<std::pair<std::string_view, int64_t>, 5> specials = {
      {{kPad, pad_id_}, {kUnk, unk_id_}, {kCls, cls_id_}, {kSep, sep_id_}, {kMask, mask_id_}}};
  const std::string_view all(text);
  size_t start = 0;  // of the current chunk
  bool after_special = false;
  for (size_t pos = all.find('['); pos != std::string_view::npos; pos = all.find('[', pos)) {
    int64_t id = -1;
    size_t length = 0;
    for (const auto& [token, token_id] : specials) {
      if (all.compare(pos, token.size(), token) == 0) {
        id = token_id;
        length = token.size();
        break;
      }
    }
    if (id < 0) {
      ++pos;
      continue;
    }
    // HuggingFace strips the whitespace on both sides of a no-split special token.
    const std::string_view before = trim(all.substr(start, pos - start), after_special, true);
    if (!before.empty()) chunk(before);
    special(id);
    after_special = true;
    start = pos = pos + length;
  }
  const std::string_view rest = trim(all.substr(start), after_special, false);
  if (!rest.empty()) chunk(rest);
}

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens, pieces;
  split_specials(
      text,
      [&](std::string_view chunk) {
        if (options_.lower_case) {
          sp_->encode_pieces(utf8_to_lower(std::string(chunk)), &pieces);
        } else {
          sp_->encode_pieces(chunk, &pieces);
        }
        for (auto& p : pieces) tokens.push_back(std::move(p));
      },
      [&](int64_t id) { tokens.push_back(tokens_[id]); });
  return tokens;
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  std::vector<int> pieces;
  split_specials(
      text,
      [&](std::string_view chunk) {
        if (options_.lower_case) {
          sp_->encode_ids(utf8_to_lower(std::string(chunk)), &pieces);
        } else {
          sp_->encode_ids(chunk, &pieces);
        }
        ids.insert(ids.end(), pieces.begin(), pieces.end());
      },
      [&](int64_t id) { ids.push_back(id); });
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids,
                                           bool skip_special_tokens) const {
  // HuggingFace's SPMTokenizer.decode over the tokens left after skipping: special tokens are
  // never given to SentencePiece (it would drop control pieces).
  std::string text, piece_text;
  std::vector<int> run;
  bool previous_special = false;
  for (int64_t id : ids) {
    const std::string& token = id_to_token(id);  // throws for an id outside the vocabulary
    if (!is_special_id(id)) {
      run.push_back(static_cast<int>(id));
      previous_special = false;
      continue;
    }
    if (skip_special_tokens) continue;
    if (!previous_special) text += ' ';
    sp_->decode(run, &piece_text);
    text += piece_text + token;
    run.clear();
    previous_special = true;
  }
  sp_->decode(run, &piece_text);
  text += piece_text;
  text = std::string(trim(text, true, true));
  detail::clean_up_tokenization(text);
  return text;
}

int64_t SentencePieceTokenizer::token_to_id(const std::string& token) const {
  for (int64_t id = pieces_; id < static_cast<int64_t>(tokens_.size()); ++id) {
    if (tokens_[id] == token) return id;
  }
  return sp_->piece_to_id(token);  // the unknown piece's id when absent
}

const std::string& SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw InputError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_size()) + ")");
  }
  return tokens_[id];
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return static_cast<int64_t>(tokens_.size());
}

bool SentencePieceTokenizer::continues_word(int64_t id) const {
  id_to_token(id);
  return continues_[id] != 0;
}

int64_t SentencePieceTokenizer::piece_size() const { return pieces_; }

float SentencePieceTokenizer::score(int64_t id) const {
  id_to_token(id);
  return id < pieces_ ? sp_->score(static_cast<int>(id)) : 0.0f;
}

void SentencePieceTokenizer::save_model(const std::string& path) const {
  write_file_atomic(path, *bytes_);
}

void SentencePieceTokenizer::save_vocab(const std::string& path) const {
  std::ostringstream out;
  for (int64_t id = 0; id < vocab_size(); ++id) out << tokens_[id] << '\t' << score(id) << '\n';
  write_file_atomic(path, out.str());
}

void SentencePieceTokenizer::save_pretrained(const std::string& dir,
                                             int64_t model_max_length) const {
  save_model(dir + "/spm.model");
  nlohmann::json tc = {{"do_lower_case", options_.lower_case},
                       {"tokenizer_class", "DebertaV2Tokenizer"},
                       {"vocab_type", "spm"},
                       {"split_by_punct", false},
                       {"model_max_length", model_max_length}};
  write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2) + "\n");
  nlohmann::json st = {{"bos_token", kCls},  {"eos_token", kSep}, {"unk_token", tokens_[unk_id_]},
                       {"sep_token", kSep},  {"pad_token", kPad}, {"cls_token", kCls},
                       {"mask_token", kMask}};
  write_file_atomic(dir + "/special_tokens_map.json", st.dump(2) + "\n");
  nlohmann::ordered_json added = nlohmann::ordered_json::object();
  for (int64_t id = pieces_; id < vocab_size(); ++id) added[tokens_[id]] = id;
  const std::string added_path = dir + "/added_tokens.json";
  if (!added.empty()) {
    write_file_atomic(added_path, added.dump(2) + "\n");
  } else {
    std::remove(added_path.c_str());  // a stale one would renumber the tokens
  }
}

// ---------------------------------------------------------------------------- the trainer

SentencePieceTokenizer train_sentencepiece(const std::vector<std::string>& lines,
                                           int64_t vocab_size,
                                           const SentencePieceTrainOptions& options) {
  if (vocab_size < 6) {
    throw InputError("SentencePiece vocab_size must be at least 6 (5 special tokens and a "
                     "piece), found " +
                     std::to_string(vocab_size));
  }
  if (options.model_type != "unigram" && options.model_type != "bpe") {
    throw InputError("SentencePiece model_type must be unigram or bpe, found '" +
                     options.model_type + "'");
  }
  if (options.threads < 1) {
    throw InputError("SentencePiece training threads must be at least 1, found " +
                     std::to_string(options.threads));
  }
  bool has_text = false;
  for (const auto& line : lines) {
    if (line.find_first_not_of(kSpaces) != std::string::npos) {
      has_text = true;
      break;
    }
  }
  if (!has_text) throw InputError("SentencePiece training: the corpus has no text");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(vocab_size)},
      // DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK], here followed by [MASK].
      {"pad_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", "[PAD]"},
      {"bos_piece", "[CLS]"},
      {"eos_piece", "[SEP]"},
      {"unk_piece", "[UNK]"},
      {"normalization_rule_name", options.lower_case ? "nmt_nfkc_cf" : "nmt_nfkc"},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"num_threads", std::to_string(options.threads)},
      // Mail bodies and documents are often one long line; SentencePiece drops lines over
      // 4192 bytes by default.
      {"max_sentence_length", std::to_string(1 << 20)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      // No log lines: see datasets/sentencepiece_backend.cpp (kQuiet).
      {"minloglevel", "3"},
  };
  if (options.mask_piece) args["user_defined_symbols"] = "[MASK]";
  std::string model, error;
  if (!detail::sentencepiece_backend().train(args, lines, &model, &error)) {
    throw InputError("SentencePiece training failed: " + status_message(error));
  }
  return SentencePieceTokenizer::from_bytes(std::move(model), "trained SentencePiece model");
}

}  // namespace nlpkit
