// `nlpkit_bench transformer ...`: the Transformer benchmarks (tools/bench/transformer_bench.cpp),
// reached through the main() of tools/bench/classifier_bench.cpp, which owns nlpkit_bench's
// command line.
#pragma once

namespace nlpkit::bench {

/// Runs `nlpkit_bench transformer [options]` (argv[0] is "transformer") and returns the exit
/// status: 0, 2 for a bad command line, 1 for other errors (printed on stderr).
///   nlpkit_bench transformer --write-data transformer.safetensors
///   nlpkit_bench transformer --data transformer.safetensors --threads 2
///   nlpkit_bench transformer --data transformer.safetensors --mode decode
int transformer_main(int argc, char** argv);

}  // namespace nlpkit::bench
