#include "trainers/regularizers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "modules/bert.h"
#include "modules/deberta.h"
#include "modules/text_classifier.h"
#include "tests/test_util.h"
#include "trainers/huggingface.h"
#include "trainers/safetensors.h"
#include "trainers/task.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

const std::string kSrc = NLPKIT_SOURCE_DIR;
const std::string kRDrop = kSrc + "/tests/data/golden/rdrop_losses";

std::map<std::string, torch::Tensor> io_of(const std::string& dir) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [key, tensor] : load_safetensors(dir + "/io.safetensors").tensors) out[key] = tensor;
  return out;
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol,
                  double atol) {
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(actual, expected, rtol, atol))
      << "max abs difference " << (actual - expected).abs().max().item<double>();
}

// ---------------------------------------------------------------------------------------------
// A model small enough to redo every step by hand: mean-pooled embeddings -> LayerNorm site ->
// Linear, with the hook on the LayerNorm's input and on the classifier's input.

struct TinyModelImpl : torch::nn::Module {
  TinyModelImpl() {
    embedding = register_module("embedding", torch::nn::Embedding(10, 6));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({6})));
    fc = register_module("fc", torch::nn::Linear(6, 3));
  }
  torch::Tensor forward(const torch::Tensor& ids) {
    torch::Tensor x = embedding(ids);  // (B, T, 6)
    if (embedding_hook) x = embedding_hook(x);
    torch::Tensor h = norm(x).mean(1);  // (B, 6)
    if (features_hook) h = features_hook(h);
    return fc(h);
  }
  torch::nn::Embedding embedding{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear fc{nullptr};
  TensorHook embedding_hook, features_hook;
};
TORCH_MODULE(TinyModel);

ClassifierBatch tiny_batch(TinyModel& model, const torch::Tensor& ids, const torch::Tensor& y) {
  ClassifierBatch b;
  b.model = model.ptr().get();
  b.forward = [model, ids]() mutable { return model->forward(ids); };
  b.labels = y;
  b.set_embedding_hook = [model](TensorHook h) mutable { model->embedding_hook = std::move(h); };
  b.embedding_feeds_layer_norm = true;
  b.set_features_hook = [model](TensorHook h) mutable { model->features_hook = std::move(h); };
  b.merge_padding = [](const torch::Tensor&) {};
  return b;
}

