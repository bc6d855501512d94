#include "trainers/distributed.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

#include "datasets/batching.h"
#include "tests/test_util.h"
#include "trainers/checkpoint.h"
#include "trainers/safetensors.h"
#include "trainers/trainer.h"

namespace nlpkit {
namespace {
namespace fs = std::filesystem;

// Ranks are threads of this test, joined over Gloo on loopback: real c10d, seconds per test.

Environment env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

/// Runs fn(rank, comm) on `world` threads connected through one group: Gloo, or NCCL with one
/// GPU per rank when `cuda`.
template <class Fn>
void run_ranks(int64_t world, Fn fn, int64_t timeout_s = 20, bool cuda = false) {
  const int port = free_tcp_port();
  std::vector<std::future<void>> ranks;
  for (int64_t r = 0; r < world; ++r) {
    ranks.push_back(std::async(std::launch::async, [=] {
      WorldInfo w;
      w.rank = r;
      w.world_size = world;
      w.master_port = port;
      DistributedConfig config;
      config.timeout_s = timeout_s;
      const torch::Device device =
          cuda ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(r)) : torch::kCPU;
      fn(r, Communicator::connect(w, config, device));
    }));
  }
  for (auto& f : ranks) f.get();
}

TEST(WorldFromEnvironment, SingleProcessWithoutLauncher) {
  const WorldInfo w = world_from_environment({}, env_of({}));
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.world_size, 1);
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.launcher, "none");
}

TEST(WorldFromEnvironment, Torchrun) {
  const WorldInfo w = world_from_environment({}, env_of({{"RANK", "3"},
                                                         {"WORLD_SIZE", "8"},
                                                         {"LOCAL_RANK", "1"},
                                                         {"MASTER_ADDR", "node7"},
                                                         {"MASTER_PORT", "29400"}}));
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.world_size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.master_addr, "node7");
  EXPECT_EQ(w.master_port, 29400);
  EXPECT_EQ(w.launcher, "torchrun");
}

TEST(WorldFromEnvironment, SlurmTakesTheMasterFromConfigOrEnvironment) {
  DistributedConfig config;
  config.master_addr = "gpu001";
  config.master_port = 12345;
  const auto slurm = std::map<std::string, std::string>{
      {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}};
  WorldInfo w = world_from_environment(config, env_of(slurm));
  EXPECT_EQ(w.launcher, "slurm");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.world_size, 16);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.master_addr, "gpu001");
  EXPECT_EQ(w.master_port, 12345);
  auto with_env = slurm;
  with_env["MASTER_ADDR"] = "gpu009";
  with_env["MASTER_PORT"] = "2222";
  w = world_from_environment(config, env_of(with_env));
  EXPECT_EQ(w.master_addr, "gpu009");
  EXPECT_EQ(w.master_port, 2222);
  EXPECT_ERROR(world_from_environment({}, env_of(slurm)),
               "set distributed.master_addr or export MASTER_ADDR");
}

TEST(WorldFromEnvironment, BadValuesAreConfigErrors) {
  EXPECT_ERROR(world_from_environment({}, env_of({{"RANK", "two"}, {"WORLD_SIZE", "4"}})),
               "RANK='two' is not an integer");
  EXPECT_ERROR(world_from_environment(
                   {}, env_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "h"}})),
               "do not fit world size 4");
  EXPECT_ERROR(world_from_environment({}, env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}})),
               "MASTER_ADDR is not");
}

TEST(Communicator, SingleProcessCollectivesDoNothing) {
  Communicator comm;
  torch::Tensor t = torch::ones({3});
  comm.all_reduce(t);
  comm.broadcast({t});
  comm.barrier();
  EXPECT_TRUE(t.equal(torch::ones({3})));
  EXPECT_EQ(comm.average({{"a", 2.0}}).at("a"), 2.0);
}

TEST(Communicator, AllReduceBroadcastAverageOverGloo) {
  run_ranks(2, [](int64_t rank, std::shared_ptr<Communicator> comm) {
    EXPECT_EQ(comm->backend(), "gloo");
    torch::Tensor t = torch::full({4}, static_cast<float>(rank + 1));
    comm->all_reduce(t);
    EXPECT_TRUE(t.equal(torch::full({4}, 3.0f)));
    torch::Tensor a = torch::full({2}, static_cast<float>(rank));
    torch::Tensor b = torch::full({3}, static_cast<int64_t>(10 + rank));
    comm->broadcast({a, b}, 1);
    EXPECT_TRUE(a.equal(torch::full({2}, 1.0f)));
    EXPECT_TRUE(b.equal(torch::full({3}, int64_t{11})));
    EXPECT_DOUBLE_EQ(comm->average({{"x", rank == 0 ? 1.0 : 2.0}}).at("x"), 1.5);
    comm->barrier();
  });
}

