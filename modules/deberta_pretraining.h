// DeBERTa pretraining heads, matching microsoft/DeBERTa (DeBERTa/apps/models/
// masked_language_model.py, replaced_token_detection_model.py, apps/tasks/rtd_task.py) under
// its parameter names (`lm_predictions.lm_head.*`, `mask_predictions.*`, `generator.` /
// `discriminator.`):
//
// - Enhanced Mask Decoder (He et al. 2021, section 3.2): absolute positions enter after the
//   transformer layers; the last layer is applied again twice (shared weights) with
//   query = position embeddings + the second-to-last layer's output, then the MLM head.
// - Replaced Token Detection (Clark et al. 2020, ELECTRA; He et al. 2021, DeBERTaV3): a
//   generator (MLM with EMD) samples replacements at the masked positions; a discriminator
//   classifies every token as original or replaced; loss = MLM + rtd_lambda * RTD, with the
//   embedding sharing modes none (NES), es and gdes (gradient-disentangled).
//
//   DebertaRTD rtd(DebertaRTDOptions(generator_options, discriminator_options));
//   DebertaRTDOutput out = rtd->forward(masked_ids, mask, labels);  // out.loss
#pragma once

#include <torch/torch.h>

#include <string>

#include "modules/deberta.h"

namespace nlpkit {

/// microsoft/DeBERTa's BertLMPredictionHead ("lm_head"): LayerNorm(act(dense(h))) @ E^T + bias,
/// E the word-embedding matrix (tied, passed in).
class DebertaLMPredictionHeadImpl : public torch::nn::Cloneable<DebertaLMPredictionHeadImpl> {
 public:
  explicit DebertaLMPredictionHeadImpl(DebertaOptions options_);
  void reset() override;
  /// hidden (..., H), embedding_weight (V, H) -> logits (..., V).
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& embedding_weight);

  DebertaOptions options;
  torch::Tensor bias;  // (V)
  LoRALinear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
};
TORCH_MODULE(DebertaLMPredictionHead);

/// The Enhanced Mask Decoder ("lm_predictions"): no weights besides the MLM head `lm_head`; it
/// reuses the encoder's last layer, relative embeddings and absolute position embeddings.
class EnhancedMaskDecoderImpl : public torch::nn::Cloneable<EnhancedMaskDecoderImpl> {
 public:
  explicit EnhancedMaskDecoderImpl(DebertaOptions options_);
  void reset() override;
  /// The decoder's states (B, T, H) for the MLM head. `encoded` must hold the hidden states
  /// (output_hidden_states). Without position_biased_input: z = position_embeddings[0..T-1],
  /// h = the second-to-last layer's output, q = z + h, then twice q = last_layer(h, query q).
  /// With position_biased_input (positions already at the input): the last layer's output.
  torch::Tensor forward(DebertaModelImpl& deberta, const DebertaModelOutput& encoded,
                        const torch::Tensor& attention_mask);

  DebertaOptions options;
  DebertaLMPredictionHead lm_head{nullptr};
};
TORCH_MODULE(EnhancedMaskDecoder);

struct DebertaMaskedLMWithEMDOutput {
  DebertaModelOutput deberta;
  /// With labels: the rows where labels > 0, flattened row-major (N, V); without: (B, T, V).
  torch::Tensor logits;
  torch::Tensor labels;  // (N) int64, the targets of those rows; undefined without labels
  torch::Tensor loss;    // (N) cross-entropy per target (reduction none); undefined without
};

/// microsoft/DeBERTa's MaskedLanguageModel: `deberta` (with absolute position embeddings, which
/// EMD reads) and `lm_predictions` (EMD + MLM head). Needs at least 2 layers.
class DebertaMaskedLMWithEMDImpl : public torch::nn::Cloneable<DebertaMaskedLMWithEMDImpl> {
 public:
  explicit DebertaMaskedLMWithEMDImpl(DebertaOptions options_);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  /// input_ids, attention_mask (B, T); labels (B, T) int: 0 = not a target, > 0 = the original
  /// id (undefined: logits for every position).
  DebertaMaskedLMWithEMDOutput forward(const torch::Tensor& input_ids,
                                       const torch::Tensor& attention_mask = {},
                                       const torch::Tensor& labels = {},
                                       const torch::Tensor& token_type_ids = {});
  void pretty_print(std::ostream& stream) const override;

  DebertaOptions options;
  DebertaModel deberta{nullptr};
  EnhancedMaskDecoder lm_predictions{nullptr};
};
TORCH_MODULE(DebertaMaskedLMWithEMD);

/// The discriminator head ("mask_predictions"): classifier(act(dense(LayerNorm(h + h[:, 0])))).
class DebertaRTDHeadImpl : public torch::nn::Cloneable<DebertaRTDHeadImpl> {
 public:
  explicit DebertaRTDHeadImpl(DebertaOptions options_);
  void reset() override;
  /// hidden (B, T, H) -> logits (B, T).
  torch::Tensor forward(const torch::Tensor& hidden);