TEST(SiftStep, EveryIntermediateByHand) {
  torch::manual_seed(0);
  TinyModel model;
  const torch::Tensor ids = torch::tensor({{1, 2, 3}, {4, 5, 6}});
  const torch::Tensor y = torch::tensor({0, 2});
  ClassifierBatch batch = tiny_batch(model, ids, y);
  SiftConfig config;
  config.weight = 5;
  config.step_size = 1e-2;
  const torch::Tensor delta0 = torch::randn({2, 3, 6}).clamp(-2, 2) * 0.01;
  SiftStepOutput out = sift_step(config, batch, delta0);

  // The same computation written out with plain tensor ops.
  const torch::Tensor x = model->embedding(ids).detach();
  const torch::Tensor xn = torch::layer_norm(x, {6}, {}, {}, 1e-7);
  auto logits_of = [&](const torch::Tensor& input) {
    return model->fc(model->norm(input).mean(1));
  };
  const torch::Tensor target = logits_of(xn);
  expect_close(out.clean_logits, target, 1e-5, 1e-6);
  expect_close(out.task_loss, torch::nn::functional::cross_entropy(target, y), 1e-5, 1e-6);
  EXPECT_TRUE(torch::equal(out.delta0, delta0));
  torch::Tensor d = delta0.clone().requires_grad_(true);
  const torch::Tensor ps = torch::softmax(logits_of(xn + d), -1);
  const torch::Tensor pt = torch::softmax(target, -1).detach();
  // d/ds of the symmetric KL is softmax(s) - p_t: back-propagate that through the model.
  const torch::Tensor g = torch::autograd::grad({logits_of(xn + d)}, {d}, {(ps - pt).detach()})[0];
  // The gradient is small (float32 sums of nearly cancelling terms): compare it relatively, as
  // the deberta_sift_tiny README does (rtol 1e-3).
  const double g_max = g.abs().max().item<double>();
  EXPECT_GT(g_max, 0);
  expect_close(out.delta_grad, g, 1e-3, 1e-3 * g_max);
  const torch::Tensor delta1 = delta0 + 1e-2 * g / (1e-6 + std::get<0>(g.abs().max(-1, true)));
  // Each row's step is normalised by its largest |g|, so small-g rows amplify rounding: 1e-3
  // of the step size.
  expect_close(out.delta1 - delta0, delta1 - delta0, 1e-3, 1e-5);
  const torch::Tensor adv = sift_symmetric_kl(logits_of(xn + delta1), target).mean();
  expect_close(out.adv_loss, adv, 1e-5, 1e-6);
  expect_close(out.loss, out.task_loss + 5 * out.adv_loss, 1e-6, 1e-7);

  // The hook is gone, every parameter is trainable again, and the ascent pass left no .grad.
  EXPECT_FALSE(static_cast<bool>(model->embedding_hook));
  for (const auto& p : model->parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_FALSE(p.grad().defined());
  }
  // The loss trains the whole model: the adversarial pass reaches fc and norm, the clean pass the
  // embedding.
  out.loss.backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

TEST(SiftStep, HookIsRemovedWhenAPassThrows) {
  TinyModel model;
  ClassifierBatch batch = tiny_batch(model, torch::tensor({{1, 2}}), torch::tensor({0}));
  int calls = 0;
  batch.forward = [&]() -> torch::Tensor {
    if (++calls == 2) throw std::runtime_error("boom");
    return model->forward(torch::tensor({{1, 2}}));
  };
  SiftConfig config;
  config.weight = 1;
  EXPECT_ERROR(sift_step(config, batch), "boom");
  EXPECT_FALSE(static_cast<bool>(model->embedding_hook));
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.requires_grad());
}

TEST(MixupStep, SentenceLevelByHand) {
  torch::manual_seed(0);
  TinyModel model;
  const torch::Tensor ids = torch::tensor({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}});
  const torch::Tensor y = torch::tensor({0, 2, 1});
  ClassifierBatch batch = tiny_batch(model, ids, y);
  MixupConfig config;
  config.alpha = 0.4;
  torch::manual_seed(11);
  const torch::Tensor loss = mixup_step(config, batch);
  torch::manual_seed(11);
  const double lambda = mixup_lambda(0.4);
  const torch::Tensor perm = torch::randperm(3, torch::kLong);
  const torch::Tensor h = model->norm(model->embedding(ids)).mean(1);
  const torch::Tensor expected =
      mixup_cross_entropy(model->fc(mixup(h, perm, lambda)), y, perm, lambda);
  expect_close(loss, expected, 1e-5, 1e-6);
  EXPECT_FALSE(static_cast<bool>(model->features_hook));
  // Embedding level mixes the LayerNorm's input instead.
  config.level = "embedding";
  torch::manual_seed(11);
  const torch::Tensor loss_e = mixup_step(config, batch);
  const torch::Tensor x = mixup(model->embedding(ids), perm, lambda);
  expect_close(loss_e, mixup_cross_entropy(model->fc(model->norm(x).mean(1)), y, perm, lambda),
               1e-5, 1e-6);
  EXPECT_FALSE(static_cast<bool>(model->embedding_hook));
}

