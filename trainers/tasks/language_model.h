// Task `language_model`: next-token prediction on a text corpus (word or character level, by
// tokenizer.type), with truncated backpropagation through time: the corpus is one token stream
// cut into data.batch_size rows, read in windows of data.bptt tokens, the recurrent state carried
// from window to window (detached). Metrics: loss, perplexity, next-token accuracy.
// `nlpkit predict` continues prompts by sampling (generation.temperature, top_k, max_tokens).
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_language_model_task(const ExperimentConfig& config,
                                               const std::string& artifacts_dir,
                                               torch::Device device);

}  // namespace nlpkit
