// Process-wide allocator settings for training: keep freed memory in the process.
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace nlpkit {

// LibTorch's CPU tensors come from malloc. Above glibc's default (dynamic) mmap threshold every
// large activation is a fresh mmap, and every free an munmap; the next step page-faults the same
// memory back in, zero-filled by the kernel. On a training step of a recurrent model (many
// mid-sized activations per step) that costs 20-30% of the step (docs/benchmarks.md). Raising the
// mmap threshold to 256 MiB and the trim threshold to 1 GiB lets the heap keep what the previous
// step freed, as PyTorch's CUDA caching allocator does on the GPU. Call once, before any tensor.
inline void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

}  // namespace nlpkit