TEST(RDropStep, TwoPassesAndThePlainStep) {
  torch::manual_seed(0);
  TinyModel model;
  const torch::Tensor ids = torch::tensor({{1, 2, 3}, {4, 5, 6}});
  const torch::Tensor y = torch::tensor({0, 2});
  ClassifierBatch batch = tiny_batch(model, ids, y);
  int calls = 0;
  auto forward = batch.forward;
  // Each pass gets its own noise, standing in for dropout.
  batch.forward = [&] { return forward() + 0.1 * (++calls); };
  RegularizationConfig config;
  config.rdrop.alpha = 2;
  config.rdrop.variant = "fairseq";
  const torch::Tensor loss = classification_step_loss(config, batch);
  EXPECT_EQ(calls, 2);
  const torch::Tensor l = forward();
  expect_close(loss, rdrop_loss(l + 0.1, l + 0.2, y, 2, RDropVariant::kFairseq), 1e-6, 1e-7);
  calls = 0;
  const torch::Tensor plain = classification_step_loss(RegularizationConfig(), batch);
  EXPECT_EQ(calls, 1);
  expect_close(plain, torch::nn::functional::cross_entropy(l + 0.1, y), 1e-6, 1e-7);
}

// ---------------------------------------------------------------------------------------------
// rdrop_losses' tiny BERT classifier, through the HuggingFace import

BertClassifier load_rdrop_bert() {
  HfBertConfig config = read_hf_bert_config(kRDrop);
  BertClassifier model(config.options, 3);
  HfLoadReport report = load_hf_weights(*model, read_hf_weights(kRDrop), kRDrop, "bert");
  EXPECT_TRUE(report.initialized.empty());
  EXPECT_TRUE(report.unexpected.empty());
  return model;
}

ClassifierBatch bert_batch(BertClassifier& model, torch::Tensor ids, torch::Tensor mask,
                           torch::Tensor labels) {
  return encoder_classifier_batch(
      model.ptr(),
      [model](const torch::Tensor& x, const torch::Tensor& m) mutable {
        return model->forward(x, m);
      },
      &model->bert->embeddings->layer_norm_input_hook, &model->features_hook, ids, mask, labels);
}

ClassifierBatch deberta_batch(DebertaClassifier& model, torch::Tensor ids, torch::Tensor mask,
                              torch::Tensor labels) {
  return encoder_classifier_batch(
      model.ptr(),
      [model](const torch::Tensor& x, const torch::Tensor& m) mutable {
        return model->forward(x, m);
      },
      &model->deberta->embeddings->layer_norm_input_hook, &model->features_hook, ids, mask, labels);
}

TEST(RDropStep, BertKlOnTheFixtureClassifier) {
  auto io = io_of(kRDrop);
  BertClassifier model = load_rdrop_bert();
  model->train();
  ClassifierBatch batch =
      bert_batch(model, io["in/input_ids"], io["in/attention_mask"], io["in/bert_labels"]);
  // The reference's two train-mode passes after torch.manual_seed(77): same dropout call order,
  // same CPU bernoulli kernel (Debian's LibTorch is the build python3-torch uses), given
  // ATen's dropout masks instead of nlpkit's own generator.
  struct TorchMasks {
    bool before = torch_dropout_masks();
    TorchMasks() { set_torch_dropout_masks(true); }
    ~TorchMasks() { set_torch_dropout_masks(before); }
  } torch_masks;
  torch::manual_seed(77);
  const torch::Tensor logits1 = batch.forward();
  const torch::Tensor logits2 = batch.forward();
  expect_close(logits1, io["out/bert_kl_logits1"], 1e-4, 1e-5);
  expect_close(logits2, io["out/bert_kl_logits2"], 1e-4, 1e-5);
  RDropConfig config;
  config.alpha = 0.5;
  config.variant = "bert";
  torch::manual_seed(77);
  expect_close(rdrop_step(config, batch), io["out/bert_kl_loss_seed77"], 1e-4, 1e-5);
  // The two passes really differ (dropout is on), so the KL term is not trivially 0.
  EXPECT_GT((logits1 - logits2).abs().max().item<double>(), 1e-3);
}

// ---------------------------------------------------------------------------------------------
// SiFT on the real models

const std::string kSift = kSrc + "/tests/data/golden/deberta_sift_tiny";

