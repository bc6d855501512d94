#include "trainers/distributed.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// Debian's and PyTorch's LibTorch export USE_C10D_GLOO (and, built with CUDA, USE_C10D_NCCL)
// through their CMake targets; the headers declare the process groups only under them.
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "trainers/trainer.h"

namespace nlpkit {
namespace {

using std::chrono::milliseconds;

/// An exception's message without c10's backtrace.
std::string error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

std::string who(int64_t rank, int64_t world_size) {
  return "distributed: rank " + std::to_string(rank) + " of " + std::to_string(world_size);
}

[[noreturn]] void fail_collective(const std::string& what, int64_t rank, int64_t world_size,
                                  int64_t timeout_s, const std::exception& e) {
  throw std::runtime_error(who(rank, world_size) + ": " + what + " failed: " + error_text(e) +
                           " (another rank died, or did not answer within distributed.timeout_s" +
                           " = " + std::to_string(timeout_s) + " s)");
}

int64_t parse_env_int(const Environment& env, const std::string& name) {
  const std::string value = *env(name);
  try {
    size_t used = 0;
    const long long v = std::stoll(value, &used);
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError("environment variable " + name + "='" + value + "' is not an integer");
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

// ------------------------------------------------------------------------------ environment

Environment process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

WorldInfo world_from_environment(const DistributedConfig& config, const Environment& env) {
  WorldInfo w;
  const bool torchrun = env("RANK") && env("WORLD_SIZE");
  const bool slurm = !torchrun && env("SLURM_PROCID") && env("SLURM_NTASKS");
  if (!torchrun && !slurm) return w;
  if (torchrun) {
    w.launcher = "torchrun";
    w.rank = parse_env_int(env, "RANK");
    w.world_size = parse_env_int(env, "WORLD_SIZE");
    w.local_rank = env("LOCAL_RANK") ? parse_env_int(env, "LOCAL_RANK") : 0;
  } else {
    w.launcher = "slurm";
    w.rank = parse_env_int(env, "SLURM_PROCID");
    w.world_size = parse_env_int(env, "SLURM_NTASKS");
    w.local_rank = env("SLURM_LOCALID") ? parse_env_int(env, "SLURM_LOCALID") : 0;
  }
  if (w.world_size < 1 || w.rank < 0 || w.rank >= w.world_size || w.local_rank < 0) {
    throw ConfigError(w.launcher + " environment: rank " + std::to_string(w.rank) +
                      " and local rank " + std::to_string(w.local_rank) +
                      " do not fit world size " + std::to_string(w.world_size));
  }
  if (w.world_size == 1) return w;
  if (env("MASTER_ADDR")) {
    w.master_addr = *env("MASTER_ADDR");
  } else if (!config.master_addr.empty()) {
    w.master_addr = config.master_addr;
  } else {
    throw ConfigError(
        w.launcher == "slurm"
            ? "Slurm job of " + std::to_string(w.world_size) +
                  " tasks: no rendezvous host; set distributed.master_addr or export "
                  "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)"
            : "RANK and WORLD_SIZE are set but MASTER_ADDR is not (start ranks with torchrun "
              "or nlpkit launch)");
  }
  w.master_port = env("MASTER_PORT") ? parse_env_int(env, "MASTER_PORT") : config.master_port;
  if (w.master_port < 1 || w.master_port > 65535) {
    throw ConfigError("MASTER_PORT " + std::to_string(w.master_port) + " is not a TCP port");
  }
  return w;
}

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw std::runtime_error(std::string("free_tcp_port: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // the kernel picks one
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("free_tcp_port: no free TCP port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

torch::Device rank_device(const std::string& device, const WorldInfo& world) {
  if (world.distributed() && (device == "auto" || device == "cuda") &&
      torch::cuda::is_available()) {
    const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
    if (world.local_rank >= gpus) {
      throw ConfigError("local rank " + std::to_string(world.local_rank) + " has no GPU: " +
                        std::to_string(gpus) + " visible (start one rank per GPU)");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank));
  }
  return resolve_device(device);
}

// ------------------------------------------------------------------------------ Communicator

/// The c10d objects. ProcessGroupGloo derives from c10d::ProcessGroup in LibTorch 1.13 and from
/// c10d::Backend in 2.x; holding the concrete group behind lambdas works with both.
struct Communicator::Group {
  c10::intrusive_ptr<c10d::Store> store;  // declared first: destroyed after the group
  std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)> allreduce;
  std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&, int64_t)> broadcast;
  std::function<c10::intrusive_ptr<c10d::Work>()> barrier;

  template <class PG>
  void bind(c10::intrusive_ptr<PG> pg) {
    allreduce = [pg](std::vector<at::Tensor>& t) { return pg->allreduce(t); };
    broadcast = [pg](std::vector<at::Tensor>& t, int64_t root) {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      return pg->broadcast(t, o);
    };
    barrier = [pg] { return pg->barrier(); };
  }
};

Communicator::Communicator() = default;
Communicator::~Communicator() = default;

std::shared_ptr<Communicator> Communicator::connect(const WorldInfo& world,
                                                    const DistributedConfig& config,
                                                    torch::Device device) {
  auto comm = std::make_shared<Communicator>();
  comm->rank_ = world.rank;
  comm->world_size_ = world.world_size;
  comm->timeout_s_ = config.timeout_s;
  if (!world.distributed()) return comm;
  std::string backend = config.backend;
  if (backend == "auto") backend = device.is_cuda() ? "nccl" : "gloo";
  const milliseconds timeout(config.timeout_s * 1000);
  auto group = std::make_unique<Group>();
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(world.master_port);
    o.isServer = world.rank == 0;
    o.numWorkers = static_cast<size_t>(world.world_size);
    o.waitWorkers = true;
    o.timeout = timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, o);
  } catch (const std::exception& e) {
    throw std::runtime_error(who(world.rank, world.world_size) + ": rendezvous at " +
                             world.master_addr + ":" + std::to_string(world.master_port) +
                             " failed: " + error_text(e) + " (are all " +
                             std::to_string(world.world_size) +
                             " ranks started, with the same MASTER_ADDR/MASTER_PORT?)");
  }
  try {
    if (backend == "nccl") {
#ifdef USE_C10D_NCCL
      // Without async error handling a dead peer leaves NCCL waiting forever.
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group->bind(c10::make_intrusive<c10d::ProcessGroupNCCL>(group->store, world.rank,
                                                              world.world_size, options));
#else
      throw ConfigError("distributed.backend: nccl, but this LibTorch was built without NCCL " +
                        std::string("(use gloo, or a CUDA LibTorch)"));
#endif
    } else {
#ifdef USE_C10D_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (is_loopback(world.master_addr)) {
        // One machine: the hostname may resolve to an address other ranks cannot reach.
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      group->bind(c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, world.rank,
                                                              world.world_size, options));
#else
      throw ConfigError("distributed: this LibTorch was built without Gloo");
#endif
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(who(world.rank, world.world_size) + ": connecting the " + backend +
                             " process group failed: " + error_text(e));
  }
  comm->backend_ = backend;
  comm->group_ = std::move(group);
  return comm;
}

void Communicator::broadcast(const std::vector<torch::Tensor>& tensors, int64_t root) {
  if (!group_ || tensors.empty()) return;
  // One flat buffer per dtype: a handful of collectives instead of one per tensor.
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors) by_type[t.scalar_type()].push_back(t);
  torch::NoGradGuard no_grad;
  for (auto& [type, group] : by_type) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape(-1));
    std::vector<at::Tensor> flat{torch::cat(flat_parts)};
    try {
      group_->broadcast(flat, root)->wait();
    } catch (const std::exception& e) {
      fail_collective("broadcast", rank_, world_size_, timeout_s_, e);
    }
    int64_t offset = 0;
    for (auto& t : group) {
      t.detach().copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

PendingWork Communicator::all_reduce_async(torch::Tensor tensor) {
  ++all_reduce_count_;
  if (!group_) return [] {};
  std::vector<at::Tensor> tensors{std::move(tensor)};
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = group_->allreduce(tensors);
  } catch (const std::exception& e) {
    fail_collective("all-reduce", rank_, world_size_, timeout_s_, e);
  }
  return [work, tensors, rank = rank_, world = world_size_, timeout = timeout_s_] {
    try {
      work->wait();
    } catch (const std::exception& e) {
      fail_collective("all-reduce", rank, world, timeout, e);
    }
  };
}

std::map<std::string, double> Communicator::average(const std::map<std::string, double>& values) {
  if (!group_ || values.empty()) return values;
  std::vector<double> flat;
  for (const auto& kv : values) flat.push_back(kv.second);
  torch::Tensor t = torch::tensor(flat, torch::kFloat64);
  all_reduce(t);
  std::map<std::string, double> out;
  int64_t i = 0;
  for (const auto& kv : values) out[kv.first] = t[i++].item<double>() / world_size_;
  return out;
}

void Communicator::barrier() {
  if (!group_) return;
  try {
    group_->barrier()->wait();
  } catch (const std::exception& e) {
    fail_collective("barrier", rank_, world_size_, timeout_s_, e);
  }
}

void broadcast_module(Communicator& comm, torch::nn::Module& module) {
  if (!comm.distributed()) return;
  std::vector<torch::Tensor> tensors = module.parameters();
  for (const auto& b : module.buffers()) tensors.push_back(b);
  comm.broadcast(tensors, 0);
}

// ------------------------------------------------------------------------------ GradientSync

struct GradientSync::State {
  struct Bucket {
    std::vector<int64_t> params;  // indices into State::params
    int64_t ready = 0;
    torch::Tensor flat;
    PendingWork pending;
    bool launched = false;
  };
  std::shared_ptr<Communicator> comm;
  std::vector<torch::Tensor> params;
  std::vector<int64_t> bucket_of;  // parameter -> bucket
  std::vector<bool> marked;        // parameter's gradient seen in this pass
  std::vector<Bucket> buckets;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> hook_keys;
  bool sync = true;
  bool dirty = false;  // a synchronized pass has started and finish() has not run
  size_t next_launch = 0;
  std::mutex mutex;

