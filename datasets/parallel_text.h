// Parallel text for sequence-to-sequence tasks: TSV files of `source<TAB>target` lines, an
// optional header line `source<TAB>target`, and the tokenisation of each side into characters
// or whitespace-separated tokens. Several lines with the same source are several references
// of one example (CMUdict's alternative pronunciations).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nlpkit {

/// One line of a parallel TSV file.
struct ParallelPair {
  std::string source;
  std::string target;
  /// 1-based line number in the file, for messages.
  int64_t line = 0;
};

/// What read_parallel_tsv read.
struct ParallelFile {
  std::vector<ParallelPair> pairs;
  /// Malformed lines left out (on_error "skip"): no tab, an empty source or target.
  int64_t skipped = 0;
};

/// Reads `path`. A line without a tab, or with an empty (or all-blank) source or target, is an
/// InputError naming `path:line` with on_error "error", and is counted and left out with
/// "skip". Trailing '\r' is dropped; blank lines are ignored. Throws InputError when the file
/// is missing or has no pair.
///   read_parallel_tsv("data/cmudict/train.tsv", "error").pairs[0].source == "a"
ParallelFile read_parallel_tsv(const std::string& path, const std::string& on_error);

/// "char": one token per Unicode character, whitespace dropped; "whitespace": tokens between
/// runs of whitespace. Other values throw std::invalid_argument.
///   split_tokens("K AE1 T", "whitespace") == {"K", "AE1", "T"}; split_tokens("cat", "char")
///   == {"c", "a", "t"}
std::vector<std::string> split_tokens(const std::string& text, const std::string& kind);

/// Tokens back to text: concatenated for "char", joined by single spaces for "whitespace".
std::string join_tokens(const std::vector<std::string>& tokens, const std::string& kind);

}  // namespace nlpkit
