// `nlpkit_bench wordpiece ...` and `nlpkit_bench sentencepiece ...`: subword tokenization
// throughput
// (tools/bench/wordpiece_bench.cpp), reached through the main() of
// tools/bench/classifier_bench.cpp, which owns nlpkit_bench's command line.
#pragma once

namespace nlpkit::bench {

/// Runs `nlpkit_bench wordpiece --vocab VOCAB [options] FILE.tsv...` (argv[0] is "wordpiece")
/// and returns the exit status: 0, 2 for a bad command line or input, 1 for other errors.
///   nlpkit_bench wordpiece --vocab vocab.txt data/spam_assassin/test.tsv
int wordpiece_main(int argc, char** argv);

/// `nlpkit_bench sentencepiece --model spm.model [options] FILE.tsv...`: the same loop over
/// SentencePieceTokenizer (datasets/sentencepiece.h).
int sentencepiece_main(int argc, char** argv);

}  // namespace nlpkit::bench
