// SentencePiece: DeBERTa-v3's subword tokenizer (Kudo & Richardson 2018; the unigram language
// model of Kudo 2018, or BPE), on Google's sentencepiece library (Debian: libsentencepiece-dev;
// loaded at first use from libnlpkit_sentencepiece.so, see datasets/sentencepiece_backend.h),
// and a trainer for its spm.model.
//
// Tokenization follows HuggingFace's DebertaV2Tokenizer (transformers, models/deberta_v2/
// tokenization_deberta_v2.py, the slow tokenizer as from_pretrained sets it up for
// microsoft/deberta-v3-*: do_lower_case false, split_by_punct false):
//   1. [PAD] [UNK] [CLS] [SEP] [MASK] written verbatim are cut out first and kept whole, and the
//      whitespace on both sides of them is dropped (HF's no-split special tokens);
//   2. do_lower_case: each remaining chunk is lowercased (one code point at a time, as
//      datasets/tokenizers.h's to_lower);
//   3. each chunk is encoded by the SentencePiece model: its normalizer (NFKC by default,
//      whitespace collapsed, "▁" marking word starts) and its segmentation.
// Special token ids are taken from the model: the pieces [PAD] [CLS] [SEP] (and [MASK]) where the
// model has them, the model's unknown piece for [UNK]. As HuggingFace does, the special tokens
// the model lacks become added tokens numbered after its pieces, in the order [CLS] [SEP] [PAD]
// [MASK]: DeBERTa-v3's spm.model holds [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 and no [MASK], which
// gets id 128000 (its added_tokens.json).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "datasets/subword_tokenizer.h"

namespace nlpkit::detail {
class SpmModel;  // datasets/sentencepiece_backend.h
}  // namespace nlpkit::detail

namespace nlpkit {

struct SentencePieceOptions {
  /// HF do_lower_case: lowercase the text before SentencePiece sees it (DeBERTa-v3: false; a
  /// model trained with SentencePieceTrainOptions::lower_case lowercases by itself).
  bool lower_case = false;
};

/// A SentencePiece model (spm.model) with BERT's special tokens. Thread-safe: every method is
/// const, and copies share the loaded model.
///   auto tok = SentencePieceTokenizer::from_file("deberta-v3-base/spm.model");
///   tok.tokenize("Hello world") == {"▁Hello", "▁world"}
///   Encoding e = tok.encode_pair("a question", &answer, /*max_length=*/128, /*pad=*/true);
class SentencePieceTokenizer : public SubwordTokenizer {
 public:
  /// Reads an spm.model (a serialized sentencepiece ModelProto). Throws InputError naming the
  /// file when it is missing, empty or not a SentencePiece model.
  static SentencePieceTokenizer from_file(const std::string& spm_model,
                                          SentencePieceOptions options = {});
  /// From the bytes of an spm.model; `name` names them in errors.
  static SentencePieceTokenizer from_bytes(std::string bytes, const std::string& name,
                                           SentencePieceOptions options = {});

  /// Pieces of `text` as HuggingFace's DebertaV2Tokenizer.tokenize (no [CLS]/[SEP] added):
  /// unknown characters keep their text, as SentencePiece returns them.
  std::vector<std::string> tokenize(const std::string& text) const override;
  /// Ids of the pieces of `text` (unknown pieces -> unk_id()), no [CLS]/[SEP] added.
  std::vector<int64_t> encode(const std::string& text) const override;
  /// Text of `ids` as DebertaV2Tokenizer.decode: runs of pieces decoded by SentencePiece,
  /// special tokens (unless skipped) as their text with a space before a run of them, the
  /// result stripped, then clean_up_tokenization_spaces. Throws InputError for an id outside
  /// [0, vocab_size).
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = true) const override;
  int64_t token_to_id(const std::string& token) const override;
  const std::string& id_to_token(int64_t id) const override;
  /// Pieces of the model plus the added special tokens.
  int64_t vocab_size() const override;
  const char* type() const override { return "sentencepiece"; }
  /// True for a piece that does not start with "▁" (and is no special token).
  bool continues_word(int64_t id) const override;
  /// spm.model, tokenizer_config.json (do_lower_case, tokenizer_class DebertaV2Tokenizer,
  /// vocab_type spm, model_max_length), special_tokens_map.json and, when special tokens were
  /// added, added_tokens.json: the files of a HuggingFace DeBERTa-v3 folder.
  void save_pretrained(const std::string& dir, int64_t model_max_length) const override;

