#include "datasets/png.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

class PngTest : public TempDirTest {
 protected:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  int64_t files() const {
    return std::distance(fs::directory_iterator(dir_), fs::directory_iterator());
  }
};

TEST_F(PngTest, GrayRoundTrip) {
  torch::manual_seed(0);
  const torch::Tensor image = torch::randint(0, 256, {5, 7}, torch::kUInt8);
  write_png(path("a.png"), image);
  std::ifstream in(path("a.png"), std::ios::binary);
  std::string magic(8, '\0');
  in.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
  const torch::Tensor back = read_png(path("a.png"));
  EXPECT_EQ(back.sizes(), (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(back.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(back, image));
  EXPECT_EQ(files(), 1);  // no temporary file left
}

TEST_F(PngTest, RgbRoundTripAndOverwrite) {
  torch::manual_seed(1);
  const torch::Tensor image = torch::randint(0, 256, {4, 3, 3}, torch::kUInt8);
  write_png(path("c.png"), torch::zeros({2, 2}, torch::kUInt8));
  write_png(path("c.png"), image.transpose(0, 1).contiguous().transpose(0, 1));  // strided
  EXPECT_TRUE(torch::equal(read_png(path("c.png")), image));
  EXPECT_EQ(files(), 1);
}

TEST_F(PngTest, FloatPixelsAreClampedAndScaled) {
  const torch::Tensor image = torch::tensor({{0.0, 0.2, 1.0}, {1.5, -0.1, 0.6}});
  write_png(path("f.png"), image);
  const torch::Tensor expected =
      torch::tensor({{0, 51, 255}, {255, 0, 153}}, torch::kInt).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(read_png(path("f.png")), expected));
  write_png(path("d.png"), image.to(torch::kDouble));
  EXPECT_TRUE(torch::equal(read_png(path("d.png")), expected));
}

TEST_F(PngTest, WriteErrors) {
  EXPECT_THROW_WITH(write_png(path("x.png"), torch::zeros({2, 2, 4}, torch::kUInt8)),
                    "write_png: expected (H, W) grayscale or (H, W, 3) RGB, got [2, 2, 4]");
  EXPECT_THROW_WITH(write_png(path("x.png"), torch::zeros({2}, torch::kUInt8)),
                    "write_png: expected (H, W) grayscale");
  EXPECT_THROW_WITH(write_png(path("x.png"), torch::zeros({0, 3}, torch::kUInt8)),
                    "write_png: empty image [0, 3]");
  EXPECT_THROW_WITH(write_png(path("x.png"), torch::zeros({2, 2}, torch::kInt)),
                    "write_png: expected uint8 or floating point pixels, got Int");
  EXPECT_THROW_WITH(write_png(path("x.png"), torch::full({2, 2}, NAN)),
                    "write_png: the image holds NaN");
  const std::string no_dir = (dir_ / "missing" / "x.png").string();
  EXPECT_ERROR(write_png(no_dir, torch::zeros({2, 2}, torch::kUInt8)), "cannot write " + no_dir);
  EXPECT_EQ(files(), 0);
}

TEST_F(PngTest, ReadErrorsNameThePath) {
  EXPECT_ERROR(read_png(path("none.png")), "PNG file not found: " + path("none.png"));
  const std::string text = write("text.png", "not a png at all");
  EXPECT_ERROR(read_png(text), "not a PNG file: " + text + ": ");
  // A real PNG cut short: the header reads, the pixels do not.
  write_png(path("cut.png"), torch::randint(0, 256, {40, 40}, torch::kUInt8));
  std::ifstream in(path("cut.png"), std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string cut = write("cut2.png", bytes.str().substr(0, 60));
  EXPECT_ERROR(read_png(cut), "PNG file: " + cut + ": ");
}

TEST_F(PngTest, FrameStripLayout) {
  // Inputs 3 frames, truth and prediction 2, each 4x5.
  const torch::Tensor inputs = torch::arange(60).view({3, 1, 4, 5}).to(torch::kUInt8);
  const torch::Tensor truth = (inputs.slice(0, 0, 2) + 100).to(torch::kUInt8);
  const torch::Tensor prediction = torch::full({2, 1, 4, 5}, 0.2);  // float: 51
  const torch::Tensor strip = frame_strip(inputs, truth, prediction);
  ASSERT_EQ(strip.sizes(), (std::vector<int64_t>{3 * 4 + 2 * 2, 3 * 5 + 2 * 2}));  // (16, 19)
  EXPECT_EQ(strip.scalar_type(), torch::kUInt8);
  auto cell = [&](int64_t row, int64_t t) {
    return strip.slice(0, row * 6, row * 6 + 4).slice(1, t * 7, t * 7 + 5);
  };
  for (int64_t t = 0; t < 3; ++t) EXPECT_TRUE(torch::equal(cell(0, t), inputs[t][0])) << t;
  for (int64_t t = 0; t < 2; ++t) {
    EXPECT_TRUE(torch::equal(cell(1, t), truth[t][0])) << t;
    EXPECT_TRUE((cell(2, t) == 51).all().item<bool>()) << t;
  }
  // Separators (rows 4-5 and 10-11, columns 5-6 and 12-13) and the cells rows 2 and 3 lack.
  EXPECT_TRUE((strip.slice(0, 4, 6) == 128).all().item<bool>());
  EXPECT_TRUE((strip.slice(0, 10, 12) == 128).all().item<bool>());
  EXPECT_TRUE((strip.slice(1, 5, 7) == 128).all().item<bool>());
  EXPECT_TRUE((strip.slice(1, 12, 14) == 128).all().item<bool>());
  EXPECT_TRUE((cell(1, 2) == 128).all().item<bool>());
  EXPECT_TRUE((cell(2, 2) == 128).all().item<bool>());
  // It is a picture: written and read back unchanged.
  write_png(path("strip.png"), strip);
  EXPECT_TRUE(torch::equal(read_png(path("strip.png")), strip));
}

TEST_F(PngTest, FrameStripOfOneFrameHasNoColumnSeparator) {
  const torch::Tensor f = torch::zeros({1, 1, 3, 2});
  EXPECT_EQ(frame_strip(f, f, f).sizes(), (std::vector<int64_t>{13, 2}));
}

TEST_F(PngTest, FrameStripErrors) {
  const torch::Tensor ok = torch::zeros({2, 1, 4, 5});
  EXPECT_THROW_WITH(frame_strip(ok, torch::zeros({2, 4, 5}), ok),
                    "frame_strip: truth must be (T, 1, H, W) frames, got [2, 4, 5]");
  EXPECT_THROW_WITH(frame_strip(ok, ok, torch::zeros({2, 3, 4, 5})),
                    "frame_strip: prediction must be (T, 1, H, W) frames, got [2, 3, 4, 5]");
  EXPECT_THROW_WITH(frame_strip(ok, ok, torch::zeros({2, 1, 4, 6})),
                    "frame_strip: prediction frames are 4x6 but inputs frames are 4x5");
  const torch::Tensor none = torch::zeros({0, 1, 4, 5});
  EXPECT_THROW_WITH(frame_strip(none, none, none), "frame_strip: no frames to draw");
  EXPECT_THROW_WITH(frame_strip(ok, ok, torch::full({2, 1, 4, 5}, NAN)),
                    "frame_strip: the image holds NaN");
}

}  // namespace
}  // namespace nlpkit