  void mark_ready(int64_t i) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!sync) return;
    TORCH_CHECK(!marked[i], "GradientSync: parameter ", i,
                " got a gradient twice in one synchronized backward pass; call backward once "
                "per micro-step");
    marked[i] = true;
    dirty = true;
    ++buckets[bucket_of[i]].ready;
    // Buckets go out in order on every rank: c10d matches collectives by their sequence.
    while (next_launch < buckets.size() &&
           buckets[next_launch].ready == static_cast<int64_t>(buckets[next_launch].params.size())) {
      launch(buckets[next_launch++]);
    }
  }

  void launch(Bucket& b) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (int64_t i : b.params) {
      const torch::Tensor& g = params[i].grad();
      parts.push_back(g.defined() ? g.reshape(-1)
                                  : torch::zeros({params[i].numel()}, params[i].options()));
    }
    b.flat = torch::cat(parts);
    b.pending = comm->all_reduce_async(b.flat);
    b.launched = true;
  }
};

GradientSync::GradientSync(std::shared_ptr<Communicator> comm, std::vector<torch::Tensor> params,
                           int64_t bucket_bytes)
    : state_(std::make_shared<State>()) {
  TORCH_CHECK(bucket_bytes > 0, "GradientSync: bucket_bytes must be positive");
  State& s = *state_;
  s.comm = std::move(comm);
  s.params = std::move(params);
  if (!s.comm || !s.comm->distributed()) return;
  s.bucket_of.assign(s.params.size(), -1);
  s.marked.assign(s.params.size(), false);
  // Backward meets the last layers first: reverse registration order fills the first bucket
  // with the gradients that are ready first. A bucket holds one dtype and one device.
  int64_t bytes = 0;
  for (int64_t i = static_cast<int64_t>(s.params.size()) - 1; i >= 0; --i) {
    const torch::Tensor& p = s.params[i];
    const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !s.buckets.empty() && bytes + size <= bucket_bytes &&
                      s.params[s.buckets.back().params.front()].options().type_equal(p.options());
    if (!fits) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    s.buckets.back().params.push_back(i);
    s.bucket_of[i] = static_cast<int64_t>(s.buckets.size()) - 1;
    bytes += size;
  }
  // A post hook on the gradient accumulator runs after the gradient has been added to .grad,
  // so it sees the sum over the micro-steps (DDP's autograd_hook).
  std::weak_ptr<State> weak = state_;
  for (size_t i = 0; i < s.params.size(); ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(s.params[i]);
    TORCH_CHECK(accumulator, "GradientSync: parameter ", i, " is not a leaf that requires grad");
    s.hook_keys.push_back(
        accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
            [weak, i](const torch::autograd::variable_list& outputs,
                      const torch::autograd::variable_list&) {
              if (auto state = weak.lock()) state->mark_ready(static_cast<int64_t>(i));
              return outputs;
            })));
    s.accumulators.push_back(std::move(accumulator));
  }
}