  /// Number of pieces in spm.model (vocab_size() less the added special tokens).
  int64_t piece_size() const;
  /// The log probability (unigram) or merge rank (BPE) SentencePiece keeps for a piece.
  float score(int64_t id) const;
  const SentencePieceOptions& options() const { return options_; }
  /// Writes the spm.model bytes atomically.
  void save_model(const std::string& path) const;
  /// Writes the vocabulary listing atomically: "piece<TAB>score" per id, as spm_train's .vocab
  /// file (the added special tokens last, score 0).
  void save_vocab(const std::string& path) const;

 private:
  SentencePieceTokenizer(std::shared_ptr<const detail::SpmModel> sp,
                         std::shared_ptr<const std::string> bytes, SentencePieceOptions options);
  /// Calls piece_ids(chunk) for each text chunk and special(id) for each special token, in order.
  template <class Chunk, class Special>
  void split_specials(const std::string& text, Chunk&& chunk, Special&& special) const;

  std::shared_ptr<const detail::SpmModel> sp_;
  std::shared_ptr<const std::string> bytes_;  // the spm.model file
  SentencePieceOptions options_;
  int64_t pieces_ = 0;
  std::vector<std::string> tokens_;     // id -> piece, then the added special tokens
  std::vector<uint8_t> continues_;      // id -> continues_word
};

struct SentencePieceTrainOptions {
  /// unigram (DeBERTa-v3, ALBERT, T5) or bpe.
  std::string model_type = "unigram";
  /// Case-fold inside the model (normalization rule nmt_nfkc_cf instead of nmt_nfkc): every user
  /// of the spm.model, HuggingFace included, then lowercases the same way.
  bool lower_case = false;
  /// Share of the characters the alphabet must cover; the rarest others become [UNK].
  double character_coverage = 0.9995;
  /// Training threads (the result depends on this number; 1 is reproducible everywhere).
  int64_t threads = 1;
  /// Reserve [MASK] as piece 4. False = DeBERTa-v3's exact layout, where [MASK] is no piece
  /// and the tokenizer adds it after the pieces (id vocab_size; vocab_size() is then one more).
  bool mask_piece = true;
  /// vocab_size exactly (an error when the corpus cannot fill it); false = at most vocab_size
  /// (unigram only; what a task learning from its training split wants).
  bool hard_vocab_limit = true;
};

/// Learns an spm.model of vocab_size pieces (see hard_vocab_limit) from text lines with
/// SentencePieceTrainer.
/// The DeBERTa-v3 special tokens are reserved first: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 (pad, bos,
/// eos and unknown pieces) and [MASK]=4 (a user-defined piece, so that it is never split;
/// see mask_piece).
/// Lines longer than 1 MiB are left out. Deterministic for given lines, options and threads.
/// Throws InputError for vocab_size < 6, an unknown model_type, a corpus without text, or
/// a vocab_size the corpus cannot fill (SentencePiece's message says the largest one possible).
///   SentencePieceTokenizer tok = train_sentencepiece(lines, 8000, {});
///   tok.save_model("spm.model");
SentencePieceTokenizer train_sentencepiece(const std::vector<std::string>& lines,
                                           int64_t vocab_size,
                                           const SentencePieceTrainOptions& options);

}  // namespace nlpkit
