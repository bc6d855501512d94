// Reader and writer of the safetensors format (huggingface/safetensors), and module state dicts.
//
// Layout: an 8-byte little-endian header length N; N bytes of UTF-8 JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// padded with spaces to a multiple of 8; then the tensors' raw little-endian bytes, row-major,
// with offsets relative to the start of that data section. Files written here load with
// Python's `safetensors.torch.load_file` and vice versa.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace nlpkit {

/// Tensors by name, in a meaningful order (the order of a state dict, or of a file's data).
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Writes `tensors` (any device; copied to CPU, contiguous) and string `metadata` to `path`
/// atomically (temporary name, fsync, rename). Supported dtypes: F64, F32, F16, BF16, I64, I32,
/// I16, I8, U8, BOOL. Throws std::runtime_error naming the path (and tensor) on error.
///   save_safetensors("model.safetensors", module_state(*model), {{"format", "pt"}});
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The contents of a safetensors file: CPU tensors in data order, and the `__metadata__` map.
struct SafetensorsFile {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
};

/// Reads and validates a whole safetensors file. Throws std::runtime_error naming the path and
/// the problem: file too short, header length beyond the file, bad JSON, unknown dtype, offsets
/// out of range, overlapping, leaving gaps or not matching the shape, or trailing bytes.
SafetensorsFile load_safetensors(const std::string& path);

/// The module's parameters and buffers (recursively, dotted names such as "encoder.0.weight"),
/// in PyTorch's state_dict order: each module's own parameters, then its buffers, then its
/// children's. Tensors are detached aliases of the module's, not copies.
NamedTensors module_state(const torch::nn::Module& module);

/// Copies `tensors` into the module's parameters and buffers, converting dtype and device to
/// the destination's. All or nothing: any missing key, unexpected key or shape mismatch throws
/// one std::runtime_error listing them all and naming `source` (e.g. the file path), and leaves
/// the module unchanged.
///   load_module_state(*model, load_safetensors(path).tensors, path);
void load_module_state(torch::nn::Module& module, const NamedTensors& tensors,
                       const std::string& source);

}  // namespace nlpkit
