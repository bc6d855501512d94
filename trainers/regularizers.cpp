#include "trainers/regularizers.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "datasets/augmentation.h"
#include "datasets/batching.h"

namespace nlpkit {
namespace {

/// Installs a hook for one scope: removed on exit, exceptions included, so that a failed step
/// never leaves the model perturbed.
class HookGuard {
 public:
  HookGuard(const std::function<void(TensorHook)>& set, TensorHook hook) : set_(set) {
    TORCH_CHECK(set_, "ClassifierBatch: the task gives no hook site for this regularizer");
    set_(std::move(hook));
  }
  ~HookGuard() { set_(TensorHook()); }
  HookGuard(const HookGuard&) = delete;
  HookGuard& operator=(const HookGuard&) = delete;

 private:
  const std::function<void(TensorHook)>& set_;
};

/// Freezes the parameters for one scope and restores each one's requires_grad after.
class FrozenParameters {
 public:
  explicit FrozenParameters(torch::nn::Module& model) : parameters_(model.parameters()) {
    for (auto& p : parameters_) {
      previous_.push_back(p.requires_grad());
      p.requires_grad_(false);
    }
  }
  ~FrozenParameters() {
    for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].requires_grad_(previous_[i]);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<bool> previous_;
};

}  // namespace

RDropVariant rdrop_variant(const std::string& name) {
  if (name == "readme") return RDropVariant::kReadme;
  if (name == "fairseq") return RDropVariant::kFairseq;
  if (name == "bert") return RDropVariant::kBert;
  throw ConfigError("regularization.rdrop.variant: unknown variant '" + name +
                    "' (readme, fairseq or bert)");
}

torch::Tensor rdrop_step(const RDropConfig& config, ClassifierBatch& batch) {
  const torch::Tensor logits1 = batch.forward();
  const torch::Tensor logits2 = batch.forward();
  return rdrop_loss(logits1, logits2, batch.labels, config.alpha, rdrop_variant(config.variant));
}

SiftStepOutput sift_step(const SiftConfig& config, ClassifierBatch& batch,
                         const torch::Tensor& delta0) {
  TORCH_CHECK(batch.model, "sift_step: ClassifierBatch.model is not set");
  SiftPerturbation sift(SiftOptions()
                            .sigma(config.sigma)
                            .step_size(config.step_size)
                            .layer_norm_eps(config.layer_norm_eps)
                            .restore_scale(!batch.embedding_feeds_layer_norm));
  HookGuard hook(batch.set_embedding_hook, [&sift](const torch::Tensor& x) { return sift(x); });
  SiftStepOutput out;
  out.clean_logits = batch.forward();
  out.normalized = sift.normalized().detach();
  out.task_loss = torch::nn::functional::cross_entropy(out.clean_logits, batch.labels);

  sift.set_adversarial(true);
  if (delta0.defined()) sift.set_delta(delta0);
  {
    // Only delta needs a gradient here: frozen parameters keep the pass from building their
    // part of the graph (and from touching their .grad).
    FrozenParameters frozen(*batch.model);
    const torch::Tensor logits = batch.forward();
    out.delta0 = sift.delta().detach().clone();
    const torch::Tensor l1 = sift_symmetric_kl(logits, out.clean_logits.detach()).sum();
    out.delta_grad = torch::autograd::grad({l1}, {sift.delta()})[0];
    sift.ascend(out.delta_grad);  // a non-finite gradient keeps delta0, as the reference
  }
  out.delta1 = sift.delta().detach().clone();
  const torch::Tensor logits = batch.forward();
  out.adv_loss = sift_symmetric_kl(logits, out.clean_logits).mean();
  out.loss = out.task_loss + config.weight * out.adv_loss;
  return out;
}

torch::Tensor mixup_step(const MixupConfig& config, ClassifierBatch& batch) {
  const double lambda = mixup_lambda(config.alpha);
  const int64_t b = batch.labels.size(0);
  const torch::Tensor perm = torch::randperm(b, torch::kLong).to(batch.labels.device());
  const TensorHook mix = [&](const torch::Tensor& x) { return mixup(x, perm, lambda); };
  if (config.level == "embedding") {
    TORCH_CHECK(batch.merge_padding, "mixup: the task cannot merge padding masks");
    batch.merge_padding(perm);
    HookGuard hook(batch.set_embedding_hook, mix);
    return mixup_cross_entropy(batch.forward(), batch.labels, perm, lambda);
  }
  TORCH_CHECK(config.level == "sentence", "mixup: unknown level '", config.level, "'");
  HookGuard hook(batch.set_features_hook, mix);
  return mixup_cross_entropy(batch.forward(), batch.labels, perm, lambda);
}

ClassifierBatch encoder_classifier_batch(
    std::shared_ptr<torch::nn::Module> model,
    std::function<torch::Tensor(const torch::Tensor& ids, const torch::Tensor& mask)> forward,
    TensorHook* embedding_hook, TensorHook* features_hook, const torch::Tensor& ids,
    const torch::Tensor& mask, const torch::Tensor& labels) {
  // The mask lives in the closures: merge_padding changes what the following passes see.
  auto batch_mask = std::make_shared<torch::Tensor>(mask);
  ClassifierBatch b;
  b.model = model.get();
  b.forward = [model, forward, ids, batch_mask] { return forward(ids, *batch_mask); };
  b.labels = labels;
  b.set_embedding_hook = [model, embedding_hook](TensorHook h) { *embedding_hook = std::move(h); };
  b.embedding_feeds_layer_norm = true;
  b.set_features_hook = [model, features_hook](TensorHook h) { *features_hook = std::move(h); };
  b.merge_padding = [batch_mask](const torch::Tensor& perm) {
    *batch_mask = torch::maximum(*batch_mask, batch_mask->index_select(0, perm));
  };
  return b;
}

torch::Tensor classification_step_loss(const RegularizationConfig& config, ClassifierBatch& batch) {
  if (config.rdrop.alpha > 0) return rdrop_step(config.rdrop, batch);
  if (config.sift.weight > 0) return sift_step(config.sift, batch).loss;
  if (config.mixup.alpha > 0) return mixup_step(config.mixup, batch);
  return torch::nn::functional::cross_entropy(batch.forward(), batch.labels);
}

void augment_training_examples(const EdaConfig& config, int64_t seed,
                               std::vector<TextExample>* examples) {
  if (config.copies == 0) return;
  std::vector<std::shared_ptr<const SynonymSource>> sources;
  if (!config.wordnet.empty()) sources.push_back(WordNet::load(config.wordnet));
  if (!config.synonyms.empty()) sources.push_back(SynonymTable::load(config.synonyms));
  EdaOptions options;
  options.synonym_rate = config.synonym_rate;
  options.insertion_rate = config.insertion_rate;
  options.swap_rate = config.swap_rate;
  options.deletion_rate = config.deletion_rate;
  options.copies = config.copies;
  const Eda eda(options, std::move(sources), load_stopwords(config.stopwords));
  std::vector<TextExample> out;
  if (config.keep_original) out = *examples;
  for (size_t i = 0; i < examples->size(); ++i) {
    const TextExample& e = (*examples)[i];
    const uint64_t example_seed = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull + i;
    for (std::string& text : eda.augment(e.text, example_seed)) out.push_back({text, e.label});
  }
  *examples = std::move(out);
}

void transform_training_examples(const ExperimentConfig& config,
                                 std::vector<TextExample>* examples) {
  const auto n = static_cast<int64_t>(examples->size());
  auto keep = [&](const std::vector<int64_t>& indices) {
    std::vector<TextExample> kept;
    kept.reserve(indices.size());
    for (int64_t i : indices) kept.push_back((*examples)[static_cast<size_t>(i)]);
    *examples = std::move(kept);
  };
  if (config.data.train_examples > 0) {
    if (config.data.train_examples > n) {
      throw ConfigError("data.train_examples: " + std::to_string(config.data.train_examples) +
                        " asked for, but " + config.data.train + " has " + std::to_string(n) +
                        " examples");
    }
    std::map<std::string, int64_t> ids;  // label -> id in order of first appearance
    std::vector<int64_t> labels;
    for (const TextExample& e : *examples) {
      labels.push_back(ids.emplace(e.label, static_cast<int64_t>(ids.size())).first->second);
    }
    keep(stratified_subset(labels, config.data.train_examples,
                           static_cast<uint64_t>(config.data.train_subset_seed)));
  }
  if (config.data.bootstrap) {
    keep(bootstrap_sample(static_cast<int64_t>(examples->size()),
                          static_cast<uint64_t>(config.seed)));
  }
  augment_training_examples(config.augmentation.eda, config.seed, examples);
}

}  // namespace nlpkit