  DebertaOptions options;
  LoRALinear dense{nullptr};
  torch::nn::LayerNorm layer_norm{nullptr};  // "LayerNorm"
  LoRALinear classifier{nullptr};
};
TORCH_MODULE(DebertaRTDHead);

/// microsoft/DeBERTa's ReplacedTokenDetectionModel: `deberta` and `mask_predictions`.
class DebertaReplacedTokenDetectionImpl
    : public torch::nn::Cloneable<DebertaReplacedTokenDetectionImpl> {
 public:
  explicit DebertaReplacedTokenDetectionImpl(DebertaOptions options_);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  /// input_ids, attention_mask (B, T) -> logits (B, T) (> 0: replaced). inputs_embeds (B, T, H)
  /// replaces the word-embedding lookup (GDES).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {},
                        const torch::Tensor& inputs_embeds = {});

  DebertaOptions options;
  DebertaModel deberta{nullptr};
  DebertaRTDHead mask_predictions{nullptr};
};
TORCH_MODULE(DebertaReplacedTokenDetection);

/// How the discriminator's word (and absolute position) embeddings relate to the generator's.
enum class EmbeddingSharing {
  kNone,  ///< "none" (NES): separate embeddings; the RTD loss never reaches the generator.
  kES,    ///< "es": one matrix (the generator's); the RTD loss trains it too.
  kGDES,  ///< "gdes": E_D = stop_gradient(E_G) + E_delta; the RTD loss trains E_delta only.
};
/// "none", "es" or "gdes" (case-insensitive); throws naming the accepted values otherwise.
EmbeddingSharing parse_embedding_sharing(const std::string& name);

struct DebertaRTDOptions {
  DebertaRTDOptions(DebertaOptions generator_, DebertaOptions discriminator_)
      : generator_(std::move(generator_)), discriminator_(std::move(discriminator_)) {}
  TORCH_ARG(DebertaOptions, generator);
  TORCH_ARG(DebertaOptions, discriminator);
  /// none, es or gdes.
  TORCH_ARG(std::string, embedding_sharing) = "gdes";
  /// The RTD loss weight (50 in the DeBERTaV3 and ELECTRA papers).
  TORCH_ARG(double, rtd_lambda) = 50;
  /// Sampling temperature of the generator's softmax.
  TORCH_ARG(double, temperature) = 1;
};

struct DebertaRTDOutput {
  torch::Tensor gen_logits;    // (N, V) at the targets (labels > 0), row-major
  torch::Tensor gen_loss;      // (N) cross-entropy per target
  torch::Tensor replaced_ids;  // (B, T) the discriminator's input
  torch::Tensor disc_logits;   // (B, T)
  torch::Tensor disc_labels;   // (M) float, 1 = replaced, over the positions with mask > 0
  torch::Tensor disc_loss;     // (M) BCE-with-logits per position
  torch::Tensor loss;          // () mean(gen_loss) + rtd_lambda * mean(disc_loss)
};

/// ELECTRA-style RTD: `generator` (DebertaMaskedLMWithEMD) and `discriminator`
/// (DebertaReplacedTokenDetection). With es, the discriminator's embeddings.word_embeddings
/// (and position_embeddings) ARE the generator's modules: the state dict lists the one tensor
/// under both names (as microsoft/DeBERTa saves it), and unique_parameters() lists it once
/// (give that to an optimizer, not parameters()). With gdes, the discriminator's
/// word_embeddings.weight holds E_delta (zero at construction).
class DebertaRTDImpl : public torch::nn::Cloneable<DebertaRTDImpl> {
 public:
  explicit DebertaRTDImpl(DebertaRTDOptions options_);
  void reset() override;
  void reset_parameters(double initializer_range = 0.02);
  /// input_ids (B, T) with the targets masked; attention_mask (B, T); labels (B, T): 0 = not a
  /// target, > 0 = the original id. replaced_ids (B, T): the discriminator's input; undefined =
  /// sample the generator at the targets (torch::multinomial, current RNG).
  DebertaRTDOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                           const torch::Tensor& labels, const torch::Tensor& replaced_ids = {});
  /// Every parameter once (ES shares tensors between generator and discriminator).
  std::vector<torch::Tensor> unique_parameters() const;
  void pretty_print(std::ostream& stream) const override;

  DebertaRTDOptions options;
  EmbeddingSharing sharing = EmbeddingSharing::kGDES;
  DebertaMaskedLMWithEMD generator{nullptr};
  DebertaReplacedTokenDetection discriminator{nullptr};
};
TORCH_MODULE(DebertaRTD);

}  // namespace nlpkit
