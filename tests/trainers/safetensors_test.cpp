#include "trainers/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

// Same dtype, shape and bytes: stricter than torch::equal (NaN, -0.0).
testing::AssertionResult SameBytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) {
    return testing::AssertionFailure()
           << a.scalar_type() << a.sizes() << " vs " << b.scalar_type() << b.sizes();
  }
  const torch::Tensor x = a.contiguous(), y = b.contiguous();
  if (x.nbytes() > 0 && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) != 0) {
    return testing::AssertionFailure() << "bytes differ:\n" << a << "\n" << b;
  }
  return testing::AssertionSuccess();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A safetensors file from a header and data, unpadded (the reader must not require padding).
std::string raw_file(const std::string& header, const std::string& data) {
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return length + header + data;
}

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::path(testing::TempDir()) /
            ("nlpkit_safetensors_" +
             std::string(testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
             std::to_string(::getpid())))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeBitForBit) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float tiny = std::numeric_limits<float>::denorm_min();
  const torch::Tensor floats = torch::tensor({0.0f, -0.0f, 1.5f, -inf, inf, nan, tiny, 3.1e38f});
  const NamedTensors tensors = {
      {"f64", torch::randn({2, 3}, torch::kFloat64)},
      {"f32", floats},
      {"f16", floats.to(torch::kFloat16)},
      {"bf16", floats.to(torch::kBFloat16)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t(-1),
                             std::numeric_limits<int64_t>::max()})},
      {"i32", torch::tensor({std::numeric_limits<int32_t>::min(), 7}, torch::kInt32)},
      {"i16", torch::tensor({-32768, 32767}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127}, torch::kInt8)},
      {"u8", torch::tensor({0, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"empty", torch::zeros({0, 3})},
      {"scalar", torch::tensor(2.5)},
      {"transposed", torch::arange(6, torch::kFloat32).reshape({2, 3}).t()},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"step", "100"}};
  save_safetensors(path("all.safetensors"), tensors, metadata);
  const SafetensorsFile file = load_safetensors(path("all.safetensors"));

  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(file.tensors[i].first, tensors[i].first);  // the writer's order is kept
    EXPECT_TRUE(SameBytes(file.tensors[i].second, tensors[i].second)) << tensors[i].first;
    EXPECT_TRUE(file.tensors[i].second.device().is_cpu());
  }
  EXPECT_EQ(file.tensors[11].second.dim(), 0);
  EXPECT_EQ(file.metadata, metadata);
  const std::string bytes = read_file(path("all.safetensors"));
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);  // padded so that the data section is 8-byte aligned
}