/// deberta_sift_tiny's DeBERTa sequence classifier (microsoft/DeBERTa config keys, its "pooling"
/// object included), every tensor loaded.
DebertaClassifier load_sift_deberta() {
  const nlohmann::json raw =
      nlohmann::json::parse(std::ifstream(kSift + "/config.json"), nullptr, true);
  DebertaOptions options = deberta_options_from_json(raw, kSift + "/config.json")
                               .absolute_position_embeddings(true);  // in the reference's state
  DebertaClassifier model(options, 3);
  HfLoadReport report = load_hf_weights(*model, read_hf_weights(kSift), kSift, "deberta");
  EXPECT_TRUE(report.initialized.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  EXPECT_EQ(report.loaded.size(), 43u);
  return model;
}

TEST(SiftStep, DebertaMatchesEveryIntermediateOfTheFixture) {
  DebertaClassifier model = load_sift_deberta();
  model->eval();  // as the reference: the perturbation is the only random step
  auto io = io_of(kSift);
  const torch::Tensor ids = io["in/input_ids"], mask = io["in/input_mask"];
  // The LayerNorm's input and the plain logits, without SiFT.
  torch::Tensor ln_input;
  model->deberta->embeddings->layer_norm_input_hook = [&](const torch::Tensor& x) {
    ln_input = x.detach().clone();
    return x;
  };
  const torch::Tensor plain = model->forward(ids, mask).detach();
  model->deberta->embeddings->layer_norm_input_hook = nullptr;
  expect_close(ln_input, io["out/ln_input"], 1e-4, 1e-5);
  expect_close(plain, io["out/clean_logits_unhooked"], 1e-4, 1e-5);

  ClassifierBatch batch = deberta_batch(model, ids, mask, io["in/labels"]);
  SiftConfig config;  // the fixture's settings
  config.weight = 5;
  config.sigma = 0.01;
  config.step_size = 1e-4;
  SiftStepOutput out = sift_step(config, batch, io["out/delta0"]);
  expect_close(out.normalized, io["out/ln_input_normalized"], 1e-4, 1e-5);
  expect_close(out.clean_logits, io["out/clean_logits_hooked"], 1e-4, 1e-5);
  expect_close(out.delta0, io["out/delta0"], 0, 0);
  // delta_grad is about 2e-7 in size: relative bounds, as the fixture's README says.
  expect_close(out.delta_grad, io["out/delta_grad"], 1e-3, 1e-11);
  expect_close(out.delta1 - out.delta0, io["out/delta1"] - io["out/delta0"], 1e-3, 1e-9);
  expect_close(out.delta1, io["out/delta1"], 1e-4, 1e-5);
  expect_close(out.task_loss, io["out/task_loss"], 1e-4, 1e-5);
  expect_close(out.adv_loss, io["out/adv_loss"], 1e-4, 1e-5);
  expect_close(out.loss, io["out/total_loss"], 1e-4, 1e-5);
  EXPECT_FALSE(static_cast<bool>(model->deberta->embeddings->layer_norm_input_hook));
  // The step trains: the loss reaches the classifier and the word embeddings.
  out.loss.backward();
  EXPECT_GT(model->classifier->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(model->deberta->embeddings->word_embeddings->weight.grad().abs().sum().item<double>(),
            0);
}

TEST(RegularizedSteps, DebertaClassifierRunsRDropAndMixup) {
  torch::manual_seed(3);
  DebertaClassifier model = load_sift_deberta();
  model->train();
  auto io = io_of(kSift);
  ClassifierBatch batch =
      deberta_batch(model, io["in/input_ids"], io["in/input_mask"], io["in/labels"]);
  RDropConfig rdrop;
  rdrop.alpha = 1;
  EXPECT_TRUE(std::isfinite(rdrop_step(rdrop, batch).item<double>()));
  for (const std::string level : {"embedding", "sentence"}) {
    MixupConfig mixup;
    mixup.alpha = 0.4;
    mixup.level = level;
    const torch::Tensor loss = mixup_step(mixup, batch);
    EXPECT_TRUE(std::isfinite(loss.item<double>())) << level;
    loss.backward();
    EXPECT_FALSE(static_cast<bool>(model->features_hook)) << level;
    EXPECT_FALSE(static_cast<bool>(model->deberta->embeddings->layer_norm_input_hook)) << level;
  }
}

TEST(SiftStep, BertCleanPassKeepsTheLogitsAndTheStepTrains) {
  torch::manual_seed(0);
  BertClassifier model = load_rdrop_bert();
  model->eval();  // no dropout: the passes differ only by the perturbation
  auto io = io_of(kRDrop);
  const torch::Tensor ids = io["in/input_ids"], mask = io["in/attention_mask"];
  const torch::Tensor plain = model->forward(ids, mask).detach();
  ClassifierBatch batch = bert_batch(model, ids, mask, io["in/bert_labels"]);
  SiftConfig config;
  config.weight = 5;
  SiftStepOutput out = sift_step(config, batch);
  // LayerNorm(LayerNorm_noaffine(x)) differs from LayerNorm(x) only through eps.
  expect_close(out.clean_logits, plain, 1e-4, 1e-5);
  EXPECT_EQ(out.delta0.sizes(), (torch::IntArrayRef{2, 8, 32}));
  EXPECT_LE(out.delta0.abs().max().item<double>(), 0.02);
  EXPECT_GT(out.delta_grad.abs().max().item<double>(), 0);
  const double moved = (out.delta1 - out.delta0).abs().max().item<double>();
  EXPECT_GT(moved, 0);
  EXPECT_LE(moved, 1e-4 * (1 + 1e-5));  // step_size * g / (1e-6 + max|g|) <= step_size
  EXPECT_GT(out.adv_loss.item<double>(), 0);
  // Same delta0, same step: deterministic.
  SiftStepOutput again = sift_step(config, batch, out.delta0);
  EXPECT_TRUE(torch::allclose(again.loss, out.loss, 1e-6, 1e-7));
  EXPECT_FALSE(static_cast<bool>(model->bert->embeddings->layer_norm_input_hook));
  out.loss.backward();
  for (const auto& p : model->named_parameters()) {
    if (p.key().find("pooler") != std::string::npos ||
        p.key().find("classifier") != std::string::npos ||
        p.key().find("word_embeddings") != std::string::npos) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(SiftStep, TextCnnCleanPassIsThePlainForward) {
  torch::manual_seed(0);
  TextClassifier model(TextClassifierOptions(20, 3)
                           .embedding_dim(8)
                           .cnn_hidden_size(4)
                           .kernel_sizes({2})
                           .hidden_size(4)
                           .num_layers(1)
                           .dropout(0));
  const torch::Tensor ids = torch::randint(1, 20, {2, 2, 5});
  torch::Tensor word_mask = torch::ones({2, 2, 5}, torch::kBool);
  word_mask[1][1] = false;
  const torch::Tensor sentence_mask = torch::tensor({{true, true}, {true, false}});
  const torch::Tensor masked_ids = ids * word_mask;
  ClassifierBatch batch;
  batch.model = model.ptr().get();
  batch.forward = [&] { return model->forward(masked_ids, word_mask, sentence_mask).logits; };
  batch.labels = torch::tensor({0, 2});
  batch.set_embedding_hook = [&](TensorHook h) { model->embedding_hook = std::move(h); };
  batch.set_features_hook = [&](TensorHook h) { model->document_hook = std::move(h); };
  const torch::Tensor plain = batch.forward().detach();
  SiftConfig config;
  config.weight = 1;
  SiftStepOutput out = sift_step(config, batch);
  EXPECT_TRUE(torch::equal(out.clean_logits.detach(), plain));
  EXPECT_EQ(out.delta0.sizes(), (torch::IntArrayRef{2, 2, 5, 8}));
  EXPECT_GT(out.delta_grad.abs().max().item<double>(), 0);
  EXPECT_GT(out.adv_loss.item<double>(), 0);
  out.loss.backward();
  EXPECT_GT(model->fc->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_GT(model->word_embedding->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(static_cast<bool>(model->embedding_hook));
}

// ---------------------------------------------------------------------------------------------
// The tasks: a few steps of each regularizer through `nlpkit train`'s code path

class RegularizedTrainingTest : public TempDirTest {
 protected:
  FitResult train(const std::string& file, std::vector<std::string> overrides) {
    std::vector<std::string> base = {"data.train=" + kSrc + "/tests/data/tiny_cls/train.tsv",
                                     "data.valid=\"\"",
                                     "data.test=\"\"",
                                     "output_dir=" + (dir_ / "run").string(),
                                     "logging.progress=none",
                                     "logging.tensorboard=false",
                                     "trainer.max_steps=2",
                                     "device=cpu"};
    base.insert(base.end(), overrides.begin(), overrides.end());
    ExperimentConfig c = load_config(kSrc + "/configs/tiny/" + file, base);
    seed_everything(c.seed);
    auto task = make_task(c, "", torch::kCPU);
    return Trainer(c, *task, torch::kCPU).fit();
  }
};

TEST_F(RegularizedTrainingTest, TextCnnTrainsWithEachRegularizer) {
  for (const std::vector<std::string>& o : std::vector<std::vector<std::string>>{
           {"regularization.rdrop.alpha=1"},
           {"regularization.sift.weight=1"},
           {"regularization.mixup.alpha=0.4"},
           {"regularization.mixup.alpha=0.4", "regularization.mixup.level=embedding"}}) {
    std::filesystem::remove_all(dir_ / "run");
    FitResult r = train("classifier.yaml", o);
    ASSERT_EQ(r.losses.size(), 2u) << o[0];
    EXPECT_TRUE(std::isfinite(r.losses.back())) << o[0];
  }
}

TEST_F(RegularizedTrainingTest, SameSeedSameLosses) {
  for (const char* o : {"regularization.rdrop.alpha=1", "regularization.sift.weight=1",
                        "regularization.mixup.alpha=0.4", "augmentation.eda.copies=1"}) {
    std::vector<std::string> overrides = {
        std::string(o), "augmentation.eda.wordnet=" + kSrc + "/tests/data/wordnet_tiny"};
    std::filesystem::remove_all(dir_ / "run");
    const std::vector<double> first = train("classifier.yaml", overrides).losses;
    std::filesystem::remove_all(dir_ / "run");
    EXPECT_EQ(train("classifier.yaml", overrides).losses, first) << o;
  }
}

TEST_F(RegularizedTrainingTest, EdaAugmentsTheTrainingSplitOnly) {
  const std::string src = kSrc;
  auto config = [&](const std::string& copies) {
    return load_config(src + "/configs/tiny/classifier.yaml",
                       {"data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                        "data.valid=" + src + "/tests/data/tiny_cls/valid.tsv", "data.test=\"\"",
                        "augmentation.eda.copies=" + copies,
                        "augmentation.eda.wordnet=" + src + "/tests/data/wordnet_tiny"});
  };
  const std::string plain = make_task(config("0"), "", torch::kCPU)->summary();
  const std::string augmented = make_task(config("2"), "", torch::kCPU)->summary();
  // 64 training examples, 3 times as many with 2 copies each; the validation split unchanged.
  EXPECT_TRUE(Contains(plain, "train 64")) << plain;
  EXPECT_TRUE(Contains(augmented, "train 192")) << augmented;
  const std::string valid = plain.substr(plain.find("valid"), 9);
  EXPECT_TRUE(Contains(augmented, valid)) << augmented;
  EXPECT_ERROR(make_task(load_config(src + "/configs/tiny/classifier.yaml",
                                     {"data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                                      "augmentation.eda.copies=1",
                                      "augmentation.eda.wordnet=" + (dir_ / "none").string()}),
                         "", torch::kCPU),
               "install the Debian package wordnet-base");
}

TEST_F(RegularizedTrainingTest, TrainingSubsetAndBootstrapTransformTheTrainingSplitOnly) {
  const std::string src = kSrc;
  auto summary = [&](std::vector<std::string> o) {
    o.insert(o.end(), {"data.train=" + src + "/tests/data/tiny_cls/train.tsv",
                       "data.valid=" + src + "/tests/data/tiny_cls/valid.tsv", "data.test=\"\""});
    return make_task(load_config(src + "/configs/tiny/classifier.yaml", o), "", torch::kCPU)
        ->summary();
  };
  const std::string plain = summary({});
  EXPECT_TRUE(Contains(plain, "train 64")) << plain;
  const std::string subset = summary({"data.train_examples=20"});
  EXPECT_TRUE(Contains(subset, "train 20")) << subset;
  const std::string valid = plain.substr(plain.find("valid"), 9);
  EXPECT_TRUE(Contains(subset, valid)) << subset;
  // A bootstrap sample keeps the size; the subset, then bootstrap, then EDA copies.
  EXPECT_TRUE(Contains(summary({"data.bootstrap=true"}), "train 64"));
  const std::string all = summary({"data.train_examples=20", "data.bootstrap=true",
                                   "augmentation.eda.copies=1",
                                   "augmentation.eda.wordnet=" + src + "/tests/data/wordnet_tiny"});
  EXPECT_TRUE(Contains(all, "train 40")) << all;
  EXPECT_ERROR(summary({"data.train_examples=65"}),
               "data.train_examples: 65 asked for, but " + src +
                   "/tests/data/tiny_cls/train.tsv has 64 examples");
  EXPECT_ERROR(summary({"data.train_examples=-1"}), "data.train_examples");
}

TEST_F(RegularizedTrainingTest, BootstrapSamplesDifferBySeed) {
  auto losses = [&](const std::string& seed) {
    std::filesystem::remove_all(dir_ / "run");
    return train("classifier.yaml", {"data.bootstrap=true", "seed=" + seed}).losses;
  };
  EXPECT_EQ(losses("1"), losses("1"));
  EXPECT_NE(losses("1"), losses("2"));
}

TEST_F(RegularizedTrainingTest, BertTrainsWithEachRegularizer) {
  for (const std::vector<std::string>& o : std::vector<std::vector<std::string>>{
           {"regularization.rdrop.alpha=0.5", "regularization.rdrop.variant=bert"},
           {"regularization.sift.weight=5"},
           {"regularization.mixup.alpha=0.4", "regularization.mixup.level=embedding"}}) {
    std::filesystem::remove_all(dir_ / "run");
    FitResult r = train("bert_classifier.yaml", o);
    ASSERT_EQ(r.losses.size(), 2u) << o[0];
    EXPECT_TRUE(std::isfinite(r.losses.back())) << o[0];
  }
}

// ---------------------------------------------------------------------------------------------
// Bad config

TEST_F(RegularizedTrainingTest, BadConfigIsNamedWithFileAndLine) {
  const std::string bad_alpha = write("a.yaml", "regularization:\n  rdrop:\n    alpha: -1\n");
  EXPECT_ERROR(load_config(bad_alpha), "a.yaml:3:12: regularization.rdrop.alpha: must be >= 0");
  const std::string variant = write("v.yaml", "regularization:\n  rdrop:\n    variant: paper\n");
  EXPECT_ERROR(load_config(variant), "v.yaml:3:14: regularization.rdrop.variant:");
  const std::string two =
      write("t.yaml", "regularization:\n  rdrop:\n    alpha: 1\n  sift:\n    weight: 1\n");
  EXPECT_ERROR(load_config(two), "t.yaml:5:5: regularization.sift: only one training-step");
  const std::string lm =
      write("l.yaml", "task: language_model\nregularization:\n  mixup:\n    alpha: 1\n");
  EXPECT_ERROR(load_config(lm),
               "l.yaml:4:5: regularization.mixup: is an option of task classification");
  const std::string level = write("m.yaml", "regularization:\n  mixup:\n    level: word\n");
  EXPECT_ERROR(load_config(level), "m.yaml:3:12: regularization.mixup.level:");
  const std::string sigma = write("s.yaml", "regularization:\n  sift:\n    sigma: 0\n");
  EXPECT_ERROR(load_config(sigma), "s.yaml:3:12: regularization.sift.sigma: must be > 0");
}

}  // namespace
}  // namespace nlpkit
