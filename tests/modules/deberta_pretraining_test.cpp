#include "modules/deberta_pretraining.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/test_util.h"
#include "trainers/huggingface.h"
#include "trainers/safetensors.h"

namespace nlpkit {
namespace {

const std::string kGolden = std::string(NLPKIT_SOURCE_DIR) + "/tests/data/golden/";

DebertaOptions tiny() {
  return DebertaOptions()
      .vocab_size(30)
      .hidden_size(16)
      .num_layers(2)
      .num_heads(4)
      .intermediate_size(32)
      .max_position_embeddings(16)
      .position_buckets(4)
      .max_relative_positions(8)
      .dropout(0)
      .attention_dropout(0);
}

std::vector<std::string> names(const torch::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : module_state(m)) {
    if (name.find("position_ids") == std::string::npos) out.push_back(name);
  }
  return out;
}

std::vector<std::string> fixture_names(const std::string& fixture) {
  std::vector<std::string> out;
  for (const auto& [name, t] : load_safetensors(kGolden + fixture + "/model.safetensors").tensors) {
    out.push_back(name);
  }
  return out;
}

std::map<std::string, torch::Tensor> read_io(const std::string& fixture) {
  std::map<std::string, torch::Tensor> io;
  for (auto& [name, t] : load_safetensors(kGolden + fixture + "/io.safetensors").tensors) {
    io[name] = t;
  }
  return io;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

/// |actual - expected| <= atol + rtol |expected| with the fixtures' atol 1e-5, rtol 1e-4.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected,
                  const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double worst = (actual - expected).abs().sub(expected.abs().mul(1e-4)).max().item<double>();
  EXPECT_LE(worst, 1e-5) << what << ": max |diff| "
                         << (actual - expected).abs().max().item<double>();
}

DebertaRTD rtd_from_fixture(const std::string& sharing) {
  const std::string path = kGolden + "deberta_rtd_es_tiny/config.json";
  const nlohmann::json j = read_json(path);
  return DebertaRTD(
      DebertaRTDOptions(deberta_options_from_json(j["generator"], path, "generator."),
                        deberta_options_from_json(j["discriminator"], path, "discriminator."))
          .embedding_sharing(sharing)
          .rtd_lambda(10));
}

// ---------------------------------------------------------------- EMD

TEST(DebertaEMD, StateDictKeysAreMicrosofts) {
  const std::string path = kGolden + "deberta_emd_tiny/config.json";
  DebertaMaskedLMWithEMD m(deberta_options_from_json(read_json(path), path));
  std::vector<std::string> ours = names(*m), reference = fixture_names("deberta_emd_tiny");
  std::sort(ours.begin(), ours.end());
  std::sort(reference.begin(), reference.end());
  EXPECT_EQ(ours, reference);
}

TEST(DebertaEMD, MatchesTheFixture) {
  const std::string dir = kGolden + "deberta_emd_tiny";
  DebertaMaskedLMWithEMD m(deberta_options_from_json(read_json(dir + "/config.json"), dir));
  HfLoadReport report = load_hf_weights(*m, read_hf_weights(dir), dir, "deberta");
  EXPECT_TRUE(report.initialized.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  m->eval();
  auto io = read_io("deberta_emd_tiny");
  torch::NoGradGuard no_grad;
  DebertaMaskedLMWithEMDOutput out =
      m->forward(io["in/input_ids"], io["in/input_mask"], io["in/labels"]);
  EXPECT_TRUE(out.labels.equal(io["out/labels"]));
  expect_close(out.logits, io["out/logits"], "logits");
  expect_close(out.loss, io["out/loss"], "loss");
  // Without labels: every position; the target rows are the same.
  const torch::Tensor all = m->forward(io["in/input_ids"], io["in/input_mask"]).logits;
  EXPECT_EQ(all.sizes(), (std::vector<int64_t>{2, 12, 100}));
  expect_close(all[0][1], io["out/logits"][0], "all-positions logits");
}

TEST(DebertaEMD, GradientsReachEveryParameterAndItOverfits) {
  torch::manual_seed(0);
  DebertaMaskedLMWithEMD m(tiny());
  auto ids = torch::randint(5, 30, {4, 6}, torch::kInt64);
  auto labels = torch::zeros_like(ids);
  labels.index_put_({torch::indexing::Slice(), 2}, torch::randint(5, 30, {4}, torch::kInt64));
  labels.index_put_({torch::indexing::Slice(), 4}, torch::randint(5, 30, {4}, torch::kInt64));
  ids.index_put_({torch::indexing::Slice(), 2}, 1);
  ids.index_put_({torch::indexing::Slice(), 4}, 1);
  m->forward(ids, torch::ones_like(ids), labels).loss.mean().backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  torch::optim::Adam opt(m->parameters(), 3e-3);
  double loss_value = 0;
  for (int step = 0; step < 250; ++step) {
    opt.zero_grad();
    auto loss = m->forward(ids, torch::ones_like(ids), labels).loss.mean();
    loss.backward();
    opt.step();
    loss_value = loss.item<double>();
  }
  EXPECT_LT(loss_value, 0.05);
}

TEST(DebertaEMD, BadOptionsAreNamed) {
  EXPECT_THROW_WITH(DebertaMaskedLMWithEMD(tiny().num_layers(1)),
                    "Enhanced Mask Decoder needs num_layers >= 2, got 1");
  DebertaMaskedLMWithEMD m(tiny());
  EXPECT_THROW_WITH(m->forward(torch::ones({1, 3}, torch::kInt64), {}, torch::ones({1, 4})),
                    "labels [1, 4] must match input_ids [1, 3]");
}

// ---------------------------------------------------------------- RTD

TEST(DebertaRTD, StateDictKeysAreMicrosofts) {
  DebertaRTD m = rtd_from_fixture("es");
  std::vector<std::string> ours = names(*m), reference = fixture_names("deberta_rtd_es_tiny");
  std::sort(ours.begin(), ours.end());
  std::sort(reference.begin(), reference.end());
  EXPECT_EQ(ours, reference);
  // ES: one tensor under two names, listed once for an optimizer.
  EXPECT_TRUE(m->discriminator->deberta->embeddings->word_embeddings->weight.is_same(
      m->generator->deberta->embeddings->word_embeddings->weight));
  EXPECT_EQ(m->unique_parameters().size() + 2, m->parameters().size());
}

TEST(DebertaRTD, EsMatchesTheFixture) {
  const std::string dir = kGolden + "deberta_rtd_es_tiny";
  DebertaRTD m = rtd_from_fixture("es");
  HfLoadReport report = load_hf_weights(*m, read_hf_weights(dir), dir, "deberta");
  EXPECT_TRUE(report.initialized.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  m->eval();
  auto io = read_io("deberta_rtd_es_tiny");
  torch::NoGradGuard no_grad;
  DebertaRTDOutput out = m->forward(io["in/input_ids"], io["in/input_mask"], io["in/labels"],
                                    io["in/replaced_input_ids"]);
  expect_close(out.gen_logits, io["out/gen_logits"], "gen_logits");
  expect_close(out.gen_loss, io["out/gen_loss"], "gen_loss");
  expect_close(out.disc_logits, io["out/disc_logits"], "disc_logits");
  EXPECT_TRUE(out.disc_labels.equal(io["out/disc_labels"]));
  expect_close(out.disc_loss, io["out/disc_loss"], "disc_loss");
  expect_close(out.loss, io["out/total_loss"], "total_loss");
}

TEST(DebertaRTD, SamplingReplacesOnlyTheTargets) {
  torch::manual_seed(3);
  DebertaRTD m = rtd_from_fixture("es");
  auto io = read_io("deberta_rtd_es_tiny");
  DebertaRTDOutput out = m->forward(io["in/input_ids"], io["in/input_mask"], io["in/labels"]);
  const torch::Tensor targets = io["in/labels"].gt(0);
  EXPECT_TRUE(
      out.replaced_ids.masked_select(targets.logical_not())
          .equal(io["in/input_ids"].to(torch::kInt64).masked_select(targets.logical_not())));
  EXPECT_EQ(out.disc_labels.numel(), 21);
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
}

/// The RTD loss alone: which embedding matrices get a gradient.
void rtd_gradients(const std::string& sharing, torch::Tensor& gen_word, torch::Tensor& disc_word) {
  torch::manual_seed(0);
  DebertaRTD m(DebertaRTDOptions(tiny(), tiny().num_layers(1)).embedding_sharing(sharing));
  auto ids = torch::randint(5, 30, {2, 6}, torch::kInt64);
  auto labels = torch::zeros_like(ids);
  labels.index_put_({torch::indexing::Slice(), 1}, 7);
  DebertaRTDOutput out = m->forward(ids, torch::ones_like(ids), labels, ids);
  out.disc_loss.mean().backward();
  gen_word = m->generator->deberta->embeddings->word_embeddings->weight.grad();
  disc_word = m->discriminator->deberta->embeddings->word_embeddings->weight.grad();
}

TEST(DebertaRTD, EmbeddingSharingDecidesWhereTheRtdGradientGoes) {
  torch::Tensor gen, disc;
  rtd_gradients("none", gen, disc);  // NES: the generator never sees the RTD loss
  EXPECT_TRUE(!gen.defined() || gen.abs().sum().item<double>() == 0);
  EXPECT_GT(disc.abs().sum().item<double>(), 0);
  rtd_gradients("es", gen, disc);  // ES: one matrix, trained by the RTD loss
  EXPECT_GT(gen.abs().sum().item<double>(), 0);
  rtd_gradients("gdes", gen, disc);  // GDES: only E_delta
  EXPECT_TRUE(!gen.defined() || gen.abs().sum().item<double>() == 0);
  EXPECT_GT(disc.abs().sum().item<double>(), 0);

  // GDES starts with E_delta = 0, so the discriminator sees the generator's embeddings.
  DebertaRTD g(DebertaRTDOptions(tiny(), tiny()).embedding_sharing("gdes"));
  EXPECT_EQ(
      g->discriminator->deberta->embeddings->word_embeddings->weight.abs().max().item<float>(),
      0.0f);
}

TEST(DebertaRTD, GradientsReachEveryParameter) {
  for (const char* sharing : {"none", "es", "gdes"}) {
    torch::manual_seed(0);
    DebertaRTD m(DebertaRTDOptions(tiny(), tiny().num_layers(1)).embedding_sharing(sharing));
    auto ids = torch::randint(5, 30, {2, 6}, torch::kInt64);
    auto labels = torch::zeros_like(ids);
    labels.index_put_({torch::indexing::Slice(), 1}, 7);
    m->forward(ids, torch::ones_like(ids), labels).loss.backward();
    for (const auto& p : m->named_parameters()) {
      // With position_biased_input false only the Enhanced Mask Decoder reads positions.
      if (p.key() == "discriminator.deberta.embeddings.position_embeddings.weight" &&
          std::string(sharing) != "es") {
        continue;
      }
      ASSERT_TRUE(p.value().grad().defined()) << sharing << " " << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << sharing << " " << p.key();
    }
  }
}

TEST(DebertaRTD, BadOptionsAreNamed) {
  EXPECT_THROW_WITH(DebertaRTD(DebertaRTDOptions(tiny(), tiny()).embedding_sharing("shared")),
                    "embedding_sharing must be none, es or gdes, got 'shared'");
  EXPECT_THROW_WITH(
      DebertaRTD(DebertaRTDOptions(tiny(), tiny().hidden_size(32)).embedding_sharing("es")),
      "embedding sharing 'es' needs equal hidden_size");
  EXPECT_THROW_WITH(DebertaRTD(DebertaRTDOptions(tiny(), tiny().vocab_size(31))),
                    "generator vocab_size (30) must equal the discriminator's (31)");
  EXPECT_THROW_WITH(DebertaRTD(DebertaRTDOptions(tiny(), tiny()).rtd_lambda(-1)),
                    "rtd_lambda must be >= 0");
  EXPECT_THROW_WITH(DebertaRTD(DebertaRTDOptions(tiny(), tiny().position_biased_input(true))),
                    "gdes with position_biased_input is not supported");
}

}  // namespace
}  // namespace nlpkit
