#include "trainers/tasks/bert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "modules/deberta.h"
#include "modules/deberta_pretraining.h"
#include "modules/lora.h"
#include "tests/test_util.h"
#include "trainers/huggingface.h"
#include "trainers/optim.h"
#include "trainers/registry.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;

namespace nlpkit {
namespace {

const std::string kSrc = NLPKIT_SOURCE_DIR;
const std::string kFixture = kSrc + "/tests/data/golden/bert_pretraining_tiny";

class BertTaskTest : public TempDirTest {
 protected:
  ExperimentConfig config(const std::string& file, std::vector<std::string> overrides) {
    std::vector<std::string> base = {"data.train=" + kSrc + "/tests/data/tiny_cls/train.tsv",
                                     "data.valid=" + kSrc + "/tests/data/tiny_cls/valid.tsv",
                                     "data.test=\"\"",
                                     "output_dir=" + (dir_ / "run").string(),
                                     "logging.progress=none",
                                     "logging.tensorboard=false",
                                     "device=cpu"};
    base.insert(base.end(), overrides.begin(), overrides.end());
    return load_config(kSrc + "/configs/tiny/" + file, base);
  }

  FitResult train(const ExperimentConfig& c, std::unique_ptr<Task>* task_out = nullptr) {
    seed_everything(c.seed);
    auto task = make_task(c, "", torch::kCPU);
    FitResult r = Trainer(c, *task, torch::kCPU).fit();
    if (task_out) *task_out = std::move(task);
    return r;
  }
};

TEST_F(BertTaskTest, MaskedLmLearnsAndEvaluates) {
  ExperimentConfig c = config("bert_mlm.yaml", {"trainer.epochs=6"});
  std::unique_ptr<Task> task;
  FitResult r = train(c, &task);
  ASSERT_GE(r.losses.size(), 40u);
  EXPECT_LT(r.losses.back(), r.losses.front() - 1.0);  // MLM + NSP loss falls
  Evaluation e = task->evaluate(Split::kValid);
  for (const char* m : {"loss", "mlm_loss", "perplexity", "mlm_accuracy", "nsp_accuracy"}) {
    EXPECT_TRUE(e.metrics.count(m)) << m;
  }
  EXPECT_NEAR(e.metrics["perplexity"], std::exp(e.metrics["mlm_loss"]), 1e-9);
  EXPECT_GT(e.metrics["mlm_accuracy"], 0.05);
  // Evaluation masks are fixed: the same numbers twice.
  EXPECT_EQ(task->evaluate(Split::kValid).metrics["mlm_loss"], e.metrics["mlm_loss"]);
  // predict fills [MASK] and lists candidates.
  const auto lines = task->predict({"free [MASK] prize", "no mask here"});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find('\t'), std::string::npos);
  EXPECT_EQ(lines[1].find('\t'), std::string::npos);
}

TEST_F(BertTaskTest, CheckpointIsAHuggingFaceFolderAndFineTunesWithLoraAndDecay) {
  FitResult pre = train(config("bert_mlm.yaml", {"trainer.epochs=1"}));
  const std::string ckpt = pre.last_checkpoint;
  for (const char* f : {"config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"}) {
    EXPECT_TRUE(fs::exists(ckpt + "/" + f)) << f;
  }
  EXPECT_EQ(read_hf_bert_config(ckpt).architectures,
            std::vector<std::string>{"BertForPreTraining"});

  ExperimentConfig c = config(
      "bert_classifier.yaml",
      {"model.pretrained=" + (dir_ / "run").string(), "output_dir=" + (dir_ / "ft").string(),
       "model.lora_rank=2", "model.layer_lr_decay=0.5", "model.head_lr=0.006", "trainer.epochs=1"});
  seed_everything(c.seed);
  auto task = make_task(c, "", torch::kCPU);
  // Pretrained encoder weights arrived (the classifier head is new).
  std::map<std::string, torch::Tensor> saved;
  for (auto& [n, t] : load_safetensors(ckpt + "/model.safetensors").tensors) saved[n] = t;
  const NamedTensors state = module_state(*task->model());
  for (const auto& [name, t] : state) {
    if (saved.count(name)) {
      EXPECT_TRUE(t.equal(saved[name])) << name;
    }
  }
  // Only adapters and the head train; lr scales follow the depth.
  for (const auto& p : task->model()->named_parameters()) {
    const bool lora = p.key().find("lora_") != std::string::npos;
    const bool head = p.key().rfind("classifier.", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), lora || head) << p.key();
  }
  EXPECT_DOUBLE_EQ(task->lr_scale("classifier.weight"), 2.0);  // 0.006 / 0.003
  EXPECT_DOUBLE_EQ(task->lr_scale("bert.pooler.dense.weight"), 1.0);
  EXPECT_DOUBLE_EQ(task->lr_scale("bert.encoder.layer.1.output.dense.weight"), 0.5);
  EXPECT_DOUBLE_EQ(task->lr_scale("bert.encoder.layer.0.output.dense.weight"), 0.25);
  EXPECT_DOUBLE_EQ(task->lr_scale("bert.embeddings.word_embeddings.weight"), 0.125);
  FitResult ft = Trainer(c, *task, torch::kCPU).fit();
  EXPECT_TRUE(fs::exists(ft.last_checkpoint + "/adapter.safetensors"));

