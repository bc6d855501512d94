// Token <-> id tables and pretrained word vectors in the word2vec text format.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace nlpkit {

/// How a Vocab is built from token counts.
struct VocabOptions {
  /// Tokens seen fewer times are left out (they map to the unk token).
  int64_t min_freq = 1;
  /// Largest vocabulary size, specials included; 0 = no limit.
  int64_t max_size = 0;
  /// Tokens that come first, in this order, whatever their counts.
  std::vector<std::string> specials = {"<pad>", "<unk>"};
  /// Which tokens pad_id() and unk_id() name (usually two of `specials`).
  std::string pad_token = "<pad>";
  std::string unk_token = "<unk>";
};

/// A token <-> id table. Ids go to the specials first, then to tokens by descending count,
/// ties broken by byte order of the token, so that the same counts always give the same ids.
///   Vocab v = Vocab::from_documents({{"a", "b", "a"}}, {});
///   v.id("a") == 2; v.id("zzz") == v.unk_id(); v.token(3) == "b"
class Vocab {
 public:
  /// An empty table (size 0, no pad or unk).
  Vocab() = default;
  /// A table holding `tokens` in order (ids 0..n-1); `pad_token`/`unk_token` name the special
  /// tokens, which need not be present (then pad_id()/unk_id() return -1). Tokens must be
  /// distinct, non-empty and free of line breaks.
  explicit Vocab(std::vector<std::string> tokens, std::string pad_token = "<pad>",
                 std::string unk_token = "<unk>");

  /// Builds from token counts (see the class comment for the id order).
  static Vocab from_counts(const std::unordered_map<std::string, int64_t>& counts,
                           const VocabOptions& options = {});
  /// Counts the tokens of tokenized documents, then builds as from_counts.
  static Vocab from_documents(const std::vector<std::vector<std::string>>& documents,
                              const VocabOptions& options = {});

  /// The id of `token`, or unk_id() when it is not in the table; throws std::out_of_range when
  /// the table has no unk token either.
  int64_t id(const std::string& token) const;
  /// Ids of `tokens` (see id()).
  std::vector<int64_t> ids(const std::vector<std::string>& tokens) const;
  bool contains(const std::string& token) const { return index_.count(token) > 0; }
  /// The token with this id (TORCH_CHECKs 0 <= id < size()).
  const std::string& token(int64_t id) const;
  const std::vector<std::string>& tokens() const { return tokens_; }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  /// Id of the pad token, or -1 when the table has none.
  int64_t pad_id() const { return pad_id_; }
  /// Id of the unk token, or -1 when the table has none.
  int64_t unk_id() const { return unk_id_; }
  const std::string& pad_token() const { return pad_token_; }
  const std::string& unk_token() const { return unk_token_; }

  /// Writes one token per line, in id order, to a temporary file renamed over `path`, so that
  /// readers never see a half-written file. Throws std::runtime_error naming the path.
  void save(const std::string& path) const;
  /// Reads a file written by save() (or a BERT vocab.txt, with pad "[PAD]" and unk "[UNK]").
  /// A trailing '\r' is ignored. Throws std::runtime_error "PATH:LINE: ..." on an empty or
  /// duplicate token, and "vocab file not found: PATH" when it is missing.
  static Vocab load(const std::string& path, const std::string& pad_token = "<pad>",
                    const std::string& unk_token = "<unk>");

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> index_;
  std::string pad_token_ = "<pad>";
  std::string unk_token_ = "<unk>";
  int64_t pad_id_ = -1;
  int64_t unk_id_ = -1;
};

/// Reads word vectors in the word2vec text format (a first line "count dim", then lines
/// "word v1 ... vdim"; GloVe files without the first line are read too) and returns a
/// (vocab.size(), dim) float tensor: the vector of each vocab token found in the file, zeros
/// for the others. The first vector of a word that appears twice wins. `found`, when given,
/// receives how many vocab rows were filled. Throws std::runtime_error "PATH:LINE: ..." when
/// a line has the wrong number of values or a bad number, when the header's dim differs from
/// `dim`, or when the header's count differs from the number of vectors.
///   torch::Tensor w = load_word2vec_text("vec.txt", vocab, 300, &found);  // (V, 300)
torch::Tensor load_word2vec_text(const std::string& path, const Vocab& vocab, int64_t dim,
                                 int64_t* found = nullptr);

}  // namespace nlpkit
