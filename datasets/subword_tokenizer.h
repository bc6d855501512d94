// What BERT-style subword tokenizers share, whatever splits the text: the special tokens
// [PAD] [UNK] [CLS] [SEP] [MASK], one or two segments wrapped as [CLS] a [SEP] (b [SEP]) with
// token_type_ids, HuggingFace's longest_first truncation and padding. WordPiece (BERT,
// datasets/wordpiece.h) and SentencePiece (DeBERTa-v3, datasets/sentencepiece.h) derive from it,
// so that the BERT/DeBERTa tasks are written once against this interface. Both HuggingFace
// tokenizers build their inputs the same way (BertTokenizer and DebertaV2Tokenizer:
// build_inputs_with_special_tokens, create_token_type_ids_from_sequences, pad token type 0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/tokenizers.h"

namespace nlpkit {

/// One (possibly paired) example with special tokens: [CLS] a [SEP] (b [SEP]) [PAD]...
struct Encoding {
  std::vector<int64_t> input_ids, token_type_ids, attention_mask;
  std::vector<std::string> tokens;
};

/// Removes tokens from the end of the longer of `a` and `b` (from `b` on a tie), one at a
/// time, until a.size() + b.size() <= max_tokens: HuggingFace's longest_first truncation.
/// `b` may be null.
void truncate_longest_first(std::vector<int64_t>& a, std::vector<int64_t>* b, int64_t max_tokens);

/// A subword vocabulary with BERT's five special tokens. Thread-safe: every method is const.
///   const SubwordTokenizer& tok = ...;  // a WordPieceTokenizer or a SentencePieceTokenizer
///   Encoding e = tok.encode_pair("a question", &answer, /*max_length=*/128, /*pad=*/true);
class SubwordTokenizer : public Tokenizer {
 public:
  static constexpr const char* kPad = "[PAD]";
  static constexpr const char* kUnk = "[UNK]";
  static constexpr const char* kCls = "[CLS]";
  static constexpr const char* kSep = "[SEP]";
  static constexpr const char* kMask = "[MASK]";

  /// The tokenizer.type name: "wordpiece" or "sentencepiece".
  virtual const char* type() const = 0;
  /// Ids of the tokens of `text`, without [CLS]/[SEP] added.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  /// Text of `ids` as HuggingFace's tokenizer.decode; skip_special_tokens drops the five special
  /// tokens. Throws InputError for an id outside [0, vocab_size).
  virtual std::string decode(const std::vector<int64_t>& ids,
                             bool skip_special_tokens = true) const = 0;
  /// Id of `token`; unk_id() when absent.
  virtual int64_t token_to_id(const std::string& token) const = 0;
  /// Token of `id`; throws InputError when id is outside [0, vocab_size).
  virtual const std::string& id_to_token(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  /// True when token `id` continues the word of the token before it (WordPiece "##ing";
  /// SentencePiece: a piece without the word-start mark "▁"): whole-word masking keeps such
  /// tokens with their word. False for the special tokens.
  virtual bool continues_word(int64_t id) const = 0;
  /// Writes the tokenizer files of a HuggingFace model folder into `dir` atomically (vocab.txt or
  /// spm.model, tokenizer_config.json, special_tokens_map.json, ...), so that
  /// AutoTokenizer.from_pretrained(dir) and load_pretrained_tokenizer(dir) read them back.
  virtual void save_pretrained(const std::string& dir, int64_t model_max_length) const = 0;

  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  int64_t mask_id() const { return mask_id_; }
  /// True for the ids of [PAD] [UNK] [CLS] [SEP] [MASK].
  bool is_special_id(int64_t id) const;

  /// [CLS] a [SEP] (b [SEP]); token_type_ids 0 for [CLS] a [SEP], 1 for b [SEP]. With
  /// max_length > 0 the pair is truncated longest_first (one token at a time from the longer
  /// side; from b on a tie) to fit max_length with its special tokens, and padded to max_length
  /// with [PAD] (type 0, attention 0) when `pad`. max_length 0 = neither. `b` may be null.
  /// Throws InputError when max_length is too small for the special tokens alone.
  Encoding encode_pair(const std::string& a, const std::string* b, int64_t max_length,
                       bool pad) const;
  /// encode_pair from ids (e.g. already encoded sentences); throws InputError for an id outside
  /// [0, vocab_size).
  Encoding encode_ids_pair(std::vector<int64_t> a, const std::vector<int64_t>* b,
                           int64_t max_length, bool pad) const;

 protected:
  /// Set by the derived constructor, from its vocabulary.
  int64_t pad_id_ = -1, unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, mask_id_ = -1;
};

namespace detail {
/// HuggingFace's clean_up_tokenization, replacement by replacement as it applies them:
/// " ." -> ".", " ?" -> "?", " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't", " 'm",
/// " 's", " 've", " 're".
void clean_up_tokenization(std::string& text);
/// Replaces every occurrence of `from` (non-empty) in `s` by `to`.
void replace_all(std::string& s, std::string_view from, std::string_view to);
}  // namespace detail

}  // namespace nlpkit