  // Export merges the adapters; the exported folder gives the fine-tuned model's outputs.
  const std::string out = (dir_ / "export").string();
  fs::create_directories(out);
  auto reloaded =
      make_task(load_config(ft.last_checkpoint + "/config.yaml"), ft.last_checkpoint, torch::kCPU);
  load_weights(*reloaded, ft.last_checkpoint);
  reloaded->model()->eval();
  auto ids = torch::tensor({{2, 10, 11, 12, 3}}, torch::kInt64);
  torch::Tensor before;
  {
    torch::NoGradGuard no_grad;
    before = reloaded->model()->as<BertClassifier>()->forward(ids);
  }
  reloaded->export_huggingface(out);
  for (const auto& [name, t] : load_safetensors(out + "/model.safetensors").tensors) {
    EXPECT_EQ(name.find("lora_"), std::string::npos) << name;
  }
  NamedTensors result = hf_forward(out, {{"input_ids", ids}});
  torch::Tensor logits;
  for (auto& [name, t] : result) {
    if (name == "logits") logits = t;
  }
  ASSERT_TRUE(logits.defined());
  EXPECT_TRUE(torch::allclose(logits, before, 1e-5, 1e-6));
  EXPECT_FALSE(fs::exists(out + "/adapter.safetensors"));
}

TEST_F(BertTaskTest, ExportThenImportIsBitIdentical) {
  FitResult r = train(config("bert_classifier.yaml", {"trainer.max_steps=2"}));
  auto task = make_task(load_config(r.last_checkpoint + "/config.yaml"), r.last_checkpoint,
                        torch::kCPU);
  load_weights(*task, r.last_checkpoint);
  const std::string out = (dir_ / "export").string();
  fs::create_directories(out);
  task->export_huggingface(out);
  // The exported weights are the checkpoint's, bit for bit, and import back the same.
  HfBertConfig hf = read_hf_bert_config(out);
  EXPECT_EQ(hf.labels, (std::vector<std::string>{"ham", "spam"}));
  BertClassifier again(hf.options, 2);
  HfLoadReport report = load_hf_weights(*again, read_hf_weights(out), out, "bert");
  EXPECT_TRUE(report.initialized.empty() && report.unexpected.empty()) << report.summary();
  std::map<std::string, torch::Tensor> theirs;
  for (auto& [n, t] : module_state(*again)) theirs[n] = t;
  for (const auto& [n, t] : module_state(*task->model())) EXPECT_TRUE(t.equal(theirs[n])) << n;
  again->eval();
  task->model()->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({{2, 10, 11, 12, 3, 0}}, torch::kInt64);
  auto mask = torch::tensor({{1, 1, 1, 1, 1, 0}}, torch::kInt64);
  EXPECT_TRUE(again->forward(ids, mask).equal(task->model()->as<BertClassifier>()->forward(ids, mask)));
  // The tokenizer files travel too.
  for (const char* f : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  }
}

