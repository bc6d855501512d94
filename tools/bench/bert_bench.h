// `nlpkit_bench bert ...`: the BERT pretraining-step benchmark (tools/bench/bert_bench.cpp),
// reached through the main() of tools/bench/classifier_bench.cpp, which owns nlpkit_bench's
// command line.
#pragma once

#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdint>
#include <string>

namespace nlpkit::bench {

/// Writes the legacy profiler's events as a chrome://tracing file and prints, on stderr, the
/// `rows` operators with the largest self time per step (`steps` timed steps were profiled).
void report_profile(const torch::autograd::profiler::thread_event_lists& lists,
                    const std::string& trace_path, int64_t steps, int rows = 30);

/// Runs `nlpkit_bench bert [options]` (argv[0] is "bert") and returns the exit status: 0, 2 for
/// a bad command line, 1 for other errors (printed on stderr).
///   nlpkit_bench bert --write-data bert.safetensors
///   nlpkit_bench bert --data bert.safetensors --threads 2
int bert_main(int argc, char** argv);

}  // namespace nlpkit::bench