TEST_F(SafetensorsTest, WritesTheReferenceLayout) {
  save_safetensors(path("x.safetensors"), {{"x", torch::tensor({1.0f, 2.0f})}});
  // The reference writer's layout: compact JSON padded with spaces to a multiple of 8.
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 54u);
  const std::string expected = std::string("\x38\0\0\0\0\0\0\0", 8) + header + "  " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  EXPECT_EQ(read_file(path("x.safetensors")), expected);
  // Nothing but the file itself is left in the directory (no temporary files).
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(SafetensorsTest, ReadsAHandWrittenFile) {
  // As another writer might produce it: metadata last, keys not in data order, no padding.
  const std::string header = R"({"b":{"dtype":"F32","shape":[],"data_offsets":[8,12]},)"
                             R"("a":{"dtype":"I32","shape":[2,1],"data_offsets":[0,8]},)"
                             R"("__metadata__":{"format":"pt"}})";
  const std::string data("\x01\x00\x00\x00\xfe\xff\xff\xff\x00\x00\xc0\x3f", 12);
  write_file(path("hand.safetensors"), raw_file(header, data));

  const SafetensorsFile file = load_safetensors(path("hand.safetensors"));
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.tensors[0].first, "a");  // data order
  EXPECT_TRUE(
      SameBytes(file.tensors[0].second, torch::tensor({1, -2}, torch::kInt32).view({2, 1})));
  EXPECT_EQ(file.tensors[1].first, "b");
  EXPECT_TRUE(SameBytes(file.tensors[1].second, torch::tensor(1.5f)));
  EXPECT_EQ(file.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST_F(SafetensorsTest, ReadsAnEmptyFile) {
  save_safetensors(path("none.safetensors"), {});
  const SafetensorsFile file = load_safetensors(path("none.safetensors"));
  EXPECT_TRUE(file.tensors.empty());
  EXPECT_TRUE(file.metadata.empty());
}

TEST_F(SafetensorsTest, ReportsEveryKindOfCorruptionWithThePath) {
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  struct Case {
    std::string name, bytes, expected;
  };
  const std::vector<Case> cases = {
      {"short", "abc", "file too short (3 bytes)"},
      {"length", std::string("\xff\0\0\0\0\0\0\0{}", 10), "header length 255 goes beyond the end"},
      {"json", raw_file("{\"x\":", ""), "header is not valid JSON"},
      {"array", raw_file("[1]", ""), "header is not a JSON object"},
      {"dtype", raw_file(R"({"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "\1"),
       "tensor 'x': unknown dtype \"F8_E4M3\""},
      {"no_shape", raw_file(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", eight.substr(4)),
       "tensor 'x': missing array 'shape'"},
      {"negative", raw_file(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "1234"),
       "tensor 'x': shape [-1] must hold integers >= 0"},
      {"huge",
       raw_file(R"({"x":{"dtype":"F32","shape":[4611686018427387904,8],)"
                R"("data_offsets":[0,4]}})",
                "1234"),
       "is too large"},
      {"offsets", raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "1234"),
       "'data_offsets' must be [begin, end]"},
      {"truncated", raw_file("{\"x\":" + f32x2 + "}", eight.substr(3)),
       "tensor 'x': data_offsets [0,8] go beyond the data section (5 bytes; file truncated?)"},
      {"size", raw_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       "hold 8 bytes, but shape [3] of F32 needs 12"},
      {"overlap", raw_file("{\"x\":" + f32x2 + ",\"y\":" + f32x2 + "}", eight),
       "tensors 'x' and 'y' overlap"},
      {"gap", raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "4 unused bytes before tensor 'x'"},
      {"trailing", raw_file("{\"x\":" + f32x2 + "}", eight + "xyz"),
       "3 trailing bytes after the last tensor"},
      {"metadata", raw_file(R"({"__metadata__":{"step":5}})", ""),
       "'__metadata__' value of 'step' is not a string"},
      {"bool", raw_file(R"({"x":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\1\2"),
       "tensor 'x' (BOOL) holds a byte other than 0 or 1"},
  };
  for (const Case& c : cases) {
    const std::string file = path(c.name + ".safetensors");
    write_file(file, c.bytes);
    const std::string message = error_of([&] { load_safetensors(file); });
    EXPECT_TRUE(Contains(message, "invalid safetensors file " + file + ": ")) << c.name;
    EXPECT_TRUE(Contains(message, c.expected)) << c.name;
  }
  EXPECT_EQ(error_of([&] { load_safetensors(path("missing.safetensors")); }),
            "cannot open safetensors file: " + path("missing.safetensors"));
}

TEST_F(SafetensorsTest, DetectsATruncatedFileWrittenByTheWriter) {
  save_safetensors(path("m.safetensors"), {{"w", torch::randn({4, 4})}, {"b", torch::randn({4})}});
  const std::string bytes = read_file(path("m.safetensors"));
  write_file(path("m.safetensors"), bytes.substr(0, bytes.size() - 1));
  EXPECT_TRUE(Contains(error_of([&] { load_safetensors(path("m.safetensors")); }),
                       "tensor 'b': data_offsets [64,80] go beyond the data section"));
}

TEST_F(SafetensorsTest, RejectsWhatItCannotWriteAndLeavesNoFile) {
  const std::string file = path("bad.safetensors");
  const std::string prefix = "cannot save safetensors file " + file + ": ";
  EXPECT_EQ(error_of([&] {
              save_safetensors(file, {{"z", torch::zeros({2}, torch::kComplexFloat)}});
            }),
            prefix + "tensor 'z' has unsupported dtype ComplexFloat");
  EXPECT_EQ(error_of([&] {
              save_safetensors(file, {{"a", torch::zeros({1})}, {"a", torch::zeros({1})}});
            }),
            prefix + "duplicate tensor name 'a'");
  EXPECT_EQ(error_of([&] {
              save_safetensors(file, {{"__metadata__", torch::zeros({1})}});
            }),
            prefix + "'__metadata__' is reserved and cannot name a tensor");
  EXPECT_EQ(error_of([&] {
              save_safetensors(file, {{"u", torch::Tensor()}});
            }),
            prefix + "tensor 'u' is undefined");
  EXPECT_TRUE(Contains(error_of([&] {
                         save_safetensors(file, {{"\xff", torch::zeros({1})}});
                       }),
                       prefix + "a tensor name or metadata entry is not valid UTF-8"));
  EXPECT_TRUE(fs::is_empty(dir_));
  EXPECT_TRUE(Contains(error_of([&] { save_safetensors(path("no/such/dir.safetensors"), {}); }),
                       path("no/such/dir.safetensors")));
}

// A module with its own parameter and buffer, a built-in child with buffers, and a nested
// Sequential with a bias-free Linear (LibTorch registers an undefined bias, which must not show).
struct NetImpl : torch::nn::Module {
  NetImpl() {
    scale = register_parameter("scale", torch::ones({2}));
    count = register_buffer("count", torch::zeros({}, torch::kInt64));
    fc = register_module("fc", torch::nn::Linear(3, 2));
    norm = register_module("norm", torch::nn::BatchNorm1d(2));
    seq = register_module(
        "seq",
        torch::nn::Sequential(torch::nn::Linear(2, 2),
                              torch::nn::Linear(torch::nn::LinearOptions(2, 1).bias(false))));
  }
  torch::Tensor scale, count;
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d norm{nullptr};
  torch::nn::Sequential seq{nullptr};
};
TORCH_MODULE(Net);

std::vector<std::string> names_of(const NamedTensors& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : tensors) names.push_back(name);
  return names;
}

