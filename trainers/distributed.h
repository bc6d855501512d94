// Data-parallel training on torch.distributed's c10d: the ranks meet through a TCPStore, talk
// through ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA), start from rank 0's weights and
// average their gradients with bucketed all-reduces launched from gradient hooks, like PyTorch's
// DistributedDataParallel (torch/csrc/distributed/c10d/reducer.cpp), so that communication
// overlaps the rest of the backward pass.
//
// Who a process is comes from the environment that torchrun (and `nlpkit launch`) or Slurm set;
// a process started alone is rank 0 of 1 and every collective is a no-op.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainers/config.h"

namespace nlpkit {

/// This process's place in a job.
struct WorldInfo {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;  // rank on this node: the CUDA device it uses
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string launcher = "none";  // torchrun (also `nlpkit launch`), slurm or none
  bool distributed() const { return world_size > 1; }
};

/// Looks an environment variable up; std::nullopt when unset. Tests pass a map instead.
using Environment = std::function<std::optional<std::string>(const std::string&)>;
/// The process's real environment.
Environment process_environment();

/// Reads the job from the environment: torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
/// MASTER_PORT; else Slurm's SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID, with the master from
/// MASTER_ADDR/MASTER_PORT or distributed.master_addr/master_port; else a single process.
/// Throws ConfigError on values that do not parse or do not fit (rank >= world size, Slurm
/// without a master address).
///   // under torchrun --nproc-per-node 4: ranks 0..3
///   WorldInfo w = world_from_environment(config.distributed);
WorldInfo world_from_environment(const DistributedConfig& config,
                                 const Environment& env = process_environment());

/// A TCP port on 127.0.0.1 that nothing listens on right now (for a local rendezvous).
int free_tcp_port();

/// The device a rank trains on: with CUDA, one GPU per local rank (`cuda:LOCAL_RANK` for device
/// auto or cuda); otherwise `device` as resolve_device reads it.
torch::Device rank_device(const std::string& device, const WorldInfo& world);

/// Waits for an asynchronous collective; throws std::runtime_error naming the rank when it failed
/// or timed out.
using PendingWork = std::function<void()>;

/// A c10d process group (or nothing, for a single process) with the few collectives training
/// needs. Every rank must call the same collectives in the same order.
class Communicator {
 public:
  /// Single process: rank 0 of 1, collectives do nothing.
  Communicator();
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  /// Rendezvous at world.master_addr:master_port (rank 0 hosts the TCPStore) and connects the
  /// process group: NCCL for a CUDA device (when this LibTorch has it), Gloo otherwise, or as
  /// config.backend says. Blocks until every rank has joined, at most config.timeout_s.
  static std::shared_ptr<Communicator> connect(const WorldInfo& world,
                                               const DistributedConfig& config,
                                               torch::Device device);

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }
  bool distributed() const { return world_size_ > 1; }
  /// "gloo", "nccl" or "none".
  const std::string& backend() const { return backend_; }

  /// Overwrites `tensors` (in place) with rank `root`'s values.
  void broadcast(const std::vector<torch::Tensor>& tensors, int64_t root = 0);
  /// Sums `tensor` over the ranks, in place, in the background; call the result to wait.
  PendingWork all_reduce_async(torch::Tensor tensor);
  /// Sums `tensor` over the ranks, in place.
  void all_reduce(torch::Tensor tensor) { all_reduce_async(std::move(tensor))(); }
  /// The mean of each value over the ranks (every rank must pass the same keys).
  std::map<std::string, double> average(const std::map<std::string, double>& values);
  /// Returns when every rank has reached it.
  void barrier();

  /// Counts the all-reduces launched so far (tests check gradient accumulation with it).
  int64_t all_reduce_count() const { return all_reduce_count_; }

 private:
  struct Group;  // the c10d objects, kept out of this header
  std::unique_ptr<Group> group_;
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
  int64_t timeout_s_ = 0;
  std::string backend_ = "none";
  int64_t all_reduce_count_ = 0;
};

/// Averages gradients across ranks like DDP's reducer: parameters are grouped, in reverse order
/// of registration (roughly the order backward produces their gradients), into buckets of about
/// `bucket_bytes`; a hook on each parameter's gradient accumulator marks it ready, and a full
/// bucket is flattened and all-reduced at once, in bucket order, while backward goes on.
///
///   GradientSync sync(comm, params, 25 << 20);
///   for (micro-step i of k) { sync.require_sync(i == k - 1); loss.backward(); }
///   sync.finish();  // gradients now hold the mean over ranks
///
/// Micro-steps without sync only accumulate locally (DDP's no_sync()). A parameter that got no
/// gradient in the synchronized pass is all-reduced with zeros when finish() is called, so the
/// ranks stay in step. With a single process this does nothing.
class GradientSync {
 public:
  GradientSync(std::shared_ptr<Communicator> comm, std::vector<torch::Tensor> params,
               int64_t bucket_bytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  /// Whether the next backward pass all-reduces (the last micro-step of an optimizer step).
  void require_sync(bool sync);
  /// Launches what backward has not, waits for every bucket and writes the averaged gradients
  /// back. Does nothing after a pass without sync.
  void finish();
  /// Parameters per bucket, in launch order.
  std::vector<int64_t> bucket_sizes() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the hooks, which may outlive this object
};

/// Sends rank 0's parameters and buffers to every rank (before the first step: all ranks start
/// from the same weights whatever their seeds).
void broadcast_module(Communicator& comm, torch::nn::Module& module);

}  // namespace nlpkit
