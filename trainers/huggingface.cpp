#include "trainers/huggingface.h"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "datasets/file_io.h"
#include "datasets/input_error.h"
#include "trainers/trainer.h"

namespace fs = std::filesystem;

namespace nlpkit {
namespace {

std::string shape_text(torch::IntArrayRef sizes) {
  std::ostringstream s;
  s << sizes;
  return s.str();
}

/// Typed access to config.json with errors naming the file and the key.
class JsonReader {
 public:
  JsonReader(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {}

  int64_t integer(const std::string& key, int64_t fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_number_integer()) fail(key, "must be an integer", j_[key]);
    return j_[key].get<int64_t>();
  }
  double number(const std::string& key, double fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_number()) fail(key, "must be a number", j_[key]);
    return j_[key].get<double>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_string()) fail(key, "must be a string", j_[key]);
    return j_[key].get<std::string>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_boolean()) fail(key, "must be true or false", j_[key]);
    return j_[key].get<bool>();
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what,
                         const nlohmann::json& value) const {
    throw InputError(path_ + ": " + key + ": " + what + ", got " + value.dump());
  }

 private:
  const nlohmann::json& j_;
  std::string path_;
};

/// HuggingFace's legacy renames (TF-era checkpoints): LayerNorm.gamma/beta -> weight/bias.
std::string modern_name(std::string name) {
  auto replace_suffix = [&](const std::string& from, const std::string& to) {
    if (name.size() >= from.size() &&
        name.compare(name.size() - from.size(), from.size(), from) == 0) {
      name = name.substr(0, name.size() - from.size()) + to;
    }
  };
  replace_suffix(".gamma", ".weight");
  replace_suffix(".beta", ".bias");
  return name;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// ---------------------------------------------------------------- pytorch_model.bin
//
// torch.save writes a zip archive: <name>/data.pkl (a pickle of the state dict) and one record
// per storage, <name>/data/<key>. LibTorch's own torch::pickle_load cannot read a state dict:
// its unpickler turns collections.OrderedDict into None. This is a small unpickler for what
// torch.save emits (protocols 2-4): dicts, lists, tuples, strings, numbers, the persistent ids
// of storages and torch._utils._rebuild_tensor_v2 / _rebuild_parameter. Anything else (an
// arbitrary Python object) is refused: loading never executes code named by the file.

struct PickleValue;
using PickleRef = std::shared_ptr<PickleValue>;

struct PickleValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kTensor,
    kMark
  };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;                 // string, or "module.name" of a global
  std::vector<PickleRef> items;  // tuple, list; dict as key, value, key, value, ...
  torch::Tensor tensor;          // tensor, or the whole storage of a persistent id
};

PickleRef make_value(PickleValue::Kind kind) {
  auto v = std::make_shared<PickleValue>();
  v->kind = kind;
  return v;
}

class TorchUnpickler {
 public:
  TorchUnpickler(const std::string& path, caffe2::serialize::PyTorchStreamReader& archive,
                 std::string pickle)
      : path_(path), archive_(archive), data_(std::move(pickle)) {}

