#include "trainers/huggingface.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

const std::string kFixture =
    std::string(NLPKIT_SOURCE_DIR) + "/tests/data/golden/bert_pretraining_tiny";
const std::string kLegacy = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/hf_bert_legacy";

std::map<std::string, torch::Tensor> fixture_io() {
  std::map<std::string, torch::Tensor> io;
  for (auto& [name, t] : load_safetensors(kFixture + "/io.safetensors").tensors) io[name] = t;
  return io;
}

/// |actual - expected| <= atol + rtol |expected|, the fixture's tolerance.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected,
                  const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double worst = (actual - expected).abs().sub(expected.abs().mul(1e-4)).max().item<double>();
  EXPECT_LE(worst, 1e-5) << what << ": max |diff| "
                         << (actual - expected).abs().max().item<double>();
}

TEST(HuggingFace, BertPretrainingMatchesTheFixture) {
  HfBertConfig config = read_hf_bert_config(kFixture);
  EXPECT_EQ(config.options.hidden_size(), 32);
  EXPECT_EQ(config.options.num_layers(), 2);
  EXPECT_EQ(config.options.num_heads(), 4);
  EXPECT_EQ(config.options.layer_norm_eps(), 1e-12);
  EXPECT_EQ(config.architectures, std::vector<std::string>{"BertForPreTraining"});
  BertForPreTraining model(config.options);
  HfLoadReport report = load_hf_weights(*model, read_hf_weights(kFixture), kFixture, "bert");
  EXPECT_TRUE(report.initialized.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  EXPECT_EQ(report.loaded.size(), 47u);  // 49 minus the two tied copies
  model->eval();

  auto io = fixture_io();
  torch::NoGradGuard no_grad;
  BertPreTrainingOutput out = model->forward(io["in/input_ids"], io["in/attention_mask"],
                                             io["in/token_type_ids"], true, true);
  expect_close(out.bert.hidden_states[0], io["out/embedding_output"], "embedding_output");
  expect_close(out.bert.hidden_states[1], io["out/layer0"], "layer0");
  expect_close(out.bert.hidden_states[2], io["out/layer1"], "layer1");
  expect_close(out.bert.last_hidden_state, io["out/last_hidden_state"], "last_hidden_state");
  expect_close(out.bert.pooler_output, io["out/pooler_output"], "pooler_output");
  expect_close(out.prediction_logits, io["out/prediction_logits"], "prediction_logits");
  expect_close(out.seq_relationship_logits, io["out/seq_relationship_logits"],
               "seq_relationship_logits");
  const auto loss = torch::nn::functional::cross_entropy(out.prediction_logits.reshape({-1, 100}),
                                                         io["in/mlm_labels"].reshape({-1})) +
                    torch::nn::functional::cross_entropy(out.seq_relationship_logits,
                                                         io["in/next_sentence_label"]);
  expect_close(loss, io["out/loss"], "loss");
}

TEST(HuggingFace, LegacyPytorchBinInFloat16LoadsIntoABaseModel) {
  // pytorch_model.bin (torch.save zip), float16, no "bert." prefix, LayerNorm gamma/beta.
  HfBertConfig config = read_hf_bert_config(kLegacy);
  BertModel base(config.options);
  HfLoadReport report = load_hf_weights(*base, read_hf_weights(kLegacy), kLegacy, "bert");
  EXPECT_TRUE(report.initialized.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  base->eval();
  auto io = fixture_io();
  torch::NoGradGuard no_grad;
  auto out = base->forward(io["in/input_ids"], io["in/attention_mask"], io["in/token_type_ids"]);
  // float16 weights: agreement to half precision only.
  EXPECT_LT((out.last_hidden_state - io["out/last_hidden_state"]).abs().max().item<double>(), 2e-2);
  EXPECT_EQ(base->embeddings->word_embeddings->weight.scalar_type(), torch::kFloat32);

  // The same checkpoint into a classifier: the head is new, nothing is unused.
  BertClassifier classifier(config.options, 3);
  report = load_hf_weights(*classifier, read_hf_weights(kLegacy), kLegacy, "bert");
  EXPECT_EQ(report.initialized, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(
      Contains(report.summary(),
               "2 newly initialised (not in the checkpoint): classifier.weight, classifier.bias"));
}

TEST(HuggingFace, PretrainingCheckpointIntoABaseModelReportsTheHeadsAsUnused) {
  HfBertConfig config = read_hf_bert_config(kFixture);
  BertModel base(config.options);
  HfLoadReport report = load_hf_weights(*base, read_hf_weights(kFixture), kFixture, "bert");
  EXPECT_TRUE(report.initialized.empty());
  EXPECT_EQ(report.unexpected.size(), 9u);  // cls.* (7 + the 2 tied copies)
}

class HuggingFaceFiles : public TempDirTest {};

TEST_F(HuggingFaceFiles, BadFoldersAndConfigsAreNamed) {
  EXPECT_ERROR(read_hf_bert_config((dir_ / "nope").string()), "pretrained model folder not found");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()), "has no config.json");
  write("config.json", "{\"model_type\": \"gpt2\"}");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()), "model_type is 'gpt2', expected 'bert'");
  write("config.json", "{\"model_type\": \"bert\", \"hidden_size\": \"big\"}");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()),
               "config.json: hidden_size: must be an integer, got \"big\"");
  write("config.json",
        "{\"model_type\": \"bert\", \"hidden_size\": 30, \"num_attention_heads\": 4}");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()),
               "hidden_size (30) must be a positive multiple of num_attention_heads (4)");
  write("config.json", "{\"model_type\": \"bert\", \"position_embedding_type\": \"relative_key\"}");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()),
               "position_embedding_type 'relative_key' is not supported");
  write("config.json", "{\"model_type\": \"bert\", \"hidden_act\": \"silu\"}");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()), "hidden_act: is not supported");
  write("config.json", "{not json");
  EXPECT_ERROR(read_hf_bert_config(dir_.string()), "config.json: invalid JSON");
  EXPECT_ERROR(read_hf_weights(dir_.string()),
               "has neither model.safetensors nor pytorch_model.bin");
  write("pytorch_model.bin", "garbage");
  EXPECT_ERROR(read_hf_weights(dir_.string()), "expected a torch.save zip archive");
}

