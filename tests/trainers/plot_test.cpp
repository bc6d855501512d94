#include "trainers/plot.h"

#include <gtest/gtest.h>

#include <set>

#include "datasets/png.h"
#include "tests/test_util.h"

namespace nlpkit {
namespace {

using Rgb = std::array<int, 3>;

Rgb pixel(const torch::Tensor& image, int64_t y, int64_t x) {
  auto a = image.accessor<uint8_t, 3>();
  return {a[y][x][0], a[y][x][1], a[y][x][2]};
}

/// Pixels of exactly this colour.
int64_t count_colour(const torch::Tensor& image, Rgb c) {
  return (image.select(2, 0).eq(c[0]) & image.select(2, 1).eq(c[1]) & image.select(2, 2).eq(c[2]))
      .sum()
      .item<int64_t>();
}

TEST(Plot, FontDrawsEveryPrintableCharacterDistinctly) {
  std::set<std::string> glyphs;
  for (char c = 33; c < 127; ++c) {
    const torch::Tensor image = render_text(std::string(1, c));
    EXPECT_GT(image.lt(128).sum().item<int64_t>(), 0) << "'" << c << "' draws nothing";
    const torch::Tensor bits = image.lt(128).contiguous();
    glyphs.insert(std::string(static_cast<const char*>(bits.data_ptr()), bits.numel()));
  }
  EXPECT_EQ(glyphs.size(), 94u) << "two characters share a glyph";
  EXPECT_EQ(render_text(" ").lt(128).sum().item<int64_t>(), 0);
}

TEST(Plot, TextWidth) {
  EXPECT_EQ(text_width(""), 0);
  EXPECT_EQ(text_width("a"), 10);
  EXPECT_EQ(text_width("abc"), 34);
  EXPECT_EQ(text_width("caf\xc3\xa9"), text_width("cafe"));  // é draws as one '?'
  EXPECT_EQ(render_text("abc").size(1), 34 + 8);
}

TEST(Plot, LineChartDrawsEverySeriesInItsColour) {
  Series train{"train", {1, 2, 3, 4, 5, 6}, {2.0, 1.5, 1.1, 0.9, 0.8, 0.75}};
  Series valid{"valid", {3, 6}, {1.2, 0.9}, /*markers=*/true};
  LineChartOptions o;
  o.title = "loss";
  o.y_label = "loss";
  const torch::Tensor image = render_line_chart({train, valid}, o);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{500, 800, 3}));
  EXPECT_EQ(image.dtype(), torch::kUInt8);
  EXPECT_GT(count_colour(image, {31, 119, 180}), 200);  // tab10 blue: the train line
  EXPECT_GT(count_colour(image, {255, 127, 14}), 80);   // tab10 orange: valid markers + line
  EXPECT_EQ(pixel(image, 0, 0), (Rgb{255, 255, 255}));
  // A PNG of it decodes to the same pixels.
  const std::string path = testing::TempDir() + "/nlpkit_plot_chart.png";
  write_png(path, image);
  EXPECT_TRUE(torch::equal(read_png(path), image));
  std::filesystem::remove(path);
}

TEST(Plot, LineChartEdgeCases) {
  LineChartOptions small;
  small.width = 320;
  small.height = 200;
  // Nothing finite, one point, a constant line and NaN gaps all draw.
  EXPECT_EQ(render_line_chart({}, small).sizes(), (std::vector<int64_t>{200, 320, 3}));
  EXPECT_EQ(render_line_chart({{"one", {5}, {0.5}}}, small).size(0), 200);
  EXPECT_EQ(render_line_chart({{"flat", {1, 2, 3}, {7, 7, 7}}}, small).size(0), 200);
  EXPECT_EQ(render_line_chart({{"gap", {1, 2, 3, 4}, {1, NAN, 3, INFINITY}}}, small).size(0), 200);
  EXPECT_EQ(render_line_chart({{"tiny lr", {1, 2, 3}, {1e-6, 3e-6, 2e-6}}}, small).size(0), 200);
  EXPECT_THROW_WITH(render_line_chart({{"bad", {1, 2}, {1}}}), "has 2 x values and 1 y values");
  LineChartOptions tiny;
  tiny.width = 100;
  EXPECT_THROW_WITH(render_line_chart({}, tiny), "too small");
}

TEST(Plot, HeatmapLayoutAndColours) {
  HeatmapOptions o;
  o.cell_width = 10;
  o.cell_height = 10;
  const torch::Tensor values = torch::arange(12, torch::kFloat).reshape({3, 4});
  const torch::Tensor image = render_heatmap(values, o);
  // pad 8 | grid 4 x 10 | pad 8 | bar 16 | 4 | labels "-1.0e+99" (94) | pad 8; the body is at
  // least two text lines (32) high.
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{8 + 32 + 8, 8 + 40 + 8 + 16 + 4 + 94 + 8, 3}));
  const HeatmapLayout layout = heatmap_layout(3, 4, o);
  EXPECT_EQ(layout.height, image.size(0));
  EXPECT_EQ(layout.width, image.size(1));
  // The smallest value is white-blue, the largest dark blue (matplotlib's "Blues" ends).
  EXPECT_EQ(pixel(image, 8 + 5, 8 + 5), (Rgb{247, 251, 255}));
  EXPECT_EQ(pixel(image, 8 + 25, 8 + 35), (Rgb{8, 48, 107}));
  // A NaN cell is gray.
  values[1][1] = NAN;
  EXPECT_EQ(pixel(render_heatmap(values, o), 8 + 15, 8 + 15), (Rgb{190, 190, 190}));
}

TEST(Plot, HeatmapLabelsWidenAndHeightenIt) {
  HeatmapOptions o;
  o.title = "source x target";
  o.row_labels = {"le", "chat", "noir"};
  o.column_labels = {"the", "black", "cat"};
  o.annotate = true;
  const torch::Tensor attention = torch::softmax(torch::randn({3, 3}), 1);
  const torch::Tensor image = render_heatmap(attention, o);
  const HeatmapLayout layout = heatmap_layout(3, 3, o);
  EXPECT_EQ(image.size(0), layout.height);
  EXPECT_EQ(image.size(1), layout.width);
  HeatmapOptions bare;
  bare.annotate = true;
  EXPECT_GT(layout.width, heatmap_layout(3, 3, bare).width);
  EXPECT_GT(layout.height, heatmap_layout(3, 3, bare).height);
  // Labels wider than a cell are drawn upright: taller, not wider.
  HeatmapOptions upright = o;
  upright.column_labels = {"a rather long token", "b", "c"};
  EXPECT_GT(heatmap_layout(3, 3, upright).height, layout.height);
  EXPECT_EQ(heatmap_layout(3, 3, upright).width, layout.width);
  EXPECT_EQ(render_heatmap(attention, upright).size(0), heatmap_layout(3, 3, upright).height);

  HeatmapOptions wrong;
  wrong.row_labels = {"only one"};
  EXPECT_THROW_WITH(render_heatmap(attention, wrong), "1 row labels for 3 rows");
  EXPECT_THROW_WITH(render_heatmap(torch::ones({3})), "must be (rows, columns)");
}

}  // namespace
}  // namespace nlpkit
