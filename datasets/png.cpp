#include "datasets/png.h"

#include <png.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <stdexcept>

#include "datasets/file_io.h"
#include "datasets/input_error.h"

namespace nlpkit {
namespace {

constexpr int64_t kSeparator = 2;
constexpr uint8_t kSeparatorGray = 128;

// uint8 as is; floating point clamped to [0, 1] and scaled to 0..255 with rounding.
torch::Tensor to_uint8(const torch::Tensor& image, const char* who) {
  if (image.scalar_type() == torch::kUInt8) return image.detach().cpu().contiguous();
  TORCH_CHECK(image.is_floating_point(), who, ": expected uint8 or floating point pixels, got ",
              image.scalar_type());
  const torch::Tensor values = image.detach().to(torch::kCPU, torch::kFloat);
  TORCH_CHECK(!values.isnan().any().item<bool>(), who, ": the image holds NaN");
  return values.clamp(0.0, 1.0).mul(255.0).round().to(torch::kUInt8).contiguous();
}

}  // namespace

void write_png(const std::string& path, const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 2 || (image.dim() == 3 && image.size(2) == 3),
              "write_png: expected (H, W) grayscale or (H, W, 3) RGB, got ", image.sizes());
  TORCH_CHECK(image.size(0) > 0 && image.size(1) > 0, "write_png: empty image ", image.sizes());
  TORCH_CHECK(image.size(0) <= PNG_UINT_31_MAX && image.size(1) <= PNG_UINT_31_MAX,
              "write_png: image too large for PNG ", image.sizes());
  const torch::Tensor pixels = to_uint8(image, "write_png");
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(pixels.size(1));
  png.height = static_cast<png_uint_32>(pixels.size(0));
  png.format = pixels.dim() == 2 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  // The simplified API reports errors through png.message instead of longjmp, which would
  // skip C++ destructors. A first call with no buffer measures the encoded size.
  png_alloc_size_t size = 0;
  const void* data = pixels.data_ptr<uint8_t>();
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, data, 0, nullptr)) {
    throw std::runtime_error("cannot encode PNG " + path + ": " + png.message);
  }
  std::string bytes(size, '\0');
  if (!png_image_write_to_memory(&png, bytes.data(), &size, 0, data, 0, nullptr)) {
    throw std::runtime_error("cannot encode PNG " + path + ": " + png.message);
  }
  bytes.resize(size);
  write_file_atomic(path, bytes);
}

torch::Tensor read_png(const std::string& path) {
  const std::string bytes = detail::read_file(path, "PNG");
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    throw InputError("not a PNG file: " + path + ": " + png.message);
  }
  // Keep the file's channels, 8 bits each (no linear, 16-bit output).
  png.format &= PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA;
  const int64_t channels = PNG_IMAGE_SAMPLE_CHANNELS(png.format);
  torch::Tensor image =
      channels == 1
          ? torch::empty({static_cast<int64_t>(png.height), static_cast<int64_t>(png.width)},
                         torch::kUInt8)
          : torch::empty(
                {static_cast<int64_t>(png.height), static_cast<int64_t>(png.width), channels},
                torch::kUInt8);
  if (!png_image_finish_read(&png, nullptr, image.data_ptr<uint8_t>(), 0, nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    throw InputError("cannot decode PNG file: " + path + ": " + message);
  }
  return image;
}

torch::Tensor frame_strip(const torch::Tensor& inputs, const torch::Tensor& truth,
                          const torch::Tensor& prediction) {
  const std::initializer_list<std::pair<const char*, const torch::Tensor*>> rows = {
      {"inputs", &inputs}, {"truth", &truth}, {"prediction", &prediction}};
  const int64_t h = inputs.dim() == 4 ? inputs.size(2) : 0;
  const int64_t w = inputs.dim() == 4 ? inputs.size(3) : 0;
  int64_t frames = 0;
  for (const auto& [name, row] : rows) {
    TORCH_CHECK(row->dim() == 4 && row->size(1) == 1, "frame_strip: ", name,
                " must be (T, 1, H, W) frames, got ", row->sizes());
    TORCH_CHECK(row->size(2) == h && row->size(3) == w, "frame_strip: ", name, " frames are ",
                row->size(2), "x", row->size(3), " but inputs frames are ", h, "x", w);
    frames = std::max(frames, row->size(0));
  }
  TORCH_CHECK(frames > 0 && h > 0 && w > 0, "frame_strip: no frames to draw");
  torch::Tensor strip =
      torch::full({3 * h + 2 * kSeparator, frames * w + (frames - 1) * kSeparator}, kSeparatorGray,
                  torch::kUInt8);
  int64_t r = 0;
  for (const auto& [name, row] : rows) {
    const torch::Tensor pixels = to_uint8(*row, "frame_strip");  // (T, 1, H, W)
    for (int64_t t = 0; t < pixels.size(0); ++t) {
      strip.narrow(0, r * (h + kSeparator), h)
          .narrow(1, t * (w + kSeparator), w)
          .copy_(pixels[t][0]);
    }
    ++r;
  }
  return strip;
}

}  // namespace nlpkit