TEST_F(HuggingFaceFiles, ShapeMismatchNamesTheKeyAndBothShapesAndLoadsNothing) {
  HfBertConfig config = read_hf_bert_config(kFixture);
  BertForPreTraining model(config.options.vocab_size(101));
  const auto before = model->bert->embeddings->position_embeddings->weight.clone();
  EXPECT_ERROR(load_hf_weights(*model, read_hf_weights(kFixture), kFixture, "bert"),
               "bert.embeddings.word_embeddings.weight: checkpoint [100, 32], model [101, 32]");
  EXPECT_TRUE(model->bert->embeddings->position_embeddings->weight.equal(before));
}

TEST_F(HuggingFaceFiles, ExportListsTheTiedCopiesAndReloadsBitIdentically) {
  HfBertConfig config = read_hf_bert_config(kFixture);
  BertForPreTraining model(config.options);
  load_hf_weights(*model, read_hf_weights(kFixture), kFixture, "bert");
  NamedTensors tensors = hf_export_tensors(*model);
  std::map<std::string, torch::Tensor> expected;
  for (auto& [name, t] : load_safetensors(kFixture + "/model.safetensors").tensors)
    expected[name] = t;
  ASSERT_EQ(tensors.size(), expected.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(expected.count(name)) << name;
    EXPECT_TRUE(t.equal(expected[name])) << name;
  }
  // Config round trip.
  nlohmann::json j = hf_bert_config_json(config.options, config.initializer_range,
                                         config.architectures, {"ham", "spam"}, config.raw);
  write("config.json", j.dump(2));
  HfBertConfig back = read_hf_bert_config(dir_.string());
  EXPECT_EQ(back.options.hidden_size(), config.options.hidden_size());
  EXPECT_EQ(back.options.intermediate_size(), config.options.intermediate_size());
  EXPECT_EQ(back.labels, (std::vector<std::string>{"ham", "spam"}));
  EXPECT_EQ(back.raw["transformers_version"], "4.19.0.dev0");  // unknown keys survive
}

TEST_F(HuggingFaceFiles, PickleReaderRebuildsStridedTensorsAndRefusesObjects) {
  const std::string pickles = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/pickle/";
  std::filesystem::copy_file(pickles + "plain_dict.bin", dir_ / "pytorch_model.bin");
  NamedTensors t = read_hf_weights(dir_.string());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].first, "a");
  EXPECT_EQ(t[0].second.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(t[0].second.equal(torch::arange(6, torch::kBFloat16).view({2, 3}).t()));
  EXPECT_EQ(t[1].second.scalar_type(), torch::kFloat64);
  EXPECT_EQ(t[1].second.item<double>(), 1.5);
  std::filesystem::remove(dir_ / "pytorch_model.bin");
  std::filesystem::copy_file(pickles + "object.bin", dir_ / "pytorch_model.bin");
  EXPECT_ERROR(read_hf_weights(dir_.string()), "refusing to load fractions.Fraction");
}

TEST_F(HuggingFaceFiles, HalfPrecisionSafetensorsLoadIntoFloatModels) {
  HfBertConfig config = read_hf_bert_config(kFixture);
  NamedTensors half;
  for (auto& [name, t] : read_hf_weights(kFixture)) {
    half.emplace_back(name, t.is_floating_point() ? t.to(torch::kBFloat16) : t);
  }
  save_safetensors((dir_ / "model.safetensors").string(), half);
  BertForPreTraining model(config.options);
  HfLoadReport report =
      load_hf_weights(*model, read_hf_weights(dir_.string()), dir_.string(), "bert");
  EXPECT_EQ(report.loaded.size(), 47u);
  const auto& w = model->bert->embeddings->word_embeddings->weight;
  EXPECT_EQ(w.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(w.equal(half[1].second.to(torch::kFloat32)));
}

}  // namespace
}  // namespace nlpkit
