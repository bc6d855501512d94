// `nlpkit_bench recurrent ...`: the recurrent-family benchmarks (tools/bench/recurrent_bench.cpp),
// reached through the main() of tools/bench/classifier_bench.cpp, which owns nlpkit_bench's
// command line.
#pragma once

namespace nlpkit::bench {

/// Runs `nlpkit_bench recurrent lstm|lm|convlstm [options]` (argv[0] is "recurrent") and returns
/// the exit status: 0, 2 for a bad command line, 1 for other errors (printed on stderr).
///   nlpkit_bench recurrent lstm --threads 2
///   nlpkit_bench recurrent lm --write-data lm.safetensors
int recurrent_main(int argc, char** argv);

}  // namespace nlpkit::bench
