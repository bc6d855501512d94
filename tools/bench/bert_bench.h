// `nlpkit_bench bert ...`: the BERT pretraining-step benchmark (tools/bench/bert_bench.cpp),
// reached through the main() of tools/bench/classifier_bench.cpp, which owns nlpkit_bench's
// command line.
#pragma once

namespace nlpkit::bench {

/// Runs `nlpkit_bench bert [options]` (argv[0] is "bert") and returns the exit status: 0, 2 for
/// a bad command line, 1 for other errors (printed on stderr).
///   nlpkit_bench bert --write-data bert.safetensors
///   nlpkit_bench bert --data bert.safetensors --threads 2
int bert_main(int argc, char** argv);

}  // namespace nlpkit::bench
