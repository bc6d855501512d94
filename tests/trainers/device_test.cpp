#include "trainers/device.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "trainers/config.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {

// GPU tests are named *_CUDA and skip themselves without a GPU (tools/gpu-check.sh runs them).
#define SKIP_WITHOUT_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

TEST(ToDevice, CpuToCpuIsTheSameTensorAndUndefinedPassesThrough) {
  const torch::Tensor t = torch::arange(6);
  EXPECT_TRUE(to_device(t, torch::kCPU).is_same(t));
  EXPECT_FALSE(to_device(torch::Tensor(), torch::kCPU).defined());
}

TEST(ToDevice, PinnedNonBlockingCopy_CUDA) {
  SKIP_WITHOUT_CUDA();
  const torch::Tensor t = torch::arange(1000, torch::kInt64);
  torch::Tensor g = to_device(t, torch::kCUDA);
  EXPECT_TRUE(g.is_cuda());
  EXPECT_TRUE(g.cpu().equal(t)) << "the non-blocking copy must be complete when read";
  EXPECT_TRUE(to_device(g, torch::kCUDA).is_same(g));
}

class TinyConfigsOnCudaTest
    : public TempDirTest,
      public ::testing::WithParamInterface<std::tuple<std::string, std::string>> {};

// Every task of the tiny configs trains on the GPU in every precision: device-generic code.
TEST_P(TinyConfigsOnCudaTest, Trains_CUDA) {
  SKIP_WITHOUT_CUDA();
  const auto& [file, precision] = GetParam();
  const std::string run = (dir_ / "run").string();
  const std::string src = NLPKIT_SOURCE_DIR;
  ExperimentConfig c = load_config(
      src + "/configs/tiny/" + file,
      {"device=cuda", "precision=" + precision, "cudnn_benchmark=true", "output_dir=" + run,
       "logging.progress=none", "logging.tensorboard=false", "trainer.max_steps=6"});
  for (std::string* path : {&c.data.train, &c.data.valid, &c.data.test}) {
    if (!path->empty()) *path = src + "/" + *path;
  }
  auto task = make_task(c, "", torch::kCUDA);
  const FitResult result = Trainer(c, *task, torch::kCUDA).fit();
  EXPECT_EQ(result.state.step, 6);
  for (double loss : result.losses) EXPECT_TRUE(std::isfinite(loss)) << file << " " << precision;
  for (const auto& p : task->model()->parameters()) {
    EXPECT_TRUE(p.is_cuda());
    EXPECT_EQ(p.scalar_type(), torch::kFloat) << "master weights stay fp32";
  }
}

INSTANTIATE_TEST_SUITE_P(AllTasks, TinyConfigsOnCudaTest,
                         ::testing::Combine(::testing::Values("classifier.yaml",
                                                              "bert_classifier.yaml",
                                                              "bert_mlm.yaml", "lstm_lm.yaml"),
                                            ::testing::Values("fp32", "bf16", "fp16")),
                         [](const auto& info) {
                           std::string name =
                               std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace nlpkit