TEST_F(BertTaskTest, FreezingAndL2SpNeedAndUseThePretrainedWeights) {
  train(config("bert_mlm.yaml", {"trainer.epochs=1"}));
  ExperimentConfig c =
      config("bert_classifier.yaml",
             {"model.pretrained=" + (dir_ / "run").string(), "output_dir=" + (dir_ / "ft").string(),
              "model.freeze_layers=1", "model.freeze_embeddings=true", "model.l2sp=0.5",
              "trainer.epochs=1"});
  seed_everything(c.seed);
  auto task = make_task(c, "", torch::kCPU);
  for (const auto& p : task->model()->named_parameters()) {
    const bool frozen =
        p.key().rfind("bert.embeddings.", 0) == 0 || p.key().rfind("bert.encoder.layer.0.", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), !frozen) << p.key();
  }
  // At the pretrained weights the L2-SP penalty is zero; moving a weight costs l2sp * d^2.
  task->model()->eval();  // no dropout: the two losses differ by the penalty alone
  const StepOutput at_start = task->train_step(0, 0);
  torch::Tensor w;
  for (const auto& p : task->model()->named_parameters()) {
    if (p.key() == "bert.encoder.layer.1.output.dense.bias") w = p.value();
  }
  {
    torch::NoGradGuard no_grad;
    w[0].add_(2.0);
  }
  const double moved = task->train_step(0, 0).loss.item<double>();
  {
    torch::NoGradGuard no_grad;
    w[0].sub_(2.0);
  }
  // 0.5 * 2^2 = 2 from the penalty; the cross-entropy moves a little with the weight too.
  EXPECT_NEAR(moved - at_start.loss.item<double>(), 2.0, 0.3);

  ExperimentConfig scratch = config("bert_classifier.yaml", {"model.l2sp=0.5"});
  EXPECT_ERROR(make_task(scratch, "", torch::kCPU), "model.l2sp: needs model.pretrained");
}

TEST_F(BertTaskTest, FineTunesAHuggingFaceFolder) {
  // The fixture's BERT (vocab 100) with a 100-entry vocab.txt of our own beside it.
  const fs::path hf = dir_ / "hf";
  fs::create_directories(hf);
  fs::copy_file(kFixture + "/config.json", hf / "config.json");
  fs::copy_file(kFixture + "/model.safetensors", hf / "model.safetensors");
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char ch = 'a'; ch <= 'z'; ++ch) vocab += std::string(1, ch) + "\n##" + ch + "\n";
  for (int i = 0; i < 43; ++i) vocab += "w" + std::to_string(i) + "\n";
  write("hf/vocab.txt", vocab);
  ExperimentConfig c =
      config("bert_classifier.yaml",
             {"model.pretrained=" + hf.string(), "data.max_length=32", "trainer.max_steps=2"});
  FitResult r = train(c);
  EXPECT_EQ(r.losses.size(), 2u);
  // A vocab.txt larger than the model's vocabulary is refused.
  write("hf/vocab.txt", vocab + "extra1\nextra2\n");
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "more than config.json's vocab_size 100");
  // A folder without vocab.txt.
  fs::remove(hf / "vocab.txt");
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "has no vocab.txt");
  // max_length beyond the position embeddings (64).
  write("hf/vocab.txt", vocab);
  EXPECT_ERROR(make_task(config("bert_classifier.yaml",
                                {"model.pretrained=" + hf.string(), "data.max_length=100"}),
                         "", torch::kCPU),
               "data.max_length (100) exceeds the model's max_position_embeddings (64)");
  // A vocab.txt without [UNK].
  write("hf/vocab.txt", "[PAD]\n[CLS]\n[SEP]\n[MASK]\na\n");
  EXPECT_ERROR(make_task(c, "", torch::kCPU), "[UNK]");
}

