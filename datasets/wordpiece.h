// WordPiece: BERT's subword tokenizer (Devlin et al. 2019; WordPiece from Schuster & Nakajima
// 2012 and Wu et al. 2016) and a trainer for its vocabulary.
//
// Tokenization matches HuggingFace's BertTokenizer (transformers, models/bert/
// tokenization_bert.py: BasicTokenizer + WordpieceTokenizer, driven by
// PreTrainedTokenizer.tokenize as BertTokenizer.from_pretrained sets it up), token for token:
//   1. [PAD] [UNK] [CLS] [SEP] [MASK] written verbatim are cut out first and kept whole;
//   2. lower_case: the rest is lowercased one code point at a time (HF's re.sub over "(.+?)"),
//      so U+0130 İ becomes "i" + U+0307 and Σ always becomes σ;
//   3. NUL, U+FFFD and every category C* character but TAB/LF/CR are dropped; TAB, LF, CR and Zs
//      become spaces; CJK ideographs get spaces around them;
//   4. split on whitespace (Python's str.split(): spaces and U+2028/U+2029);
//   5. lower_case: per word, NFD and drop Mn (accent stripping);
//   6. every punctuation character (ASCII symbols and P*) becomes a word of its own;
//   7. per word: more than max_input_chars_per_word code points -> [UNK]; else greedy
//      longest-match-first with "##" continuations; a word with an unmatched position -> [UNK].
// Unicode categories, lowercase and NFD come from utf8proc (Unicode 15.0); HuggingFace's tables
// are Python's (Unicode 14.0 in Python 3.11), so the 4,489 code points assigned in Unicode 15.0
// differ: Python drops them as unassigned (Cn), nlpkit keeps them as characters.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "datasets/subword_tokenizer.h"

namespace nlpkit {

struct WordPieceOptions {
  /// HF do_lower_case: lowercase and strip accents (as HF does when strip_accents is None).
  bool lower_case = true;
  /// Put spaces around CJK ideographs, so that each is a word of its own.
  bool tokenize_chinese_chars = true;
  /// Longer words (in code points, after the punctuation split) become [UNK].
  int64_t max_input_chars_per_word = 100;
};

/// BERT's tokenizer over a vocab.txt vocabulary. Thread-safe: every method is const.
///   auto tok = WordPieceTokenizer::from_file("vocab.txt");
///   tok.tokenize("Héllo, [MASK]ed!") == {"hello", ",", "[MASK]", "ed", "!"}  // with that vocab
///   Encoding e = tok.encode_pair("a question", &answer, /*max_length=*/128, /*pad=*/true);
class WordPieceTokenizer : public SubwordTokenizer {
 public:
  /// `vocab[i]` is the token of id i. Throws InputError when it is empty, holds an empty or
  /// duplicate entry, or lacks one of [PAD] [UNK] [CLS] [SEP] [MASK] (naming what is missing).
  explicit WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});

  /// Reads a BERT vocab.txt: one token per line, id = 0-based line number; LF, CRLF or CR line
  /// ends, a leading UTF-8 byte order mark is ignored. Throws InputError naming the file (and
  /// "PATH:LINE" for an empty line, invalid UTF-8 or a duplicate, which HuggingFace would load
  /// silently with a shifted or lost id).
  static WordPieceTokenizer from_file(const std::string& vocab_txt, WordPieceOptions options = {});

  /// Tokens of `text`, equal to HuggingFace's BertTokenizer.tokenize (no [CLS]/[SEP] added).
  std::vector<std::string> tokenize(const std::string& text) const override;
  /// Ids of `tokens`; unk_id() for tokens not in the vocabulary.
  std::vector<int64_t> convert_tokens_to_ids(const std::vector<std::string>& tokens) const;
  /// Ids of tokenize(text), without special tokens (faster than tokenize + convert).
  std::vector<int64_t> encode(const std::string& text) const override;

  /// Text of `ids` as HuggingFace's decode: tokens joined by spaces, "##" continuations glued
  /// to their word, then clean_up_tokenization_spaces (" ." -> ".", " n't" -> "n't", ...).
  /// skip_special_tokens drops [PAD] [UNK] [CLS] [SEP] [MASK]. Throws InputError for an id
  /// outside [0, vocab_size).
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = true) const override;

  /// Id of `token`; unk_id() when absent.
  int64_t token_to_id(const std::string& token) const override;
  /// Token of `id`; throws InputError when id is outside [0, vocab_size).
  const std::string& id_to_token(int64_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  const char* type() const override { return "wordpiece"; }
  /// True for "##" continuations ("##s", not "##" itself).
  bool continues_word(int64_t id) const override;
  const std::vector<std::string>& vocab() const { return vocab_; }
  const WordPieceOptions& options() const { return options_; }

  /// Writes vocab.txt (one token per line) atomically: a reader never sees half a file.
  void save_vocab(const std::string& path) const;
  /// vocab.txt, tokenizer_config.json (do_lower_case, tokenizer_class BertTokenizer,
  /// model_max_length) and special_tokens_map.json.
  void save_pretrained(const std::string& dir, int64_t model_max_length) const override;

 private:
  /// Calls emit(id) for every token of `text`.
  template <class Emit>
  void run(const std::string& text, Emit&& emit) const;
  /// Greedy longest-match-first over one word (code points); emit(id) per piece.
  template <class Emit>
  void wordpiece(const std::u32string& word, std::string& utf8, std::vector<size_t>& offsets,
                 std::string& key, std::vector<int64_t>& pieces, Emit&& emit) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> index_;
  WordPieceOptions options_;
  /// Longest entry in code points, word-initial and "##" continuation (without the "##"):
  /// longer candidates cannot match, so the greedy search starts there.
  int64_t max_initial_chars_ = 0, max_continuation_chars_ = 0;
};

/// Progress of train_wordpiece: stage "count" (done = lines read, total = lines) then "merge"
/// (done = vocabulary size so far, total = the vocab_size asked for).
using WordPieceProgress = std::function<void(const char* stage, int64_t done, int64_t total)>;

/// Learns a WordPiece vocabulary from text lines, pre-tokenized with the tokenizer's own rules
/// (the 7 steps above up to the punctuation split): the alphabet (each character seen at the
/// start of a word, and "##" + each character seen inside one) and then, until vocab_size
/// entries, the merge of the adjacent pair (a, b) with the highest likelihood score
/// freq(ab) / (freq(a) * freq(b)) (Schuster & Nakajima; HuggingFace's course), ties broken by
/// higher freq(ab), then by the earlier-created pair. Pairs seen fewer than min_frequency times
/// are never merged. Words longer than max_input_chars_per_word are left out (they are [UNK]).
/// When the alphabet alone exceeds vocab_size - 5, its most frequent entries are kept and the
/// words using the others are left out. Returns [PAD] [UNK] [CLS] [SEP] [MASK], the alphabet
/// (by code point, word-initial then "##"), then the merges in the order learnt; it has fewer
/// than vocab_size entries when no pair is left to merge. Throws InputError for vocab_size < 6,
/// min_frequency < 1 or a corpus without words.
///   WordPieceTokenizer tok(train_wordpiece(lines, 8000, {}), {});
std::vector<std::string> train_wordpiece(const std::vector<std::string>& lines, int64_t vocab_size,
                                         const WordPieceOptions& options, int64_t min_frequency = 2,
                                         const WordPieceProgress& progress = {});

}  // namespace nlpkit
