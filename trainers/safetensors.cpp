#include "trainers/safetensors.h"
#include "datasets/input_error.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "trainers/checkpoint.h"

// Tensor bytes are copied as they sit in memory; the format is little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "big-endian hosts need byte swapping");

namespace nlpkit {
namespace {

using Json = nlohmann::ordered_json;  // keeps the header in the order it was written

struct DtypeName {
  const char* name;
  torch::ScalarType type;
};
constexpr DtypeName kDtypes[] = {{"F64", torch::kFloat64}, {"F32", torch::kFloat32},
                                 {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
                                 {"I64", torch::kInt64},   {"I32", torch::kInt32},
                                 {"I16", torch::kInt16},   {"I8", torch::kInt8},
                                 {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};

std::string shape_string(torch::IntArrayRef shape) {
  std::ostringstream out;
  out << shape;  // "[2, 3]"
  return out.str();
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// ---- Reading ----------------------------------------------------------------------------------

struct Entry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// Parses one tensor's header entry; `fail` throws with the file path prepended.
template <typename Fail>
Entry parse_entry(const std::string& name, const Json& info, uint64_t data_size, Fail fail) {
  const std::string where = "tensor '" + name + "'";
  if (!info.is_object()) fail(where + ": entry is not a JSON object");
  Entry entry{name, torch::kFloat32, {}, 0, 0};

  const auto dtype = info.find("dtype");
  if (dtype == info.end() || !dtype->is_string()) fail(where + ": missing string 'dtype'");
  const auto* known = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                   [&](const DtypeName& d) { return *dtype == d.name; });
  if (known == std::end(kDtypes)) fail(where + ": unknown dtype " + dtype->dump());
  entry.dtype = known->type;

  const auto shape = info.find("shape");
  if (shape == info.end() || !shape->is_array()) fail(where + ": missing array 'shape'");
  uint64_t nbytes = c10::elementSize(entry.dtype);
  for (const Json& dim : *shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t(INT64_MAX)) {
      fail(where + ": shape " + shape->dump() + " must hold integers >= 0");
    }
    entry.shape.push_back(dim.get<int64_t>());
    if (__builtin_mul_overflow(nbytes, dim.get<uint64_t>(), &nbytes)) {
      fail(where + ": shape " + shape->dump() + " is too large");
    }
  }

  const auto offsets = info.find("data_offsets");
  if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned() ||
      (*offsets)[0].get<uint64_t>() > (*offsets)[1].get<uint64_t>()) {
    fail(where + ": 'data_offsets' must be [begin, end] with 0 <= begin <= end");
  }
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.end > data_size) {
    fail(where + ": data_offsets " + offsets->dump() + " go beyond the data section (" +
         std::to_string(data_size) + " bytes; file truncated?)");
  }
  if (entry.end - entry.begin != nbytes) {
    fail(where + ": data_offsets " + offsets->dump() + " hold " +
         std::to_string(entry.end - entry.begin) + " bytes, but shape " + shape->dump() + " of " +
         known->name + " needs " + std::to_string(nbytes));
  }
  return entry;
}

// ---- Module state -----------------------------------------------------------------------------

void collect_state(const torch::nn::Module& module, const std::string& prefix, NamedTensors& out) {
  for (const auto& item : module.named_parameters(/*recurse=*/false)) {
    if (item.value().defined()) out.emplace_back(prefix + item.key(), item.value().detach());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/false)) {
    if (item.value().defined()) out.emplace_back(prefix + item.key(), item.value().detach());
  }
  for (const auto& child : module.named_children()) {
    collect_state(*child.value(), prefix + child.key() + ".", out);
  }
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("cannot save safetensors file " + path + ": " + what);
  };
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;  // CPU, contiguous; kept alive until written
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") fail("'__metadata__' is reserved and cannot name a tensor");
    if (header.contains(name)) fail("duplicate tensor name '" + name + "'");
    if (!tensor.defined()) fail("tensor '" + name + "' is undefined");
    if (tensor.layout() != torch::kStrided) fail("tensor '" + name + "' is not dense");
    const auto* known =
        std::find_if(std::begin(kDtypes), std::end(kDtypes),
                     [&](const DtypeName& d) { return tensor.scalar_type() == d.type; });
    if (known == std::end(kDtypes)) {
      fail("tensor '" + name + "' has unsupported dtype " + c10::toString(tensor.scalar_type()));
    }
    data.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const uint64_t nbytes = data.back().nbytes();
    header[name] = {{"dtype", known->name},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }

  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("a tensor name or metadata entry is not valid UTF-8 (") + e.what() + ")");
  }
  // Padding keeps the data section 8-byte aligned, as the reference writer does.
  json.resize((json.size() + 7) / 8 * 8, ' ');
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);

  std::vector<std::string_view> parts = {length, json};
  for (const torch::Tensor& t : data) {
    parts.emplace_back(static_cast<const char*>(t.data_ptr()), t.nbytes());
  }
  write_file_atomic_parts(path, parts);
}

