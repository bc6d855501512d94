// The tasks of the pretrained transformer encoders, BERT and DeBERTa (model.type bert, deberta):
// `masked_lm` (pretraining: dynamic masking, optional whole-word masking; BERT's next sentence
// prediction; DeBERTa's Enhanced Mask Decoder), `replaced_token_detection` (DeBERTa-v3 / ELECTRA)
// and `classification` (fine-tuning a pretrained checkpoint: freezing, layer-wise lr decay, a
// separate head lr, L2-SP, LoRA). They read a HuggingFace folder or an nlpkit checkpoint through
// model.pretrained, and their checkpoints are HuggingFace folders too (config.json, vocab.txt,
// tokenizer_config.json).
#pragma once

#include "trainers/task.h"

namespace nlpkit {

std::unique_ptr<Task> make_masked_lm_task(const ExperimentConfig& config,
                                          const std::string& artifacts_dir, torch::Device device);

std::unique_ptr<Task> make_replaced_token_detection_task(const ExperimentConfig& config,
                                                         const std::string& artifacts_dir,
                                                         torch::Device device);

/// task classification with model.type bert or deberta.
std::unique_ptr<Task> make_encoder_classification_task(const ExperimentConfig& config,
                                                       const std::string& artifacts_dir,
                                                       torch::Device device);

}  // namespace nlpkit