TEST_F(SafetensorsTest, ModuleStateListsKeysInStateDictOrder) {
  Net net;
  EXPECT_EQ(names_of(module_state(*net)),
            (std::vector<std::string>{"scale", "count", "fc.weight", "fc.bias", "norm.weight",
                                      "norm.bias", "norm.running_mean", "norm.running_var",
                                      "norm.num_batches_tracked", "seq.0.weight", "seq.0.bias",
                                      "seq.1.weight"}));
  for (const auto& [name, tensor] : module_state(*net))
    EXPECT_FALSE(tensor.requires_grad()) << name;
}

TEST_F(SafetensorsTest, ModuleStateRoundTripsThroughAFile) {
  Net source, destination;
  {
    torch::NoGradGuard no_grad;
    source->norm->running_mean.fill_(0.25);
    source->count.fill_(7);
  }
  save_safetensors(path("net.safetensors"), module_state(*source));
  load_module_state(*destination, load_safetensors(path("net.safetensors")).tensors,
                    path("net.safetensors"));
  const NamedTensors expected = module_state(*source), actual = module_state(*destination);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(SameBytes(actual[i].second, expected[i].second)) << expected[i].first;
  }
  EXPECT_TRUE(destination->fc->weight.requires_grad());  // still a trainable parameter
}

TEST_F(SafetensorsTest, LoadModuleStateConvertsDtypeToTheDestination) {
  torch::nn::Linear linear(2, 2);
  load_module_state(*linear,
                    {{"weight", torch::full({2, 2}, 0.5, torch::kFloat64)},
                     {"bias", torch::tensor({1.0, 2.0}, torch::kBFloat16)}},
                    "memory");
  EXPECT_EQ(linear->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(linear->weight, torch::full({2, 2}, 0.5f)));
  EXPECT_TRUE(torch::equal(linear->bias, torch::tensor({1.0f, 2.0f})));
}

TEST_F(SafetensorsTest, LoadModuleStateListsEveryProblemAndChangesNothing) {
  torch::nn::Linear linear(3, 2);
  const torch::Tensor before = linear->weight.clone();
  const std::string message = error_of([&] {
    load_module_state(*linear,
                      {{"weight", torch::zeros({3, 2})},
                       {"extra", torch::zeros({1})},
                       {"extra2", torch::zeros({1})}},
                      "ckpt/model.safetensors");
  });
  EXPECT_EQ(message,
            "cannot load state from ckpt/model.safetensors into the module:\n"
            "  missing keys: bias\n"
            "  unexpected keys: extra, extra2\n"
            "  shape mismatches: weight (expected [2, 3], found [3, 2])");
  EXPECT_TRUE(torch::equal(linear->weight, before));

  EXPECT_TRUE(Contains(
      error_of([&] {
        load_module_state(
            *linear, {{"weight", before}, {"bias", linear->bias}, {"bias", linear->bias}}, "x");
      }),
      "duplicate keys: bias"));
}

}  // namespace
}  // namespace nlpkit
