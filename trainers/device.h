// Moving batches to the training device. Tasks build batches on the CPU; on a GPU the copy goes
// through pinned (page-locked) memory without blocking the host, so that the next batch is
// being prepared while the GPU still works on the copy and the step.
#pragma once

#include <torch/torch.h>

namespace nlpkit {

/// `tensor` on `device`: CPU -> CUDA through pinned memory with a non-blocking copy (PyTorch's
/// DataLoader pin_memory=True + .to(device, non_blocking=True)); otherwise Tensor::to. The
/// pinned buffer comes from LibTorch's caching host allocator, which keeps it until the copy is
/// done, so the source can go out of scope at once.
///   batch.ids = to_device(batch.ids, device);
inline torch::Tensor to_device(const torch::Tensor& tensor, torch::Device device) {
  if (!tensor.defined() || !device.is_cuda() || !tensor.device().is_cpu()) {
    return tensor.defined() ? tensor.to(device) : tensor;
  }
  return tensor.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace nlpkit
