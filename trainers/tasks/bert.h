// The BERT tasks: `masked_lm` (pretraining: dynamic masking, optional whole-word masking, next
// sentence prediction) and `classification` with model.type bert (fine-tuning a pretrained
// checkpoint: freezing, layer-wise lr decay, a separate head lr, L2-SP, LoRA). Both read a
// HuggingFace folder or an nlpkit BERT checkpoint through model.pretrained, and their
// checkpoints are HuggingFace folders too (config.json, vocab.txt, tokenizer_config.json).
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_masked_lm_task(const ExperimentConfig& config,
                                          const std::string& artifacts_dir, torch::Device device);

std::unique_ptr<Task> make_bert_classification_task(const ExperimentConfig& config,
                                                    const std::string& artifacts_dir,
                                                    torch::Device device);

}  // namespace nlpkit
