// Pictures of training, drawn by nlpkit itself into RGB tensors (write them with write_png from
// datasets/png.h): line charts of metrics against steps, and labelled heatmaps (attention
// weights). Text uses a built-in 5x7 bitmap font (printable ASCII; other characters draw as
// '?'), drawn at twice its size, so that no font library or plotting program is needed.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace nlpkit {

/// One line of a chart: points (x[i], y[i]); non-finite y values break the line.
struct Series {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  /// Also draw a square at every point (for sparse series such as validation results).
  bool markers = false;
};

struct LineChartOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  int64_t width = 800;
  int64_t height = 500;
};

/// A line chart: axes with "nice" tick values (1, 2, 5 x 10^k) and grid lines, one colour per
/// series, a legend on the right. Returns (height, width, 3) uint8. Throws c10::Error when a
/// series' x and y differ in length or the size is too small (< 200 x 150).
///   write_png("loss.png", render_line_chart({{"train", steps, losses}}));
torch::Tensor render_line_chart(const std::vector<Series>& series,
                                const LineChartOptions& options = {});

struct HeatmapOptions {
  std::string title;
  /// One label per row (drawn left of the grid) and per column (above it, turned upright when
  /// a label is wider than its cell); empty = none. Labels longer than max_label_chars are cut
  /// with "..".
  std::vector<std::string> row_labels;
  std::vector<std::string> column_labels;
  int64_t max_label_chars = 32;
  /// Cell size in pixels; cell_width 0 = 28, or wide enough for the value when annotate.
  int64_t cell_width = 0;
  int64_t cell_height = 28;
  /// Print each value (2 decimals) in its cell.
  bool annotate = false;
  /// Colour scale ends (white at vmin, dark blue at vmax); NaN = the values' min / max.
  double vmin = NAN;
  double vmax = NAN;
};

/// Pixel size of the picture render_heatmap draws for `rows` x `columns` values.
struct HeatmapLayout {
  int64_t width = 0;
  int64_t height = 0;
};
HeatmapLayout heatmap_layout(int64_t rows, int64_t columns, const HeatmapOptions& options);

/// A heatmap of `values` (R, C) (any real dtype; NaN cells are gray) with its labels, title and
/// a colour bar. Returns (H, W, 3) uint8 with (H, W) as heatmap_layout says. Generic: sentence
/// attention of one document (D, 1) as well as decoder x encoder attention (T, S).
///   HeatmapOptions o;
///   o.row_labels = sentence_beginnings;
///   write_png("attention.png", render_heatmap(weights, o));
torch::Tensor render_heatmap(const torch::Tensor& values, const HeatmapOptions& options = {});

/// Width in pixels of `text` as the charts draw it (12 pixels a character, less the last gap).
int64_t text_width(const std::string& text);

/// A row of every printable ASCII character, for looking at the font.
torch::Tensor render_text(const std::string& text);

}  // namespace nlpkit