TEST(Communicator, NcclAllReduceOnTwoGpus_CUDA) {
  if (!torch::cuda::is_available() || torch::cuda::device_count() < 2) {
    GTEST_SKIP() << "needs 2 CUDA devices";
  }
  run_ranks(
      2,
      [](int64_t rank, std::shared_ptr<Communicator> comm) {
        EXPECT_EQ(comm->backend(), "nccl");
        torch::Tensor t = torch::full({4}, static_cast<float>(rank + 1),
                                      torch::Device(torch::kCUDA, static_cast<int>(rank)));
        comm->all_reduce(t);
        EXPECT_TRUE(t.cpu().equal(torch::full({4}, 3.0f)));
      },
      20, /*cuda=*/true);
}

/// One optimizer step of a linear model on `x`, `y` with gradients averaged by `sync`.
void sgd_step(torch::nn::Linear& model, GradientSync& sync, const torch::Tensor& x,
              const torch::Tensor& y, int64_t micro_steps = 1) {
  model->zero_grad();
  for (int64_t i = 0; i < micro_steps; ++i) {
    sync.require_sync(i == micro_steps - 1);
    const auto chunk = x.chunk(micro_steps)[i];
    const auto target = y.chunk(micro_steps)[i];
    (torch::nn::functional::mse_loss(model->forward(chunk), target) / micro_steps).backward();
  }
  sync.finish();
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.sub_(0.1 * p.grad());
}

TEST(GradientSync, RanksStayIdenticalAndMatchOneRankWithTheDoubledBatch) {
  auto g = torch::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor x = torch::randn({6, 16, 5}, g);  // 6 steps of a global batch of 16
  const torch::Tensor y = torch::randn({6, 16, 3}, g);
  // One process, batch 16.
  torch::manual_seed(1);
  torch::nn::Linear reference(5, 3);
  const std::vector<torch::Tensor> init = {reference->weight.detach().clone(),
                                           reference->bias.detach().clone()};
  {
    GradientSync alone(std::make_shared<Communicator>(), reference->parameters(), 1 << 20);
    for (int64_t s = 0; s < 6; ++s) sgd_step(reference, alone, x[s], y[s]);
  }
  std::vector<torch::Tensor> weights(2);
  run_ranks(2, [&](int64_t rank, std::shared_ptr<Communicator> comm) {
    torch::nn::Linear model(5, 3);  // each rank draws its own init: the broadcast must fix it
    if (rank == 0) {
      torch::NoGradGuard no_grad;
      model->weight.copy_(init[0]);
      model->bias.copy_(init[1]);
    }
    broadcast_module(*comm, *model.ptr());
    // Small buckets: weight and bias go out separately, bias first (reverse order).
    GradientSync sync(comm, model->parameters(), 16);
    EXPECT_EQ(sync.bucket_sizes(), (std::vector<int64_t>{1, 1}));
    for (int64_t s = 0; s < 6; ++s) {
      sgd_step(model, sync, x[s].narrow(0, 8 * rank, 8), y[s].narrow(0, 8 * rank, 8));
    }
    weights[rank] = torch::cat({model->weight.detach().flatten(), model->bias.detach()});
  });
  EXPECT_TRUE(weights[0].equal(weights[1])) << "ranks diverged";
  const torch::Tensor expected =
      torch::cat({reference->weight.detach().flatten(), reference->bias.detach()});
  EXPECT_TRUE(weights[0].allclose(expected, 0, 1e-6))
      << (weights[0] - expected).abs().max().item<double>();
}