TEST_F(BertTaskTest, SentencePieceModelIsLearnedSavedAndLoadedBack) {
  // No tokenizer.model: a unigram model is learned from data.train; the checkpoint carries it
  // as a DeBERTa-v3 folder does (spm.model, no vocab.txt), and fine-tuning from it uses it.
  FitResult pre = train(config("bert_mlm.yaml", {"tokenizer.type=sentencepiece",
                                                 "data.max_vocab_size=200", "trainer.epochs=1"}));
  const std::string ckpt = pre.last_checkpoint;
  EXPECT_TRUE(fs::exists(ckpt + "/spm.model"));
  EXPECT_FALSE(fs::exists(ckpt + "/vocab.txt"));
  EXPECT_FALSE(fs::exists(ckpt + "/added_tokens.json"));  // [MASK] is a piece of ours
  const auto tc = nlohmann::json::parse(std::ifstream(ckpt + "/tokenizer_config.json"));
  EXPECT_EQ(tc["tokenizer_class"], "DebertaV2Tokenizer");
  const int64_t vocab_size = read_hf_bert_config(ckpt).options.vocab_size();
  EXPECT_GT(vocab_size, 60);  // up to 200: the tiny data has fewer
  EXPECT_LE(vocab_size, 200);
  EXPECT_EQ(read_hf_bert_config(ckpt).options.pad_id(), 0);

  ExperimentConfig c = config("bert_classifier.yaml",
                              {"model.pretrained=" + (dir_ / "run").string(),
                               "output_dir=" + (dir_ / "ft").string(), "trainer.max_steps=2"});
  std::unique_ptr<Task> task;
  FitResult r = train(c, &task);
  EXPECT_EQ(r.losses.size(), 2u);
  EXPECT_TRUE(fs::exists(r.last_checkpoint + "/spm.model"));
  // The whole-word masking of the pretraining run used "▁" word starts; the fine-tuned
  // classifier predicts with the same pieces.
  EXPECT_EQ(task->predict({"win a free prize"}).size(), 1u);

  // A bad tokenizer.model names the file.
  EXPECT_ERROR(make_task(config("bert_classifier.yaml",
                                {"tokenizer.type=sentencepiece",
                                 "tokenizer.model=" + (dir_ / "none.model").string()}),
                         "", torch::kCPU),
               "SentencePiece model file not found: " + (dir_ / "none.model").string());
}

TEST_F(BertTaskTest, BertNeedsASubwordTokenizer) {
  EXPECT_ERROR(
      make_task(config("bert_classifier.yaml", {"tokenizer.type=whitespace"}), "", torch::kCPU),
      "tokenizer.type: model.type bert needs a subword tokenizer, wordpiece or sentencepiece, "
      "got 'whitespace'");
  EXPECT_ERROR(make_task(config("classifier.yaml", {"task=masked_lm"}), "", torch::kCPU),
               "task masked_lm takes bert or deberta, got 'text_cnn_bilstm_attention'");
}

// ---------------------------------------------------------------- DeBERTa

double mean(std::vector<double>::const_iterator begin, std::vector<double>::const_iterator end) {
  return std::accumulate(begin, end, 0.0) / static_cast<double>(std::distance(begin, end));
}

std::map<std::string, torch::Tensor> state_map(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [n, t] : module_state(m)) out[n] = t;
  return out;
}

