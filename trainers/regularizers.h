// The training step of task classification with a regularizer that changes what one step
// computes (config `regularization`): R-Drop, SiFT or Mixup. A task hands over one batch as a
// ClassifierBatch (a way to run it through the model again, and the model's hook sites); the
// functions here decide how many passes to run and how to combine them. The maths lives in
// modules/regularization.h.
#pragma once

#include <torch/torch.h>

#include <functional>

#include "datasets/text_classification.h"
#include "modules/regularization.h"
#include "trainers/config.h"

namespace nlpkit {

/// One classification batch that the regularized step may run through the model several times.
/// Tasks fill it in train_step (trainers/tasks/classification.cpp, trainers/tasks/bert.cpp).
struct ClassifierBatch {
  /// The model (its parameters are frozen during SiFT's ascent pass).
  torch::nn::Module* model = nullptr;
  /// One train-mode forward pass of the batch: logits (B, C). Every call draws new dropout masks.
  std::function<torch::Tensor()> forward;
  /// (B) int64 class ids.
  torch::Tensor labels;
  /// Installs (empty function: removes) the hook at the model's embedding site: BERT's
  /// embeddings.LayerNorm input, the TextCNN classifier's word vectors.
  std::function<void(TensorHook)> set_embedding_hook;
  /// Whether a LayerNorm follows the embedding site (SiFT then feeds it the normalised vectors as
  /// DeBERTa does; otherwise SiftOptions::restore_scale).
  bool embedding_feeds_layer_norm = false;
  /// Installs (empty: removes) the hook on the classifier's input features (sentence level).
  std::function<void(TensorHook)> set_features_hook;
  /// Embedding-level Mixup: makes each example's padding masks the union of its own and those of
  /// example perm[i], so that the mixed sequence covers both.
  std::function<void(const torch::Tensor& perm)> merge_padding;
};

/// The ClassifierBatch of a transformer encoder's sequence classifier (BERT, DeBERTa):
/// `forward(ids, mask)` gives the logits (B, C); `embedding_hook` is the model's hook slot at
/// the embeddings' LayerNorm input, `features_hook` the one at the classifier's input (both
/// belong to `model`, which the batch keeps alive); merge_padding widens the batch's own copy
/// of `mask`.
ClassifierBatch encoder_classifier_batch(
    std::shared_ptr<torch::nn::Module> model,
    std::function<torch::Tensor(const torch::Tensor& ids, const torch::Tensor& mask)> forward,
    TensorHook* embedding_hook, TensorHook* features_hook, const torch::Tensor& ids,
    const torch::Tensor& mask, const torch::Tensor& labels);

/// The loss of one training batch: plain cross-entropy when no regularizer is on, else the
/// regularizer's (at most one is on; the config loader checks it).
torch::Tensor classification_step_loss(const RegularizationConfig& config, ClassifierBatch& batch);

/// R-Drop: two forward passes, rdrop_loss(logits1, logits2, labels, alpha, variant).
torch::Tensor rdrop_step(const RDropConfig& config, ClassifierBatch& batch);

/// Everything one SiFT step computed (for tests and logs).
struct SiftStepOutput {
  torch::Tensor normalized;    // xn: the site's input normalised (LayerNorm without affine)
  torch::Tensor clean_logits;  // the clean pass with the hook installed: the target
  torch::Tensor task_loss;     // CE(clean_logits, labels)
  torch::Tensor delta0;        // initial perturbation
  torch::Tensor delta_grad;    // d/d(delta) of symmetric_kl(logits(xn + delta0), target).sum()
  torch::Tensor delta1;        // after the ascent step
  torch::Tensor adv_loss;      // symmetric_kl(logits(xn + delta1), target).mean()
  torch::Tensor loss;          // task_loss + weight * adv_loss
};

/// SiFT, as microsoft/DeBERTa's AdversarialLearner with loss_fn symmetric-kl: a clean pass with
/// the perturbation hook installed (its logits are the target), a pass at xn + delta0 with the
/// parameters frozen whose symmetric-KL gradient moves delta one ascent step, and a pass at
/// xn + delta1 (parameters trainable again) whose symmetric KL against the (not detached) target
/// is the adversarial loss. `delta0` (optional) replaces the random draw, to replay a reference.
SiftStepOutput sift_step(const SiftConfig& config, ClassifierBatch& batch,
                         const torch::Tensor& delta0 = {});

/// Mixup: lambda ~ Beta(alpha, alpha) and a random pairing inside the batch (torch's default
/// generator); mixes the word vectors (level embedding) or the classifier's input (level
/// sentence) and returns mixup_cross_entropy.
torch::Tensor mixup_step(const MixupConfig& config, ClassifierBatch& batch);

/// `augmentation.eda`, the transform of the training split: adds `copies` EDA copies of every
/// example (same label) after the originals, or replaces them when keep_original is false.
/// Copy c of example i depends only on (seed, i, c). Does nothing when copies is 0. InputError
/// for a missing WordNet folder, synonym table or stopword file, or a malformed table line.
void augment_training_examples(const EdaConfig& config, int64_t seed,
                               std::vector<TextExample>* examples);

/// The transforms of a classification task's training split, in this order: the stratified
/// sample of data.train_examples examples (seeded by data.train_subset_seed), the bootstrap
/// sample of data.bootstrap (seeded by `seed`), then augmentation.eda. ConfigError when
/// data.train_examples exceeds the examples the file has.
void transform_training_examples(const ExperimentConfig& config,
                                 std::vector<TextExample>* examples);

/// The RDropVariant named by `regularization.rdrop.variant`.
RDropVariant rdrop_variant(const std::string& name);

}  // namespace nlpkit