GradientSync::~GradientSync() {
  for (size_t i = 0; i < state_->accumulators.size(); ++i) {
    state_->accumulators[i]->del_post_hook(state_->hook_keys[i]);
  }
}

void GradientSync::require_sync(bool sync) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  TORCH_CHECK(!state_->dirty, "GradientSync: require_sync() between backward and finish()");
  state_->sync = sync;
}

void GradientSync::finish() {
  State& s = *state_;
  if (!s.comm || !s.comm->distributed() || !s.sync) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  // Parameters that got no gradient in this pass still take part, with zeros, so that every
  // rank launches the same collectives.
  while (s.next_launch < s.buckets.size()) s.launch(s.buckets[s.next_launch++]);
  const double world = static_cast<double>(s.comm->world_size());
  torch::NoGradGuard no_grad;
  for (auto& b : s.buckets) {
    b.pending();
    b.flat.div_(world);
    int64_t offset = 0;
    for (int64_t i : b.params) {
      torch::Tensor& p = s.params[i];
      torch::Tensor averaged = b.flat.narrow(0, offset, p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(averaged);
      } else {
        p.mutable_grad() = averaged.clone();
      }
      offset += p.numel();
    }
    b.ready = 0;
    b.launched = false;
    b.flat = torch::Tensor();
    b.pending = nullptr;
  }
  std::fill(s.marked.begin(), s.marked.end(), false);
  s.next_launch = 0;
  s.dirty = false;
}

std::vector<int64_t> GradientSync::bucket_sizes() const {
  std::vector<int64_t> sizes;
  for (const auto& b : state_->buckets) sizes.push_back(static_cast<int64_t>(b.params.size()));
  return sizes;
}

}  // namespace nlpkit