TEST_F(BertTaskTest, DebertaClassifierTrainsAndExportsBitIdentically) {
  ExperimentConfig c = config("deberta_classifier.yaml", {});
  std::unique_ptr<Task> task;
  FitResult r = train(c, &task);
  ASSERT_GE(r.losses.size(), 16u);
  // The mean loss of the last epoch's batches is below the first epoch's.
  EXPECT_LT(mean(r.losses.end() - 8, r.losses.end()), mean(r.losses.begin(), r.losses.begin() + 8));
  EXPECT_TRUE(task->evaluate(Split::kValid).metrics.count("macro_f1"));
  EXPECT_EQ(read_hf_deberta_config(r.last_checkpoint).architectures,
            std::vector<std::string>{"DebertaV2ForSequenceClassification"});

  // Checkpoint -> task -> HuggingFace folder -> DebertaClassifier: the same tensors, bit for bit.
  auto reloaded =
      make_task(load_config(r.last_checkpoint + "/config.yaml"), r.last_checkpoint, torch::kCPU);
  load_weights(*reloaded, r.last_checkpoint);
  const std::string out = (dir_ / "export").string();
  fs::create_directories(out);
  reloaded->export_huggingface(out);
  HfDebertaConfig hf = read_hf_deberta_config(out);
  EXPECT_EQ(hf.labels, (std::vector<std::string>{"ham", "spam"}));
  const DebertaOptions& o = hf.options;
  EXPECT_EQ(o.position_buckets(), 16);
  EXPECT_EQ(o.pos_att_type(), "p2c|c2p");
  EXPECT_TRUE(o.relative_attention() && o.share_att_key());
  EXPECT_EQ(o.norm_rel_ebd(), "layer_norm");
  DebertaClassifier again(o, 2, hf.classifier_dropout);
  HfLoadReport report = load_hf_weights(*again, read_hf_weights(out), out, "deberta");
  EXPECT_TRUE(report.initialized.empty() && report.unexpected.empty()) << report.summary();
  auto theirs = state_map(*again);
  for (const auto& [n, t] : module_state(*reloaded->model())) {
    EXPECT_TRUE(t.equal(theirs[n])) << n;
  }
  again->eval();
  reloaded->model()->eval();
  auto ids = torch::tensor({{2, 10, 11, 12, 3, 0}}, torch::kInt64);
  auto mask = torch::tensor({{1, 1, 1, 1, 1, 0}}, torch::kInt64);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = reloaded->model()->as<DebertaClassifier>()->forward(ids, mask);
    EXPECT_TRUE(again->forward(ids, mask).equal(expected));
  }
  // nlpkit forward reads the folder as DebertaV2ForSequenceClassification.
  NamedTensors result = hf_forward(out, {{"input_ids", ids}, {"attention_mask", mask}});
  EXPECT_EQ(result.back().first, "logits");
  EXPECT_TRUE(result.back().second.equal(expected));
}

TEST_F(BertTaskTest, DebertaClassifierTrainsWithEachRegularizer) {
  for (const std::vector<std::string>& o :
       {std::vector<std::string>{"regularization.sift.weight=1"},
        {"regularization.rdrop.alpha=0.5"},
        {"regularization.mixup.alpha=0.4", "regularization.mixup.level=embedding"}}) {
    std::vector<std::string> overrides = o;
    overrides.push_back("trainer.max_steps=3");
    FitResult r = train(config("deberta_classifier.yaml", overrides));
    ASSERT_EQ(r.losses.size(), 3u) << o[0];
    for (double l : r.losses) EXPECT_TRUE(std::isfinite(l)) << o[0];
  }
}

