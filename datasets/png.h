// PNG files through libpng's simplified API (png_image): predicted frames as pictures, and a
// strip that shows input, true and predicted frames one row each.
#pragma once

#include <torch/torch.h>

#include <string>

namespace nlpkit {

/// Writes an 8-bit PNG: (H, W) grayscale or (H, W, 3) RGB, uint8, or float/double taken as
/// [0, 1] (clamped to it, then round(v * 255), so that a prediction that overshoots still
/// draws). Written atomically (temporary name, fsync, rename). Throws c10::Error on a bad
/// shape, dtype or NaN, std::runtime_error naming the path when libpng or the write fails.
///   write_png("runs/x/step_100.png", frame_strip(inputs, truth, prediction));
void write_png(const std::string& path, const torch::Tensor& image);

/// Reads a PNG as uint8: (H, W) for grayscale files, (H, W, C) otherwise (C = 2 gray+alpha,
/// 3 RGB, 4 RGBA; palettes expand to RGB(A), 16-bit samples become 8-bit). Throws InputError
/// naming the path when the file is missing or not a PNG.
torch::Tensor read_png(const std::string& path);

/// One (3 H + 4, T W + 2 (T - 1)) uint8 image: row 1 the input frames, row 2 the true future
/// frames, row 3 the predicted frames, each (T, 1, H, W) uint8 or float in [0, 1] (as
/// write_png). The rows may hold different numbers of frames (T is the largest); frames and
/// rows are separated by 2 pixels of gray 128, which also fills the cells a shorter row lacks.
torch::Tensor frame_strip(const torch::Tensor& inputs, const torch::Tensor& truth,
                          const torch::Tensor& prediction);

}  // namespace nlpkit