  PickleRef run() {
    using K = PickleValue::Kind;
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80:
          byte();
          break;  // PROTO
        case 0x95:
          bytes(8);
          break;  // FRAME
        case '.':
          return pop();  // STOP
        case '(':
          stack_.push_back(make_value(K::kMark));
          break;
        case 'N':
          stack_.push_back(make_value(K::kNone));
          break;
        case 0x88:
        case 0x89: {  // NEWTRUE, NEWFALSE
          auto v = make_value(K::kBool);
          v->i = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'K':
          push_int(byte());
          break;  // BININT1
        case 'M':
          push_int(le(2));
          break;  // BININT2
        case 'J':
          push_int(static_cast<int32_t>(le(4)));
          break;      // BININT
        case 0x8a: {  // LONG1
          const int n = byte();
          TORCH_CHECK(n <= 8, "integer too large");
          uint64_t x = le(n);
          if (n > 0 && n < 8 && (x >> (8 * n - 1)) & 1) x |= ~uint64_t(0) << (8 * n);
          push_int(static_cast<int64_t>(x));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          uint64_t x = 0;
          for (char c : bytes(8)) x = (x << 8) | static_cast<uint8_t>(c);
          auto v = make_value(K::kFloat);
          std::memcpy(&v->f, &x, 8);
          stack_.push_back(v);
          break;
        }
        case 'X':
          push_string(bytes(le(4)));
          break;  // BINUNICODE
        case 0x8c:
          push_string(bytes(byte()));
          break;  // SHORT_BINUNICODE
        case 'U':
          push_string(bytes(byte()));
          break;  // SHORT_BINSTRING
        case 'T':
          push_string(bytes(le(4)));
          break;     // BINSTRING
        case 'c': {  // GLOBAL
          auto v = make_value(K::kGlobal);
          const std::string module = line();
          v->s = module + "." + line();
          stack_.push_back(v);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          auto v = make_value(K::kGlobal);
          v->s = module->s + "." + name->s;
          stack_.push_back(v);
          break;
        }
        case 'q':
          memo_[byte()] = top();
          break;  // BINPUT
        case 'r':
          memo_[le(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;  // MEMOIZE
        case 'h':
          stack_.push_back(memo(byte()));
          break;  // BINGET
        case 'j':
          stack_.push_back(memo(le(4)));
          break;  // LONG_BINGET
        case '0':
          pop();
          break;  // POP
        case ')':
          stack_.push_back(make_value(K::kTuple));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          auto v = make_value(K::kTuple);
          v->items.resize(op - 0x84);
          for (auto it = v->items.rbegin(); it != v->items.rend(); ++it) *it = pop();
          stack_.push_back(v);
          break;
        }
        case 't': {  // TUPLE
          auto v = make_value(K::kTuple);
          v->items = pop_to_mark();
          stack_.push_back(v);
          break;
        }
        case ']':
          stack_.push_back(make_value(K::kList));
          break;
        case '}':
          stack_.push_back(make_value(K::kDict));
          break;
        case 'a': {  // APPEND
          auto x = pop();
          top()->items.push_back(x);
          break;
        }
        case 'e': {  // APPENDS
          auto xs = pop_to_mark();
          auto& list = top()->items;
          list.insert(list.end(), xs.begin(), xs.end());
          break;
        }
        case 's': {  // SETITEM
          auto value = pop(), key = pop();
          expect(top(), K::kDict, "SETITEM target");
          top()->items.push_back(key);
          top()->items.push_back(value);
          break;
        }
        case 'u': {  // SETITEMS
          auto xs = pop_to_mark();
          expect(top(), K::kDict, "SETITEMS target");
          auto& dict = top()->items;
          dict.insert(dict.end(), xs.begin(), xs.end());
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: a state dict's _metadata; unused
        case 'Q':
          stack_.push_back(persistent(pop()));
          break;     // BINPERSID
        case 'R': {  // REDUCE
          auto args = pop(), callable = pop();
          stack_.push_back(reduce(callable, args));
          break;
        }
        default:
          fail("unsupported pickle opcode 0x" + hex(op));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(path_ + ": " + what + " (expected a state dict saved with torch.save)");
  }
  uint8_t byte() {
    if (pos_ >= data_.size()) fail("truncated pickle");
    return static_cast<uint8_t>(data_[pos_++]);
  }
  std::string bytes(size_t n) {
    if (n > data_.size() - pos_) fail("truncated pickle");
    std::string out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint64_t le(int n) {
    uint64_t x = 0;
    for (int k = 0; k < n; ++k) x |= uint64_t(byte()) << (8 * k);
    return x;
  }
  std::string line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos) fail("truncated pickle");
    std::string out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  static std::string hex(int x) {
    std::ostringstream s;
    s << std::hex << x;
    return s.str();
  }
  void push_int(int64_t x) {
    auto v = make_value(PickleValue::Kind::kInt);
    v->i = x;
    stack_.push_back(v);
  }
  void push_string(std::string x) {
    auto v = make_value(PickleValue::Kind::kString);
    v->s = std::move(x);
    stack_.push_back(v);
  }
  PickleRef top() {
    if (stack_.empty()) fail("malformed pickle (empty stack)");
    return stack_.back();
  }
  PickleRef pop() {
    PickleRef v = top();
    stack_.pop_back();
    return v;
  }
  PickleRef memo(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("malformed pickle (unknown memo " + std::to_string(key) + ")");
    return it->second;
  }
  std::vector<PickleRef> pop_to_mark() {
    std::vector<PickleRef> out;
    while (true) {
      PickleRef v = pop();
      if (v->kind == PickleValue::Kind::kMark) break;
      out.push_back(v);
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  void expect(const PickleRef& v, PickleValue::Kind kind, const std::string& what) {
    if (v->kind != kind) fail("malformed pickle (" + what + ")");
  }
  std::vector<int64_t> ints(const PickleRef& tuple) {
    std::vector<int64_t> out;
    for (const auto& x : tuple->items) {
      expect(x, PickleValue::Kind::kInt, "tensor size or stride");
      out.push_back(x->i);
    }
    return out;
  }

  /// ('storage', torch.FloatStorage, key, location, numel) -> the storage as a 1-D CPU tensor.
  PickleRef persistent(const PickleRef& id) {
    if (id->kind != PickleValue::Kind::kTuple || id->items.size() < 5 ||
        id->items[0]->s != "storage") {
      fail("unsupported persistent id");
    }
    const std::string type = id->items[1]->s, key = id->items[2]->s;
    static const std::map<std::string, torch::ScalarType> kStorages = {
        {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
        {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
        {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
        {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
        {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
    auto it = kStorages.find(type);
    if (it == kStorages.end()) fail("unsupported storage type " + type);
    auto cached = storages_.find(key);
    if (cached == storages_.end()) {
      const std::string record = "data/" + key;
      if (!archive_.hasRecord(record)) fail("missing storage record " + record);
      auto [data, size] = archive_.getRecord(record);
      const int64_t element = c10::elementSize(it->second);
      if (static_cast<int64_t>(size) % element != 0)
        fail("storage " + key + " has a partial element");
      torch::Tensor storage = torch::from_blob(data.get(), {static_cast<int64_t>(size) / element},
                                               torch::TensorOptions().dtype(it->second))
                                  .clone();
      cached = storages_.emplace(key, storage).first;
    }
    auto v = make_value(PickleValue::Kind::kTensor);
    v->tensor = cached->second;
    return v;
  }

  PickleRef reduce(const PickleRef& callable, const PickleRef& args) {
    using K = PickleValue::Kind;
    if (callable->kind != K::kGlobal) fail("malformed pickle (REDUCE of a non-callable)");
    const std::string& name = callable->s;
    if (name == "collections.OrderedDict" || name == "builtins.dict") return make_value(K::kDict);
    if (name == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args->items.size() < 4 || args->items[0]->kind != K::kTensor) {
        fail("malformed _rebuild_tensor_v2 arguments");
      }
      const torch::Tensor& storage = args->items[0]->tensor;
      const auto size = ints(args->items[2]), stride = ints(args->items[3]);
      const int64_t offset = args->items[1]->i;
      int64_t last = offset;
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] == 0) last = -1;
        if (last >= 0) last += (size[d] - 1) * stride[d];
      }
      if (last >= storage.numel()) fail("tensor reaches beyond its storage");
      auto v = make_value(K::kTensor);
      v->tensor = storage.as_strided(size, stride, offset);
      return v;
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (args->items.empty() || args->items[0]->kind != K::kTensor) {
        fail("malformed _rebuild_parameter arguments");
      }
      return args->items[0];
    }
    fail("refusing to load " + name + " (only tensors, dicts and lists are read)");
  }

  const std::string& path_;
  caffe2::serialize::PyTorchStreamReader& archive_;
  std::string data_;
  size_t pos_ = 0;
  std::vector<PickleRef> stack_;
  std::map<uint64_t, PickleRef> memo_;
  std::map<std::string, torch::Tensor> storages_;
};

NamedTensors read_pickled_state_dict(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    throw InputError(
        "cannot read " + path +
        " (expected a torch.save zip archive of a state dict): " + e.what_without_backtrace());
  }
  if (!archive->hasRecord("data.pkl")) {
    throw InputError(path + " has no data.pkl (expected a torch.save zip archive of a state dict)");
  }
  auto [data, size] = archive->getRecord("data.pkl");
  TorchUnpickler unpickler(path, *archive, std::string(static_cast<const char*>(data.get()), size));
  PickleRef root = unpickler.run();
  if (root->kind != PickleValue::Kind::kDict) {
    throw InputError(path + ": expected a state dict (a dict of name -> tensor)");
  }
  NamedTensors out;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const PickleRef& key = root->items[k];
    const PickleRef& value = root->items[k + 1];
    if (key->kind != PickleValue::Kind::kString || value->kind != PickleValue::Kind::kTensor) {
      throw InputError(path + ": expected a state dict (a dict of name -> tensor)");
    }
    out.emplace_back(key->s, value->tensor);
  }
  return out;
}

}  // namespace

std::string resolve_model_folder(const std::string& path, const std::string& what) {
  if (path.empty()) return "";
  if (!fs::exists(path)) throw InputError(what + ": folder not found: " + path);
  if (fs::exists(fs::path(path) / "config.json")) return path;
  if (fs::exists(fs::path(path) / "checkpoints") || fs::exists(fs::path(path) / "latest") ||
      fs::exists(fs::path(path) / "manifest.json")) {
    return find_best_checkpoint(path);
  }
  return path;  // read_hf_bert_config names what is missing
}

namespace {

/// DIR/config.json parsed, with errors naming the folder or the file; `path` receives its path.
nlohmann::json read_config_json(const std::string& dir, std::string& path) {
  if (!fs::is_directory(dir)) throw InputError("pretrained model folder not found: " + dir);
  path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path)) {
    throw InputError("pretrained model folder " + dir +
                     " has no config.json (expected a HuggingFace model folder or an nlpkit "
                     "checkpoint)");
  }
  nlohmann::json raw;
  try {
    raw = nlohmann::json::parse(detail::read_file(path, "config"));
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(path + ": invalid JSON: " + e.what());
  }
  if (!raw.is_object()) throw InputError(path + ": expected a JSON object");
  return raw;
}

std::vector<std::string> read_architectures(const nlohmann::json& raw) {
  std::vector<std::string> out;
  if (raw.contains("architectures") && raw["architectures"].is_array()) {
    for (const auto& a : raw["architectures"]) {
      if (a.is_string()) out.push_back(a.get<std::string>());
    }
  }
  return out;
}

/// id2label in index order; empty when the config has none.
std::vector<std::string> read_labels(const nlohmann::json& raw, const JsonReader& r) {
  std::vector<std::string> labels;
  if (raw.contains("id2label") && raw["id2label"].is_object()) {
    const auto& m = raw["id2label"];
    labels.resize(m.size());
    for (auto it = m.begin(); it != m.end(); ++it) {
      size_t index = 0;
      try {
        index = std::stoul(it.key());
      } catch (const std::exception&) {
        r.fail("id2label", "keys must be label indices", m);
      }
      if (index >= m.size() || !it.value().is_string()) {
        r.fail("id2label", "must map 0..N-1 to label names", m);
      }
      labels[index] = it.value().get<std::string>();
    }
  }
  return labels;
}

}  // namespace

HfBertConfig read_hf_bert_config(const std::string& dir) {
  std::string path;
  HfBertConfig c;
  c.raw = read_config_json(dir, path);
  const JsonReader r(c.raw, path);
  const std::string model_type = r.string("model_type", "");
  if (model_type != "bert") {
    throw InputError(path + ": model_type is '" + model_type +
                     "', expected 'bert' (model.type bert loads BERT checkpoints only)");
  }
  const std::string position_type = r.string("position_embedding_type", "absolute");
  if (position_type != "absolute") {
    throw InputError(path + ": position_embedding_type '" + position_type +
                     "' is not supported (only 'absolute')");
  }
  if (r.boolean("is_decoder", false) || r.boolean("add_cross_attention", false)) {
    throw InputError(path +
                     ": decoder BERT configs (is_decoder, add_cross_attention) are not "
                     "supported");
  }
  BertOptions& o = c.options;
  o.vocab_size(r.integer("vocab_size", o.vocab_size()))
      .hidden_size(r.integer("hidden_size", o.hidden_size()))
      .num_layers(r.integer("num_hidden_layers", o.num_layers()))
      .num_heads(r.integer("num_attention_heads", o.num_heads()))
      .intermediate_size(r.integer("intermediate_size", o.intermediate_size()))
      .hidden_act(r.string("hidden_act", o.hidden_act()))
      .dropout(r.number("hidden_dropout_prob", o.dropout()))
      .attention_dropout(r.number("attention_probs_dropout_prob", o.attention_dropout()))
      .max_position_embeddings(r.integer("max_position_embeddings", o.max_position_embeddings()))
      .type_vocab_size(r.integer("type_vocab_size", o.type_vocab_size()))
      .layer_norm_eps(r.number("layer_norm_eps", o.layer_norm_eps()))
      .pad_id(r.integer("pad_token_id", o.pad_id()));
  const std::set<std::string> activations = {"gelu", "gelu_new", "relu", "tanh"};
  if (!activations.count(o.hidden_act())) {
    r.fail("hidden_act", "is not supported (gelu, gelu_new, relu, tanh)", o.hidden_act());
  }
  if (o.hidden_size() <= 0 || o.num_heads() <= 0 || o.hidden_size() % o.num_heads() != 0) {
    throw InputError(path + ": hidden_size (" + std::to_string(o.hidden_size()) +
                     ") must be a positive multiple of num_attention_heads (" +
                     std::to_string(o.num_heads()) + ")");
  }
  for (const auto& [key, value] : {std::pair<std::string, int64_t>{"vocab_size", o.vocab_size()},
                                   {"num_hidden_layers", o.num_layers() + 1},
                                   {"intermediate_size", o.intermediate_size()},
                                   {"max_position_embeddings", o.max_position_embeddings()},
                                   {"type_vocab_size", o.type_vocab_size()}}) {
    if (value <= 0) r.fail(key, "must be positive", c.raw[key]);
  }
  if (o.pad_id() < 0 || o.pad_id() >= o.vocab_size()) {
    r.fail("pad_token_id", "must be in [0, vocab_size)", c.raw["pad_token_id"]);
  }
  c.initializer_range = r.number("initializer_range", 0.02);
  c.classifier_dropout = r.number("classifier_dropout", -1);
  c.architectures = read_architectures(c.raw);
  c.labels = read_labels(c.raw, r);
  return c;
}

DebertaOptions deberta_options_from_json(const nlohmann::json& j, const std::string& path,
                                         const std::string& key_prefix) {
  if (!j.is_object()) throw InputError(path + ": " + key_prefix + ": expected a JSON object");
  // Keys in errors carry the prefix ("generator.hidden_size").
  const std::string where = path + ": " + key_prefix;
  auto fail = [&](const std::string& key, const std::string& what) {
    throw InputError(path + ": " + key_prefix + key + ": " + what +
                     (j.contains(key) ? ", got " + j[key].dump() : std::string()));
  };
  const JsonReader r(j, path);
  auto integer = [&](const std::string& key, int64_t fallback) {
    if (j.contains(key) && !j[key].is_null() && !j[key].is_number_integer()) {
      fail(key, "must be an integer");
    }
    return r.integer(key, fallback);
  };
  auto number = [&](const std::string& key, double fallback) {
    if (j.contains(key) && !j[key].is_null() && !j[key].is_number()) fail(key, "must be a number");
    return r.number(key, fallback);
  };
  auto string = [&](const std::string& key, const std::string& fallback) {
    if (j.contains(key) && !j[key].is_null() && !j[key].is_string()) fail(key, "must be a string");
    return r.string(key, fallback);
  };
  auto boolean = [&](const std::string& key, bool fallback) {
    if (j.contains(key) && !j[key].is_null() && !j[key].is_boolean()) {
      fail(key, "must be true or false");
    }
    return r.boolean(key, fallback);
  };
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  auto trim = [](const std::string& s) {
    const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };

  DebertaOptions o;
  // HuggingFace's DebertaV2Config defaults for absent keys (microsoft/DeBERTa: padding_idx).
  o.vocab_size(integer("vocab_size", 128100))
      .hidden_size(integer("hidden_size", 1536))
      .num_layers(integer("num_hidden_layers", 24))
      .num_heads(integer("num_attention_heads", 24))
      .intermediate_size(integer("intermediate_size", 6144))
      .hidden_act(string("hidden_act", "gelu"))
      .dropout(number("hidden_dropout_prob", 0.1))
      .attention_dropout(number("attention_probs_dropout_prob", 0.1))
      .max_position_embeddings(integer("max_position_embeddings", 512))
      .type_vocab_size(integer("type_vocab_size", 0))
      .layer_norm_eps(number("layer_norm_eps", 1e-7))
      .pad_id(integer("pad_token_id", integer("padding_idx", 0)))
      .relative_attention(boolean("relative_attention", false))
      .max_relative_positions(integer("max_relative_positions", -1))
      .position_buckets(integer("position_buckets", -1))
      .share_att_key(boolean("share_att_key", false))
      .position_biased_input(boolean("position_biased_input", true))
      .conv_kernel_size(integer("conv_kernel_size", 0))
      .conv_act(string("conv_act", "tanh"))
      .conv_groups(integer("conv_groups", 1));

  // The sequence classifier's pooler: HuggingFace's pooler_* keys, else microsoft/DeBERTa's
  // "pooling" object.
  const nlohmann::json pooling =
      j.contains("pooling") && j["pooling"].is_object() ? j["pooling"] : nlohmann::json::object();
  o.pooler_hidden_act(string("pooler_hidden_act", pooling.value("hidden_act", "gelu")))
      .pooler_dropout(number("pooler_dropout", pooling.value("dropout", 0.0)));
  if (j.contains("pooler_hidden_size") && !j["pooler_hidden_size"].is_null() &&
      integer("pooler_hidden_size", o.hidden_size()) != o.hidden_size()) {
    fail("pooler_hidden_size", "must equal hidden_size (" + std::to_string(o.hidden_size()) + ")");
  }

  // pos_att_type: "p2c|c2p" or ["p2c", "c2p"], case-insensitive as in HuggingFace.
  std::vector<std::string> terms;
  if (j.contains("pos_att_type") && !j["pos_att_type"].is_null()) {
    const auto& v = j["pos_att_type"];
    if (v.is_string()) {
      std::stringstream s(lower(v.get<std::string>()));
      std::string term;
      while (std::getline(s, term, '|')) terms.push_back(trim(term));
    } else if (v.is_array()) {
      for (const auto& t : v) {
        if (!t.is_string()) fail("pos_att_type", "must be a string such as \"p2c|c2p\" or a list");
        terms.push_back(lower(trim(t.get<std::string>())));
      }
    } else {
      fail("pos_att_type", "must be a string such as \"p2c|c2p\" or a list of strings");
    }
  }
  std::string pos_att_type;
  for (const auto& t : terms) {
    if (t != "c2p" && t != "p2c") {
      fail("pos_att_type", "unknown term '" + t + "' (supported: c2p, p2c)");
    }
    pos_att_type += (pos_att_type.empty() ? "" : "|") + t;
  }
  o.pos_att_type(pos_att_type);

  // norm_rel_ebd: "none" or "layer_norm" ('|'-separated in HuggingFace).
  bool layer_norm = false;
  {
    std::stringstream s(lower(string("norm_rel_ebd", "none")));
    std::string term;
    while (std::getline(s, term, '|')) {
      term = trim(term);
      if (term == "layer_norm") {
        layer_norm = true;
      } else if (term != "none" && !term.empty()) {
        fail("norm_rel_ebd", "unknown value '" + term + "' (supported: none, layer_norm)");
      }
    }
  }
  o.norm_rel_ebd(layer_norm ? "layer_norm" : "none");

  const std::set<std::string> activations = {"gelu", "gelu_new", "relu", "tanh"};
  if (!activations.count(o.hidden_act())) {
    fail("hidden_act", "is not supported (gelu, gelu_new, relu, tanh)");
  }
  if (!activations.count(o.pooler_hidden_act())) {
    fail("pooler_hidden_act", "is not supported (gelu, gelu_new, relu, tanh)");
  }
  if (o.pooler_dropout() < 0 || o.pooler_dropout() >= 1)
    fail("pooler_dropout", "must be in [0, 1)");
  if (o.conv_kernel_size() > 0 && !activations.count(o.conv_act())) {
    fail("conv_act", "is not supported (gelu, gelu_new, relu, tanh)");
  }
  if (o.hidden_size() <= 0 || o.num_heads() <= 0 || o.hidden_size() % o.num_heads() != 0) {
    throw InputError(where + "hidden_size (" + std::to_string(o.hidden_size()) +
                     ") must be a positive multiple of num_attention_heads (" +
                     std::to_string(o.num_heads()) + ")");
  }
  if (j.contains("embedding_size") && !j["embedding_size"].is_null() &&
      integer("embedding_size", o.hidden_size()) != o.hidden_size()) {
    fail("embedding_size", "must equal hidden_size (" + std::to_string(o.hidden_size()) +
                               "): the embed_proj projection is not supported");
  }
  for (const char* key : {"vocab_size", "intermediate_size", "max_position_embeddings"}) {
    if (j.contains(key) && integer(key, 1) <= 0) fail(key, "must be positive");
  }
  if (o.num_layers() < 0) fail("num_hidden_layers", "must be >= 0");
  if (o.type_vocab_size() < 0) fail("type_vocab_size", "must be >= 0");
  if (o.pad_id() < 0 || o.pad_id() >= o.vocab_size()) {
    fail(j.contains("pad_token_id") ? "pad_token_id" : "padding_idx", "must be in [0, vocab_size)");
  }
  if (o.relative_attention() && o.position_buckets() > 0) {
    const int64_t max_relative =
        o.max_relative_positions() < 1 ? o.max_position_embeddings() : o.max_relative_positions();
    if (o.position_buckets() > max_relative) {
      fail("position_buckets",
           "must not exceed " +
               std::string(o.max_relative_positions() < 1 ? "max_position_embeddings ("
                                                          : "max_relative_positions (") +
               std::to_string(max_relative) + ")");
    }
    if (o.position_buckets() < 2) fail("position_buckets", "must be >= 2 (or <= 0: no buckets)");
  }
  if (o.conv_kernel_size() > 0) {
    if (o.conv_kernel_size() % 2 == 0) fail("conv_kernel_size", "must be odd");
    if (o.conv_groups() <= 0 || o.hidden_size() % o.conv_groups() != 0) {
      fail("conv_groups", "must divide hidden_size (" + std::to_string(o.hidden_size()) + ")");
    }
  }
  try {
    check_deberta_options(o);
  } catch (const c10::Error& e) {
    throw InputError(where + std::string(e.what_without_backtrace()));
  }
  return o;
}

HfDebertaConfig read_hf_deberta_config(const std::string& dir) {
  std::string path;
  HfDebertaConfig c;
  c.raw = read_config_json(dir, path);
  const JsonReader r(c.raw, path);
  const std::string model_type = r.string("model_type", "");
  if (model_type == "deberta") {
    throw InputError(path +
                     ": model_type 'deberta' (DeBERTa-v1: in_proj/q_bias/v_bias attention) is "
                     "not supported; expected 'deberta-v2' (DeBERTa-v2 and v3 checkpoints)");
  }
  if (model_type != "deberta-v2") {
    throw InputError(path + ": model_type is '" + model_type +
                     "', expected 'deberta-v2' (model.type deberta loads DeBERTa-v2/v3 "
                     "checkpoints)");
  }
  c.options = deberta_options_from_json(c.raw, path);
  c.initializer_range = r.number("initializer_range", 0.02);
  c.classifier_dropout = r.number("cls_dropout", -1);
  c.architectures = read_architectures(c.raw);
  c.labels = read_labels(c.raw, r);
  return c;
}

namespace {

/// id2label and label2id of `labels` into `j` (nothing when empty).
void add_labels(nlohmann::json& j, const std::vector<std::string>& labels) {
  if (labels.empty()) return;
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (size_t i = 0; i < labels.size(); ++i) {
    id2label[std::to_string(i)] = labels[i];
    label2id[labels[i]] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
}

}  // namespace

nlohmann::json hf_bert_config_json(const BertOptions& o, double initializer_range,
                                   const std::vector<std::string>& architectures,
                                   const std::vector<std::string>& labels,
                                   const nlohmann::json& base) {
  nlohmann::json j = base.is_object() ? base : nlohmann::json::object();
  j["model_type"] = "bert";
  j["architectures"] = architectures;
  j["vocab_size"] = o.vocab_size();
  j["hidden_size"] = o.hidden_size();
  j["num_hidden_layers"] = o.num_layers();
  j["num_attention_heads"] = o.num_heads();
  j["intermediate_size"] = o.intermediate_size();
  j["hidden_act"] = o.hidden_act();
  j["hidden_dropout_prob"] = o.dropout();
  j["attention_probs_dropout_prob"] = o.attention_dropout();
  j["max_position_embeddings"] = o.max_position_embeddings();
  j["type_vocab_size"] = o.type_vocab_size();
  j["layer_norm_eps"] = o.layer_norm_eps();
  j["pad_token_id"] = o.pad_id();
  j["initializer_range"] = initializer_range;
  j["position_embedding_type"] = "absolute";
  j["tie_word_embeddings"] = true;
  add_labels(j, labels);
  return j;
}

nlohmann::json hf_deberta_config_json(const DebertaOptions& o, double initializer_range,
                                      const std::vector<std::string>& architectures,
                                      const std::vector<std::string>& labels,
                                      const nlohmann::json& base) {
  nlohmann::json j = base.is_object() ? base : nlohmann::json::object();
  j["model_type"] = "deberta-v2";
  j["architectures"] = architectures;
  j["vocab_size"] = o.vocab_size();
  j["hidden_size"] = o.hidden_size();
  j["num_hidden_layers"] = o.num_layers();
  j["num_attention_heads"] = o.num_heads();
  j["intermediate_size"] = o.intermediate_size();
  j["hidden_act"] = o.hidden_act();
  j["hidden_dropout_prob"] = o.dropout();
  j["attention_probs_dropout_prob"] = o.attention_dropout();
  j["max_position_embeddings"] = o.max_position_embeddings();
  j["type_vocab_size"] = o.type_vocab_size();
  j["layer_norm_eps"] = o.layer_norm_eps();
  j["pad_token_id"] = o.pad_id();
  j["initializer_range"] = initializer_range;
  j["relative_attention"] = o.relative_attention();
  j["max_relative_positions"] = o.max_relative_positions();
  j["position_buckets"] = o.position_buckets();
  j["pos_att_type"] = o.pos_att_type();
  j["share_att_key"] = o.share_att_key();
  j["norm_rel_ebd"] = o.norm_rel_ebd();
  j["position_biased_input"] = o.position_biased_input();
  if (o.conv_kernel_size() > 0) {
    j["conv_kernel_size"] = o.conv_kernel_size();
    j["conv_act"] = o.conv_act();
    j["conv_groups"] = o.conv_groups();
  }
  j["pooler_hidden_size"] = o.hidden_size();
  j["pooler_hidden_act"] = o.pooler_hidden_act();
  j["pooler_dropout"] = o.pooler_dropout();
  add_labels(j, labels);
  return j;
}

NamedTensors read_hf_weights(const std::string& dir) {
  const fs::path root(dir);
  if (fs::exists(root / "model.safetensors")) {
    return load_safetensors((root / "model.safetensors").string()).tensors;
  }
  if (fs::exists(root / "pytorch_model.bin")) {
    return read_pickled_state_dict((root / "pytorch_model.bin").string());
  }
  if (fs::exists(root / "model.safetensors.index.json") ||
      fs::exists(root / "pytorch_model.bin.index.json")) {
    throw InputError(dir + ": sharded checkpoints (*.index.json) are not supported");
  }
  throw InputError(dir + " has neither model.safetensors nor pytorch_model.bin");
}

HfLoadReport load_hf_weights(torch::nn::Module& model, NamedTensors weights,
                             const std::string& source, const std::string& prefix) {
  const NamedTensors destination = module_state(model);
  std::map<std::string, torch::Tensor> wanted;
  for (const auto& [name, tensor] : destination) wanted.emplace(name, tensor);
  const std::string dotted = prefix + ".";
  bool model_has_prefix = false;
  for (const auto& [name, tensor] : destination) model_has_prefix |= starts_with(name, dotted);
  bool checkpoint_has_prefix = false;
  for (const auto& [name, tensor] : weights) checkpoint_has_prefix |= starts_with(name, dotted);

  HfLoadReport report;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // destination, source
  std::set<std::string> seen;
  std::string mismatches;
  for (auto& [stored_name, tensor] : weights) {
    std::string name = modern_name(stored_name);
    // A base-model checkpoint into a model with heads, or the other way round.
    if (model_has_prefix && !checkpoint_has_prefix) name = dotted + name;
    if (!model_has_prefix && checkpoint_has_prefix) {
      if (!starts_with(name, dotted)) {
        report.unexpected.push_back(stored_name);
        continue;
      }
      name = name.substr(dotted.size());
    }
    auto it = wanted.find(name);
    if (it == wanted.end()) {
      // Tied to the word embeddings and to cls.predictions.bias: one tensor in our model.
      const bool tied_copy =
          name == "cls.predictions.decoder.weight" || name == "cls.predictions.decoder.bias";
      if (!(tied_copy && wanted.count("cls.predictions.bias"))) {
        report.unexpected.push_back(stored_name);
      }
      continue;
    }
    if (it->second.sizes() != tensor.sizes()) {
      mismatches += "\n  " + name + ": checkpoint " + shape_text(tensor.sizes()) + ", model " +
                    shape_text(it->second.sizes());
      continue;
    }
    if (it->second.is_floating_point() != tensor.is_floating_point()) {
      mismatches += "\n  " + name + ": checkpoint dtype " +
                    std::string(c10::toString(tensor.scalar_type())) + ", model " +
                    c10::toString(it->second.scalar_type());
      continue;
    }
    copies.emplace_back(it->second, tensor);
    seen.insert(name);
    report.loaded.push_back(name);
  }
  if (!mismatches.empty()) {
    throw InputError("cannot load " + source +
                     ": shape mismatch (nothing was loaded):" + mismatches);
  }
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src.to(dst.device(), dst.scalar_type()));
  for (const auto& [name, tensor] : destination) {
    // position_ids is a constant buffer (0..P-1) that newer HuggingFace versions do not save.
    const bool constant =
        name.size() >= 12 && name.compare(name.size() - 12, 12, "position_ids") == 0;
    if (!seen.count(name) && !constant) report.initialized.push_back(name);
  }
  return report;
}

std::string HfLoadReport::summary() const {
  std::ostringstream s;
  s << "loaded " << loaded.size() << " tensors";
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    s << "; " << names.size() << " " << what << ":";
    const size_t shown = std::min<size_t>(names.size(), 8);
    for (size_t i = 0; i < shown; ++i) s << (i ? ", " : " ") << names[i];
    if (shown < names.size()) s << ", ... (" << names.size() - shown << " more)";
  };
  list("newly initialised (not in the checkpoint)", initialized);
  list("unused from the checkpoint", unexpected);
  return s.str();
}

NamedTensors hf_export_tensors(torch::nn::Module& model) {
  NamedTensors out = module_state(model);
  torch::Tensor word, bias;
  for (const auto& [name, tensor] : out) {
    if (name == "bert.embeddings.word_embeddings.weight" ||
        name == "deberta.embeddings.word_embeddings.weight") {
      word = tensor;
    }
    if (name == "cls.predictions.bias") bias = tensor;
  }
  if (word.defined() && bias.defined()) {
    out.emplace_back("cls.predictions.decoder.weight", word);
    out.emplace_back("cls.predictions.decoder.bias", bias);
  }
  return out;
}

namespace {

/// hf_forward for a DeBERTa-v2/v3 folder.
/// Loads the folder's weights for `nlpkit forward`, all or nothing: unmerged LoRA adapters and
/// missing weights are errors (a forward pass on fresh weights would mislead), then eval mode.
void load_for_forward(torch::nn::Module& model, const std::string& path, const std::string& dir,
                      const std::string& prefix) {
  const HfLoadReport report = load_hf_weights(model, read_hf_weights(dir), dir, prefix);
  for (const auto& name : report.unexpected) {
    if (name.find("lora_") != std::string::npos) {
      throw InputError(dir + " holds LoRA adapters (" + name +
                       "); merge them first: nlpkit export --format hf " + path + " OUT_DIR");
    }
  }
  if (!report.initialized.empty()) {
    throw InputError(dir + " lacks weights the model needs: " + report.summary());
  }
  model.eval();
}

/// Appends an encoder's outputs under HuggingFace's names: last_hidden_state, pooler_output
/// (when defined), hidden_states.i, attentions.i.
void add_encoder_outputs(NamedTensors& out, const torch::Tensor& last_hidden_state,
                         const torch::Tensor& pooler_output,
                         const std::vector<torch::Tensor>& hidden_states,
                         const std::vector<torch::Tensor>& attentions) {
  out.emplace_back("last_hidden_state", last_hidden_state);
  if (pooler_output.defined()) out.emplace_back("pooler_output", pooler_output);
  for (size_t i = 0; i < hidden_states.size(); ++i) {
    out.emplace_back("hidden_states." + std::to_string(i), hidden_states[i]);
  }
  for (size_t i = 0; i < attentions.size(); ++i) {
    out.emplace_back("attentions." + std::to_string(i), attentions[i]);
  }
}

NamedTensors deberta_forward(const std::string& path, const std::string& dir,
                             const torch::Tensor& ids, const torch::Tensor& mask,
                             const torch::Tensor& types) {
  const HfDebertaConfig c = read_hf_deberta_config(dir);
  const std::string arch = c.architectures.empty() ? "DebertaV2Model" : c.architectures[0];
  std::shared_ptr<torch::nn::Module> model;
  DebertaForMaskedLM mlm{nullptr};
  DebertaClassifier classifier{nullptr};
  DebertaModel base{nullptr};
  if (arch == "DebertaV2ForMaskedLM") {
    model = (mlm = DebertaForMaskedLM(c.options)).ptr();
  } else if (arch == "DebertaV2ForSequenceClassification") {
    const int64_t labels = c.labels.empty() ? 2 : static_cast<int64_t>(c.labels.size());
    model = (classifier = DebertaClassifier(c.options, labels, c.classifier_dropout)).ptr();
  } else {
    model = (base = DebertaModel(c.options)).ptr();
  }
  load_for_forward(*model, path, dir, "deberta");
  torch::NoGradGuard no_grad;
  NamedTensors out;
  auto add_model_outputs = [&](const DebertaModelOutput& o) {
    add_encoder_outputs(out, o.last_hidden_state, {}, o.hidden_states, o.attentions);
  };
  try {
    if (mlm) {
      DebertaMaskedLMOutput o = mlm->forward(ids, mask, types, true, true);
      add_model_outputs(o.deberta);
      out.emplace_back("prediction_logits", o.logits);
    } else if (classifier) {
      DebertaModelOutput o;
      torch::Tensor logits = classifier->forward(ids, mask, types, &o, true, true);
      add_model_outputs(o);
      out.emplace_back("logits", logits);
    } else {
      add_model_outputs(base->forward(ids, mask, types, true, true));
    }
  } catch (const c10::Error& e) {
    throw InputError("forward: " + std::string(e.what_without_backtrace()));
  }
  for (auto& [name, t] : out) t = t.contiguous();
  return out;
}

}  // namespace

NamedTensors hf_forward(const std::string& path, const NamedTensors& inputs) {
  const std::string dir = resolve_model_folder(path, "forward");
  std::string config_path;
  const nlohmann::json raw = read_config_json(dir, config_path);
  const bool deberta = raw.contains("model_type") && raw["model_type"].is_string() &&
                       raw["model_type"].get<std::string>().rfind("deberta", 0) == 0;
  torch::Tensor ids, mask, types;
  for (const auto& [name, t] : inputs) {
    torch::Tensor* slot = name == "input_ids"        ? &ids
                          : name == "attention_mask" ? &mask
                          : name == "token_type_ids" ? &types
                                                     : nullptr;
    if (!slot) {
      throw InputError("forward: unknown input '" + name +
                       "' (expected input_ids, attention_mask, token_type_ids)");
    }
    if (t.dim() != 2 || t.is_floating_point()) {
      throw InputError("forward: " + name + " must be a 2-D integer tensor (B, T), got " +
                       shape_text(t.sizes()) + " " + c10::toString(t.scalar_type()));
    }
    *slot = t.to(torch::kInt64);
  }
  if (!ids.defined()) throw InputError("forward: the inputs have no input_ids");
  if (deberta) return deberta_forward(path, dir, ids, mask, types);
  const HfBertConfig c = read_hf_bert_config(dir);
  const std::string arch = c.architectures.empty() ? "BertModel" : c.architectures[0];
  std::shared_ptr<torch::nn::Module> model;
  BertForPreTraining pretraining{nullptr};
  BertClassifier classifier{nullptr};
  BertModel base{nullptr};
  if (arch == "BertForPreTraining") {
    model = (pretraining = BertForPreTraining(c.options)).ptr();
  } else if (arch == "BertForSequenceClassification" || arch == "BertForTokenClassification") {
    const int64_t labels = c.labels.empty() ? 2 : static_cast<int64_t>(c.labels.size());
    model = (classifier = BertClassifier(c.options, labels, arch == "BertForTokenClassification",
                                         c.classifier_dropout))
                .ptr();
  } else {
    model = (base = BertModel(c.options)).ptr();
  }
  load_for_forward(*model, path, dir, "bert");
  torch::NoGradGuard no_grad;
  NamedTensors out;
  auto add_model_outputs = [&](const BertModelOutput& o) {
    add_encoder_outputs(out, o.last_hidden_state, o.pooler_output, o.hidden_states, o.attentions);
  };
  try {
    if (pretraining) {
      BertPreTrainingOutput o = pretraining->forward(ids, mask, types, true, true);
      add_model_outputs(o.bert);
      out.emplace_back("prediction_logits", o.prediction_logits);
      out.emplace_back("seq_relationship_logits", o.seq_relationship_logits);
    } else if (classifier) {
      BertModelOutput o;
      torch::Tensor logits = classifier->forward(ids, mask, types, &o, true, true);
      add_model_outputs(o);
      out.emplace_back("logits", logits);
    } else {
      add_model_outputs(base->forward(ids, mask, types, true, true));
    }
  } catch (const c10::Error& e) {
    throw InputError("forward: " + std::string(e.what_without_backtrace()));
  }
  for (auto& [name, t] : out) t = t.contiguous();
  return out;
}

}  // namespace nlpkit