TEST_F(BertTaskTest, DebertaMaskedLmWithEmdAndWithHuggingFacesHead) {
  for (const char* emd : {"true", "false"}) {
    SCOPED_TRACE(emd);
    ExperimentConfig c = config("deberta_mlm.yaml", {std::string("model.emd=") + emd,
                                                     "output_dir=" + (dir_ / emd).string()});
    std::unique_ptr<Task> task;
    FitResult r = train(c, &task);
    ASSERT_EQ(r.losses.size(), 32u);  // 4 epochs of 8 batches
    EXPECT_LT(mean(r.losses.end() - 8, r.losses.end()),
              mean(r.losses.begin(), r.losses.begin() + 8) - 0.5);
    Evaluation e = task->evaluate(Split::kValid);
    EXPECT_FALSE(e.metrics.count("nsp_accuracy"));
    EXPECT_GT(e.metrics["mlm_accuracy"], 0.05);
    EXPECT_EQ(task->evaluate(Split::kValid).metrics["mlm_loss"], e.metrics["mlm_loss"]);
    const auto lines = task->predict({"free [MASK] prize", "no mask here"});
    EXPECT_NE(lines[0].find('\t'), std::string::npos);
    EXPECT_EQ(lines[1].find('\t'), std::string::npos);
    const bool has_emd = state_map(*task->model()).count("lm_predictions.lm_head.dense.weight");
    EXPECT_EQ(has_emd, std::string(emd) == "true");
  }
  // Fine-tuning from the EMD run: its encoder arrives, the EMD head is left out.
  ExperimentConfig c =
      config("deberta_classifier.yaml", {"model.pretrained=" + (dir_ / "true").string(),
                                         "model.layer_lr_decay=0.5", "model.freeze_layers=1"});
  auto task = make_task(c, "", torch::kCPU);
  const std::string ckpt = find_best_checkpoint((dir_ / "true").string());  // what it loads
  std::map<std::string, torch::Tensor> file;
  for (auto& [n, t] : load_safetensors(ckpt + "/model.safetensors").tensors) file[n] = t;
  int64_t loaded = 0;
  for (const auto& [n, t] : module_state(*task->model())) {
    if (file.count(n)) {
      EXPECT_TRUE(t.equal(file[n])) << n;
      ++loaded;
    }
  }
  EXPECT_GT(loaded, 30);
  EXPECT_DOUBLE_EQ(task->lr_scale("deberta.encoder.layer.1.output.dense.weight"), 0.5);
  EXPECT_DOUBLE_EQ(task->lr_scale("deberta.embeddings.word_embeddings.weight"), 0.125);
  EXPECT_DOUBLE_EQ(task->lr_scale("deberta.encoder.rel_embeddings.weight"), 1.0);
  EXPECT_DOUBLE_EQ(task->lr_scale("classifier.weight"), 1.0);
  for (const auto& p : task->model()->named_parameters()) {
    EXPECT_EQ(p.value().requires_grad(), p.key().rfind("deberta.encoder.layer.0.", 0) != 0)
        << p.key();
  }
}

TEST_F(BertTaskTest, DebertaFineTunesAHuggingFaceFolderWithLora) {
  // The DeBERTa-v3 fixture (vocab 100) with a 100-entry vocab.txt of our own beside it.
  const std::string fixture = kSrc + "/tests/data/golden/deberta_v3_tiny";
  const fs::path hf = dir_ / "hf";
  fs::create_directories(hf);
  fs::copy_file(fixture + "/config.json", hf / "config.json");
  fs::copy_file(fixture + "/model.safetensors", hf / "model.safetensors");
  std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
  for (char ch = 'a'; ch <= 'z'; ++ch) vocab += std::string(1, ch) + "\n##" + ch + "\n";
  for (int i = 0; i < 43; ++i) vocab += "w" + std::to_string(i) + "\n";
  write("hf/vocab.txt", vocab);
  ExperimentConfig c =
      config("deberta_classifier.yaml",
             {"model.pretrained=" + hf.string(), "model.lora_rank=2", "trainer.max_steps=2"});
  std::unique_ptr<Task> task;
  FitResult r = train(c, &task);
  EXPECT_EQ(r.losses.size(), 2u);
  int64_t adapters = 0;
  for (const auto& p : task->model()->named_parameters()) {
    const bool lora = p.key().find("lora_") != std::string::npos;
    adapters += lora;
    EXPECT_EQ(p.value().requires_grad(), lora || p.key().rfind("classifier.", 0) == 0) << p.key();
  }
  EXPECT_EQ(adapters, 2 * 2 * 2);  // query_proj and value_proj of 2 layers, A and B each
  // A BERT folder is not a DeBERTa one.
  EXPECT_ERROR(make_task(config("deberta_classifier.yaml", {"model.pretrained=" + kFixture}), "",
                         torch::kCPU),
               "model_type is 'bert', expected 'deberta-v2'");
}

