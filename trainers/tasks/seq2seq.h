// Task `seq2seq`: source -> target sequences (grapheme-to-phoneme, transliteration, ...) with
// model.type seq2seq_attention or transformer.
//
// Data: TSV source<TAB>target (datasets/parallel_text.h); tokens are characters or
// whitespace-separated (seq2seq.source_tokens / target_tokens). Lines sharing a source are
// that source's references: training uses every pair, evaluation decodes each distinct source
// once and scores it against all of them. Metrics: loss and token_accuracy (teacher-forced),
// and from beam search (seq2seq.beam_size): sequence_accuracy (first reference), wer (matches
// no reference), per (edit distance to the closest reference), bleu (corpus BLEU-4).
// Bad input: malformed lines follow data.on_error; sequences longer than
// seq2seq.max_source_length / max_target_length are cut and counted, or an error naming
// file:line (seq2seq.on_too_long); target tokens outside the training vocabulary in valid/test
// become <unk> and are counted (such a reference can never be matched exactly).
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_seq2seq_task(const ExperimentConfig& config,
                                        const std::string& artifacts_dir, torch::Device device);

}  // namespace nlpkit