TEST(GradientSync, AccumulationMicroStepsDoNotAllReduce) {
  run_ranks(2, [](int64_t rank, std::shared_ptr<Communicator> comm) {
    torch::manual_seed(5);
    torch::nn::Linear model(4, 2);
    GradientSync sync(comm, model->parameters(), 1 << 20);  // one bucket
    const torch::Tensor x = torch::randn({4, 4}) + static_cast<double>(rank);
    const torch::Tensor y = torch::randn({4, 2});
    model->zero_grad();
    const int64_t before = comm->all_reduce_count();
    for (int64_t i = 0; i < 3; ++i) {
      sync.require_sync(i == 2);
      torch::nn::functional::mse_loss(model->forward(x[i]), y[i]).backward();
      // The hooks launch the bucket during the last backward, before finish().
      EXPECT_EQ(comm->all_reduce_count() - before, i == 2 ? 1 : 0) << "micro-step " << i;
    }
    sync.finish();
    EXPECT_EQ(comm->all_reduce_count() - before, 1);
    // The averaged accumulated gradient is the same on both ranks.
    torch::Tensor g = model->weight.grad().clone();
    torch::Tensor other = g.clone();
    comm->broadcast({other}, 0);
    EXPECT_TRUE(g.equal(other));
  });
}

TEST(Communicator, DeadRankFailsTheOthersWithAClearError) {
  const auto start = std::chrono::steady_clock::now();
  run_ranks(
      2,
      [](int64_t rank, std::shared_ptr<Communicator> comm) {
        if (rank == 1) return;  // rank 1 "dies": its process group goes away, sockets close
        torch::Tensor t = torch::ones({8});
        EXPECT_ERROR(comm->all_reduce(t), "distributed: rank 0 of 2: all-reduce failed");
      },
      /*timeout_s=*/4);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(Communicator, SilentRankTimesOut) {
  const auto start = std::chrono::steady_clock::now();
  std::promise<void> done;
  std::shared_future<void> rank0_done = done.get_future().share();
  run_ranks(
      2,
      [&](int64_t rank, std::shared_ptr<Communicator> comm) {
        if (rank == 1) {  // alive but never joins the collective
          rank0_done.wait();
          return;
        }
        torch::Tensor t = torch::ones({8});
        EXPECT_ERROR(comm->all_reduce(t), "distributed.timeout_s = 4 s");
        done.set_value();
      },
      /*timeout_s=*/4);  // long enough to connect on a loaded 2-core machine
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

// ------------------------------------------------------------------------------ the trainer

/// Classification with a linear model (no dropout: ranks and runs must agree to 1e-6) on fixed
/// data, sharded like the real tasks.
class LinearTask : public Task {
 public:
  LinearTask(const ExperimentConfig& config)
      : batches_(32, config.data.batch_size, true, 11, config.data.shard_index,
                 config.data.shard_count) {
    model_ = torch::nn::Linear(6, 3);
    // Ranks (threads sharing torch's global generator) start from different weights of their
    // own generator; the broadcast must make them rank 0's.
    auto init = torch::make_generator<at::CPUGeneratorImpl>(config.seed + config.data.shard_index);
    {
      torch::NoGradGuard no_grad;
      model_->weight.copy_(torch::randn({3, 6}, init) * 0.3);
      model_->bias.copy_(torch::randn({3}, init) * 0.1);
    }
    auto g = torch::make_generator<at::CPUGeneratorImpl>(9);
    x_ = torch::randn({32, 6}, g);
    y_ = torch::randint(0, 3, {32}, g);
  }
  std::shared_ptr<torch::nn::Module> model() override { return model_.ptr(); }
  int64_t batches_per_epoch() override { return batches_.count(); }
  StepOutput train_step(int64_t epoch, int64_t batch) override {
    const auto idx = torch::tensor(batches_.indices(epoch, batch));
    StepOutput out;
    out.loss = torch::nn::functional::cross_entropy(model_->forward(x_.index_select(0, idx)),
                                                    y_.index_select(0, idx));
    out.examples = idx.numel();
    out.tokens = idx.numel();
    return out;
  }
  bool has_split(Split s) const override { return s == Split::kValid; }
  Evaluation evaluate(Split) override {
    torch::NoGradGuard g;
    Evaluation e;
    e.metrics["loss"] =
        torch::nn::functional::cross_entropy(model_->forward(x_), y_).item<double>();
    return e;
  }
  std::vector<std::string> predict(const std::vector<std::string>&) override { return {}; }
  void save_artifacts(const std::string&) const override {}
  torch::Tensor flat_weights() {
    return torch::cat({model_->weight.detach().flatten(), model_->bias.detach()}).clone();
  }

 private:
  EpochBatches batches_;
  torch::nn::Linear model_{nullptr};
  torch::Tensor x_, y_;
};

class DistributedTrainerTest : public TempDirTest {
 protected:
  std::string dir(const std::string& name) const { return (dir_ / name).string(); }
  ExperimentConfig config(int64_t batch_size, int64_t max_steps) {
    ExperimentConfig c;
    c.output_dir = dir("run");
    c.logging.progress = "none";
    c.logging.tensorboard = false;
    c.data.batch_size = batch_size;
    c.trainer.max_steps = max_steps;
    c.trainer.eval_each_epoch = false;
    c.trainer.metric = "loss";
    c.trainer.metric_mode = "min";
    c.trainer.keep_best = false;
    c.optimizer.type = "sgd";
    c.optimizer.lr = 0.5;
    return c;
  }

  /// Trains on `world` ranks; returns each rank's final weights. With `rank_dirs`, ranks above
  /// 0 get output directories of their own (which must stay unwritten).
  std::vector<torch::Tensor> train(int64_t world, ExperimentConfig c, bool rank_dirs = false) {
    std::vector<torch::Tensor> weights(world);
    auto fit = [&](int64_t rank, std::shared_ptr<Communicator> comm) {
      ExperimentConfig mine = c;
      if (rank_dirs && rank > 0) mine.output_dir = dir("rank" + std::to_string(rank));
      mine.data.shard_index = rank;
      mine.data.shard_count = world;
      LinearTask task(mine);
      Trainer trainer(mine, task, torch::kCPU, comm);
      trainer.fit();
      weights[rank] = task.flat_weights();
    };
    if (world == 1) {
      fit(0, std::make_shared<Communicator>());
    } else {
      run_ranks(world, fit);
    }
    return weights;
  }
};

TEST_F(DistributedTrainerTest, TwoRanksEqualOneRankWithTheDoubledBatch) {
  // 32 examples: one rank of batch 8 and two of batch 4 both take 4 steps per epoch; 6 steps
  // cross an epoch boundary (a new shuffle).
  const auto one = train(1, config(8, 6));
  fs::remove_all(dir("run"));
  const auto two = train(2, config(4, 6));
  EXPECT_TRUE(two[0].equal(two[1])) << "ranks diverged";
  EXPECT_TRUE(two[0].allclose(one[0], 0, 1e-6)) << (two[0] - one[0]).abs().max().item<double>();
  fs::remove_all(dir("run"));
  EXPECT_FALSE(two[0].allclose(train(1, config(4, 6))[0], 0, 1e-3))
      << "batch 4 alone should differ (else the test proves nothing)";
}

TEST_F(DistributedTrainerTest, GradientAccumulationMatchesTooAndRank0AloneWrites) {
  ExperimentConfig c = config(2, 5);
  c.trainer.grad_accum_steps = 2;
  c.trainer.save_every = 2;
  const auto two = train(2, c, /*rank_dirs=*/true);
  EXPECT_TRUE(two[0].equal(two[1]));
  EXPECT_TRUE(fs::exists(dir("run") + "/checkpoints/" + checkpoint_name(4)));
  EXPECT_TRUE(fs::exists(dir("run") + "/metrics.jsonl"));
  EXPECT_FALSE(fs::exists(dir("rank1"))) << "rank 1 wrote files";
  fs::remove_all(dir("run"));
  const auto one = train(1, config(8, 5));
  EXPECT_TRUE(two[0].allclose(one[0], 0, 1e-6)) << (two[0] - one[0]).abs().max().item<double>();
}

TEST_F(DistributedTrainerTest, ResumeWithTheSameOrAnotherWorldSize) {
  const auto uninterrupted = train(2, config(4, 7));
  fs::remove_all(dir("run"));
  // Stop after 3 steps (mid-epoch), then continue on 2 ranks, and separately on 1 rank.
  ExperimentConfig first = config(4, 3);
  first.trainer.keep_last = 10;
  train(2, first);
  const std::string checkpoint = dir("run") + "/checkpoints/" + checkpoint_name(3);
  ASSERT_TRUE(fs::exists(checkpoint));
  ExperimentConfig resumed = config(4, 7);
  resumed.trainer.resume = checkpoint;
  resumed.output_dir = dir("resumed2");
  const auto two = train(2, resumed);
  EXPECT_TRUE(two[0].equal(uninterrupted[0])) << (two[0] - uninterrupted[0]).abs().max();
  // One rank takes over with batch 8 (the same global batch): the same examples per step.
  resumed.data.batch_size = 8;
  resumed.output_dir = dir("resumed1");
  const auto one = train(1, resumed);
  EXPECT_TRUE(one[0].allclose(uninterrupted[0], 0, 1e-6))
      << (one[0] - uninterrupted[0]).abs().max().item<double>();
}

}  // namespace
}  // namespace nlpkit