TEST_F(BertTaskTest, ReplacedTokenDetectionLearnsAndHandsOverItsDiscriminator) {
  ExperimentConfig c = config("deberta_rtd.yaml", {});
  std::unique_ptr<Task> task;
  FitResult r = train(c, &task);
  ASSERT_EQ(r.losses.size(), 32u);
  EXPECT_LT(mean(r.losses.end() - 8, r.losses.end()),
            mean(r.losses.begin(), r.losses.begin() + 8) - 2.0);
  Evaluation e = task->evaluate(Split::kValid);
  for (const char* m : {"mlm_accuracy", "rtd_loss", "rtd_accuracy", "replaced_f1",
                        "replaced_precision", "replaced_recall"}) {
    EXPECT_TRUE(e.metrics.count(m)) << m;
  }
  EXPECT_GT(e.metrics["rtd_accuracy"], 0.8);  // most tokens are original
  EXPECT_EQ(task->evaluate(Split::kValid).metrics["rtd_loss"], e.metrics["rtd_loss"]);
  auto* rtd = task->model()->as<DebertaRTDImpl>();
  ASSERT_NE(rtd, nullptr);
  EXPECT_EQ(rtd->generator->options.num_layers(), 2);  // generator_depth 0.5 of 4
  EXPECT_EQ(rtd->generator->options.hidden_size(), 32);

  // Fine-tuning from the RTD run takes its (best) checkpoint's discriminator; with gdes its word
  // embeddings are the generator's plus the residual.
  const std::string pretrained = find_best_checkpoint((dir_ / "run").string());
  std::map<std::string, torch::Tensor> file;
  for (auto& [n, t] : load_safetensors(pretrained + "/model.safetensors").tensors) file[n] = t;
  auto ft =
      make_task(config("deberta_classifier.yaml", {"model.pretrained=" + (dir_ / "run").string(),
                                                   "output_dir=" + (dir_ / "ft").string()}),
                "", torch::kCPU);
  auto ours = state_map(*ft->model());
  EXPECT_TRUE(ours["deberta.embeddings.word_embeddings.weight"].equal(
      file["generator.deberta.embeddings.word_embeddings.weight"] +
      file["discriminator.deberta.embeddings.word_embeddings.weight"]));
  EXPECT_TRUE(ours["deberta.encoder.layer.3.attention.self.query_proj.weight"].equal(
      file["discriminator.deberta.encoder.layer.3.attention.self.query_proj.weight"]));

  // The HuggingFace export is the discriminator alone, embeddings folded.
  const std::string out = (dir_ / "export").string();
  fs::create_directories(out);
  task->export_huggingface(out);
  std::map<std::string, torch::Tensor> exported;
  for (auto& [n, t] : load_safetensors(out + "/model.safetensors").tensors) exported[n] = t;
  EXPECT_TRUE(exported.count("mask_predictions.classifier.weight"));
  for (const auto& [n, t] : exported) EXPECT_EQ(n.rfind("generator.", 0), std::string::npos) << n;
  const auto trained = state_map(*task->model());
  EXPECT_TRUE(exported["deberta.embeddings.word_embeddings.weight"].equal(
      trained.at("generator.deberta.embeddings.word_embeddings.weight") +
      trained.at("discriminator.deberta.embeddings.word_embeddings.weight")));
  EXPECT_EQ(read_hf_deberta_config(out).options.num_layers(), 4);
}