SafetensorsFile load_safetensors(const std::string& path) {
  auto fail = [&](const std::string& what) {
    throw InputError("invalid safetensors file " + path + ": " + what);
  };
  std::ifstream in(path, std::ios::binary);
  std::error_code error;
  const uint64_t file_size = std::filesystem::file_size(path, error);
  if (!in || error) throw InputError("cannot open safetensors file: " + path);
  if (file_size < 8) {
    fail("file too short (" + std::to_string(file_size) + " bytes) for the 8-byte header length");
  }
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | length_bytes[i];
  if (header_size > file_size - 8) {
    fail("header length " + std::to_string(header_size) + " goes beyond the end of the file (" +
         std::to_string(file_size) + " bytes)");
  }
  std::string header_text(header_size, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_size));
  if (!in) fail("cannot read the header");

  Json header;
  try {
    header = Json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail("header is not a JSON object");

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name != "__metadata__") {
      entries.push_back(parse_entry(name, info, data_size, fail));
      continue;
    }
    if (!info.is_object()) fail("'__metadata__' is not a JSON object");
    for (const auto& [key, value] : info.items()) {
      if (!value.is_string()) fail("'__metadata__' value of '" + key + "' is not a string");
      file.metadata[key] = value.get<std::string>();
    }
  }

  // The tensors must tile the data section exactly: no overlaps, no gaps, nothing after.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].begin < covered) {
      fail("tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");
    }
    if (entries[i].begin > covered) {
      fail(std::to_string(entries[i].begin - covered) + " unused bytes before tensor '" +
           entries[i].name + "'");
    }
    covered = entries[i].end;
  }
  if (covered != data_size) {
    fail(std::to_string(data_size - covered) + " trailing bytes after the last tensor");
  }

  // Entries now tile the data section in order, so one sequential pass reads them all.
  for (const Entry& entry : entries) {
    torch::Tensor tensor = torch::empty(entry.shape, entry.dtype);
    const auto nbytes = static_cast<std::streamsize>(entry.end - entry.begin);
    if (nbytes > 0 && !in.read(static_cast<char*>(tensor.data_ptr()), nbytes)) {
      fail("cannot read the data of tensor '" + entry.name + "'");
    }
    if (entry.dtype == torch::kBool) {
      // A bool byte other than 0 or 1 is undefined behaviour in the kernels.
      const auto* bytes = static_cast<const uint8_t*>(tensor.data_ptr());
      for (std::streamsize i = 0; i < nbytes; ++i) {
        if (bytes[i] > 1) fail("tensor '" + entry.name + "' (BOOL) holds a byte other than 0 or 1");
      }
    }
    file.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return file;
}

NamedTensors module_state(const torch::nn::Module& module) {
  NamedTensors state;
  collect_state(module, "", state);
  return state;
}

void load_module_state(torch::nn::Module& module, const NamedTensors& tensors,
                       const std::string& source) {
  std::map<std::string, const torch::Tensor*> given;
  std::vector<std::string> duplicate, missing, unexpected, mismatched;
  for (const auto& [name, tensor] : tensors) {
    if (!given.emplace(name, &tensor).second) duplicate.push_back(name);
  }
  const NamedTensors destination = module_state(module);
  std::set<std::string> wanted;
  for (const auto& [name, dest] : destination) {
    wanted.insert(name);
    const auto found = given.find(name);
    if (found == given.end()) {
      missing.push_back(name);
    } else if (!found->second->defined()) {
      mismatched.push_back(name + " (expected " + shape_string(dest.sizes()) +
                           ", found undefined)");
    } else if (found->second->sizes() != dest.sizes()) {
      mismatched.push_back(name + " (expected " + shape_string(dest.sizes()) + ", found " +
                           shape_string(found->second->sizes()) + ")");
    }
  }
  for (const auto& [name, tensor] : tensors) {
    if (!wanted.count(name)) unexpected.push_back(name);
  }

  std::string problems;
  if (!missing.empty()) problems += "\n  missing keys: " + join(missing);
  if (!unexpected.empty()) problems += "\n  unexpected keys: " + join(unexpected);
  if (!mismatched.empty()) problems += "\n  shape mismatches: " + join(mismatched);
  if (!duplicate.empty()) problems += "\n  duplicate keys: " + join(duplicate);
  if (!problems.empty()) {
    throw InputError("cannot load state from " + source + " into the module:" + problems);
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, dest] : destination) dest.copy_(*given.at(name));
}

}  // namespace nlpkit
