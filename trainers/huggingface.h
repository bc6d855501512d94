// HuggingFace checkpoint folders in and out: config.json <-> model options, and weights from
// model.safetensors or pytorch_model.bin (a torch.save zip archive, read with
// torch::pickle_load) under HuggingFace's parameter names, which are also ours.
//
//   HfBertConfig config = read_hf_bert_config("bert-base-uncased");
//   BertForPreTraining model(config.options);
//   HfLoadReport report = load_hf_weights(*model, read_hf_weights("bert-base-uncased"),
//                                         "bert-base-uncased", "bert");
//   std::cerr << report.summary();
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modules/bert.h"
#include "modules/deberta.h"
#include "trainers/safetensors.h"

namespace nlpkit {

/// A model folder given by the user: a HuggingFace folder as it is, or an nlpkit run or
/// checkpoints directory resolved to its best checkpoint, else its latest (find_best_checkpoint;
/// the checkpoint's config.json makes it a HuggingFace folder too). `what` names the argument in
/// errors. "" stays "".
std::string resolve_model_folder(const std::string& path, const std::string& what);

/// A BERT config.json, mapped to BertOptions.
struct HfBertConfig {
  BertOptions options;
  double initializer_range = 0.02;
  std::vector<std::string> architectures;
  /// From id2label (index order), empty when the config has none.
  std::vector<std::string> labels;
  /// classifier_dropout; < 0 when null.
  double classifier_dropout = -1;
  /// The whole file, so that an export keeps keys we do not use.
  nlohmann::json raw;
};

/// Reads DIR/config.json. InputError (naming the file and key) when the folder or the file is
/// missing, the JSON is invalid, model_type is not "bert", or a value is unsupported (e.g.
/// position_embedding_type other than "absolute").
HfBertConfig read_hf_bert_config(const std::string& dir);

/// A DeBERTa-v2/v3 config.json (model_type "deberta-v2"), mapped to DebertaOptions.
struct HfDebertaConfig {
  DebertaOptions options;
  double initializer_range = 0.02;
  std::vector<std::string> architectures;
  /// From id2label (index order), empty when the config has none.
  std::vector<std::string> labels;
  /// cls_dropout; < 0 when absent or null.
  double classifier_dropout = -1;
  nlohmann::json raw;
};

/// Reads DIR/config.json of a HuggingFace DeBERTa-v2/v3 folder. Keys a file leaves out take
/// HuggingFace's DebertaV2Config defaults (relative_attention false, position_biased_input
/// true, position_buckets -1, share_att_key false, norm_rel_ebd none, ...). InputError naming
/// the file and the key when the folder or file is missing, the JSON is invalid, model_type is
/// not "deberta-v2" (DeBERTa-v1's "deberta" has other attention parameters and is refused), or
/// a value is unsupported: unknown pos_att_type terms, position_buckets larger than
/// max_relative_positions / max_position_embeddings, embedding_size != hidden_size, ...
HfDebertaConfig read_hf_deberta_config(const std::string& dir);

/// The DeBERTa keys of one JSON object (HuggingFace's or microsoft/DeBERTa's model config, e.g.
/// a section of an RTD config) mapped to DebertaOptions, with HuggingFace's defaults. `path`
/// and `key_prefix` (e.g. "generator.") name the file and the keys in errors.
DebertaOptions deberta_options_from_json(const nlohmann::json& j, const std::string& path,
                                         const std::string& key_prefix = "");

/// config.json text for `options` (model_type bert, HuggingFace key names), on top of `base`
/// (keys we do not use survive a round trip).
nlohmann::json hf_bert_config_json(const BertOptions& options, double initializer_range,
                                   const std::vector<std::string>& architectures,
                                   const std::vector<std::string>& labels,
                                   const nlohmann::json& base = nlohmann::json::object());

/// config.json text for `options` (model_type deberta-v2, HuggingFace's DebertaV2Config key
/// names; read_hf_deberta_config reads it back to the same options), on top of `base`.
nlohmann::json hf_deberta_config_json(const DebertaOptions& options, double initializer_range,
                                      const std::vector<std::string>& architectures,
                                      const std::vector<std::string>& labels,
                                      const nlohmann::json& base = nlohmann::json::object());

/// The weights of a HuggingFace folder: DIR/model.safetensors, else DIR/pytorch_model.bin.
/// Floating tensors come back as stored (F32, F16 or BF16); loading converts them. InputError
/// when neither file exists or the file is unreadable (sharded checkpoints are named as
/// unsupported).
NamedTensors read_hf_weights(const std::string& dir);

/// What loading a checkpoint into a model did.
struct HfLoadReport {
  std::vector<std::string> loaded;
  /// Model parameters the checkpoint lacks: they keep their fresh initialisation (a new head).
  std::vector<std::string> initialized;
  /// Checkpoint tensors the model has no place for (e.g. the pretraining heads when
  /// fine-tuning a classifier).
  std::vector<std::string> unexpected;
  /// A few lines for the user: counts and the names of new and unused tensors.
  std::string summary() const;
};

/// Copies `weights` into `model` by name, HuggingFace's way: the base-model prefix (`prefix`,
/// "bert") is added or removed to match the model; legacy LayerNorm names gamma/beta are
/// renamed; tied copies (cls.predictions.decoder.*) and the position_ids buffer are accepted;
/// dtypes are converted. A shape mismatch throws InputError naming the key and both shapes
/// (nothing is copied then). Missing and unexpected keys are reported, not errors.
HfLoadReport load_hf_weights(torch::nn::Module& model, NamedTensors weights,
                             const std::string& source, const std::string& prefix);

/// The tensors to write for HuggingFace: the model's state dict plus the tied copies
/// HuggingFace's BertForPreTraining and DebertaV2ForMaskedLM list (cls.predictions.decoder.weight
/// and .bias) when the model has the MLM head.
NamedTensors hf_export_tensors(torch::nn::Module& model);

/// `nlpkit forward`: runs the model of `dir` (resolve_model_folder; the head from config.json's
/// architectures: BertForPreTraining, BertForSequenceClassification, BertForTokenClassification,
/// else the bare BertModel; for model_type deberta-v2, DebertaV2ForMaskedLM else the bare
/// DebertaModel) in eval mode on `inputs` (input_ids, optional attention_mask and
/// token_type_ids) and returns every output under HuggingFace's names: last_hidden_state,
/// pooler_output, hidden_states.0 .. hidden_states.L, attentions.0 .. attentions.{L-1}, and
/// prediction_logits + seq_relationship_logits, or logits (DeBERTa's MLM head:
/// prediction_logits; DebertaV2ForSequenceClassification: logits).
NamedTensors hf_forward(const std::string& dir, const NamedTensors& inputs);

}  // namespace nlpkit