TEST_F(BertTaskTest, ReplacedTokenDetectionSharingModesAndBadOptions) {
  // es: one matrix under two names, optimised once.
  std::unique_ptr<Task> task;
  FitResult r = train(
      config("deberta_rtd.yaml", {"model.embedding_sharing=es", "trainer.max_steps=3"}), &task);
  EXPECT_EQ(r.losses.size(), 3u);
  auto* rtd = task->model()->as<DebertaRTDImpl>();
  EXPECT_TRUE(rtd->discriminator->deberta->embeddings->word_embeddings->weight.is_same(
      rtd->generator->deberta->embeddings->word_embeddings->weight));
  int64_t listed = 0;
  for (const auto& g : parameter_groups(*task->model())) listed += g.params.size();
  EXPECT_EQ(listed, static_cast<int64_t>(rtd->unique_parameters().size()));
  // none: a narrower generator.
  auto narrow = make_task(
      config("deberta_rtd.yaml", {"model.embedding_sharing=none", "model.generator_width=0.5"}), "",
      torch::kCPU);
  EXPECT_EQ(narrow->model()->as<DebertaRTDImpl>()->generator->options.hidden_size(), 16);
  EXPECT_ERROR(
      make_task(config("deberta_rtd.yaml", {"model.generator_width=0.5"}), "", torch::kCPU),
      "model.generator_width: embedding_sharing gdes shares the embedding matrix");
  EXPECT_ERROR(
      make_task(config("bert_mlm.yaml", {"task=replaced_token_detection"}), "", torch::kCPU),
      "task replaced_token_detection takes deberta, got 'bert'");
}

TEST_F(BertTaskTest, DebertaConfigErrorsNameTheKey) {
  write("d.yaml",
        "task: classification\nmodel:\n  type: deberta\n  max_position_embeddings: 64\n"
        "  position_buckets: 128\n");
  EXPECT_ERROR(load_config((dir_ / "d.yaml").string()),
               "d.yaml:5:21: model.position_buckets: 128 must not exceed "
               "model.max_position_embeddings (64)");
  write("e.yaml", "task: classification\nmodel:\n  type: deberta\n  pos_att_type: c2p|p2p\n");
  EXPECT_ERROR(load_config((dir_ / "e.yaml").string()),
               "e.yaml:4:17: model.pos_att_type: unknown value 'c2p|p2p'");
}

TEST(BertForward, MatchesTheFixtureUnderHuggingFaceNames) {
  std::map<std::string, torch::Tensor> io;
  for (auto& [name, t] : load_safetensors(kFixture + "/io.safetensors").tensors) io[name] = t;
  NamedTensors out = hf_forward(kFixture, {{"input_ids", io["in/input_ids"]},
                                           {"attention_mask", io["in/attention_mask"]},
                                           {"token_type_ids", io["in/token_type_ids"]}});
  std::map<std::string, torch::Tensor> got(out.begin(), out.end());
  std::vector<std::string> names;
  for (const auto& [name, t] : out) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"last_hidden_state", "pooler_output",
                                             "hidden_states.0", "hidden_states.1",
                                             "hidden_states.2", "attentions.0", "attentions.1",
                                             "prediction_logits", "seq_relationship_logits"}));
  for (const auto& [ours, theirs] : std::vector<std::pair<std::string, std::string>>{
           {"hidden_states.0", "out/embedding_output"},
           {"hidden_states.2", "out/layer1"},
           {"pooler_output", "out/pooler_output"},
           {"prediction_logits", "out/prediction_logits"},
           {"seq_relationship_logits", "out/seq_relationship_logits"}}) {
    EXPECT_LT((got[ours] - io[theirs]).abs().max().item<double>(), 1e-5) << ours;
  }
  EXPECT_EQ(got["attentions.0"].sizes(), (std::vector<int64_t>{2, 4, 10, 10}));
  EXPECT_ERROR(hf_forward(kFixture, {{"input_ids", torch::full({1, 3}, 100, torch::kInt64)}}),
               "token ids must be in [0, 100), got [100, 100]");
  EXPECT_ERROR(hf_forward(kFixture, {{"input_ids", torch::ones({1, 65}, torch::kInt64)}}),
               "sequence length 65 exceeds max_position_embeddings (64)");
  EXPECT_ERROR(hf_forward(kFixture, {{"ids", torch::ones({1, 3}, torch::kInt64)}}),
               "unknown input 'ids'");
}

}  // namespace
}  // namespace nlpkit
