#include "trainers/plot.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>

namespace nlpkit {
namespace detail {

// ------------------------------------------------------------------------------ font

// A 5x7 bitmap font for printable ASCII (32 ' ' to 126 '~'), the one small LCD controllers
// have long used: five columns per character, bit r of a column is row r (0 = top).
constexpr uint8_t kFont[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00},  // ' ' !
    {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7F, 0x14, 0x7F, 0x14},  // " #
    {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},  // $ %
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00},  // & '
    {0x00, 0x1C, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1C, 0x00},  // ( )
    {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08},  // * +
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08},  // , -
    {0x00, 0x60, 0x60, 0x00, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02},  // . /
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},  // 0 1
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31},  // 2 3
    {0x18, 0x14, 0x12, 0x7F, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39},  // 4 5
    {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},  // 6 7
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E},  // 8 9
    {0x00, 0x36, 0x36, 0x00, 0x00}, {0x00, 0x56, 0x36, 0x00, 0x00},  // : ;
    {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},  // < =
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06},  // > ?
    {0x32, 0x49, 0x79, 0x41, 0x3E}, {0x7E, 0x11, 0x11, 0x11, 0x7E},  // @ A
    {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},  // B C
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41},  // D E
    {0x7F, 0x09, 0x09, 0x09, 0x01}, {0x3E, 0x41, 0x49, 0x49, 0x7A},  // F G
    {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},  // H I
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41},  // J K
    {0x7F, 0x40, 0x40, 0x40, 0x40}, {0x7F, 0x02, 0x0C, 0x02, 0x7F},  // L M
    {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},  // N O
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E},  // P Q
    {0x7F, 0x09, 0x19, 0x29, 0x46}, {0x46, 0x49, 0x49, 0x49, 0x31},  // R S
    {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},  // T U
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F},  // V W
    {0x63, 0x14, 0x08, 0x14, 0x63}, {0x07, 0x08, 0x70, 0x08, 0x07},  // X Y
    {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},  // Z [
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00},  // '\' ]
    {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40},  // ^ _
    {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},  // ` a
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20},  // b c
    {0x38, 0x44, 0x44, 0x48, 0x7F}, {0x38, 0x54, 0x54, 0x54, 0x18},  // d e
    {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x0C, 0x52, 0x52, 0x52, 0x3E},  // f g
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00},  // h i
    {0x20, 0x40, 0x44, 0x3D, 0x00}, {0x7F, 0x10, 0x28, 0x44, 0x00},  // j k
    {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},  // l m
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38},  // n o
    {0x7C, 0x14, 0x14, 0x14, 0x08}, {0x08, 0x14, 0x14, 0x18, 0x7C},  // p q
    {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},  // r s
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C},  // t u
    {0x1C, 0x20, 0x40, 0x20, 0x1C}, {0x3C, 0x40, 0x30, 0x40, 0x3C},  // v w
    {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C},  // x y
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00},  // z {
    {0x00, 0x00, 0x7F, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00},  // | }
    {0x08, 0x04, 0x08, 0x10, 0x08},                                  // ~
};

constexpr int kScale = 2;                // font pixels drawn as 2x2 blocks
constexpr int kAdvance = 6 * kScale;     // 5 columns + 1 blank
constexpr int kTextHeight = 7 * kScale;  // 14 pixels

/// Printable ASCII as it is; each other UTF-8 character (lead byte and continuation bytes) -> '?'.
std::string ascii(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 32 && c < 127) {
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += ' ';
    } else if (c < 0x80 || c >= 0xC0) {
      out += '?';
    }  // 0x80-0xBF continue a character already shown as '?'
  }
  return out;
}

using Color = std::array<uint8_t, 3>;
constexpr Color kWhite{255, 255, 255};
constexpr Color kBlack{0, 0, 0};
constexpr Color kAxis{60, 60, 60};
constexpr Color kGrid{225, 225, 225};
constexpr Color kNaN{190, 190, 190};
// matplotlib's "tab10" colours, one per series.
constexpr Color kPalette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                              {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                              {188, 189, 34},  {23, 190, 207}};

/// An RGB picture being drawn; pixels outside are ignored, so drawing never fails.
class Canvas {
 public:
  Canvas(int64_t width, int64_t height)
      : w_(width), h_(height), pixels_(static_cast<size_t>(width * height * 3), 255) {}

  void blend(int64_t x, int64_t y, Color c, double alpha = 1) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_ || alpha <= 0) return;
    alpha = std::min(alpha, 1.0);
    uint8_t* p = &pixels_[static_cast<size_t>((y * w_ + x) * 3)];
    for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(p[k] + (c[k] - p[k]) * alpha + 0.5);
  }

  /// Pixels x0 <= x < x1, y0 <= y < y1.
  void fill(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Color c) {
    for (int64_t y = std::max<int64_t>(y0, 0); y < std::min(y1, h_); ++y) {
      for (int64_t x = std::max<int64_t>(x0, 0); x < std::min(x1, w_); ++x) blend(x, y, c);
    }
  }

  /// A one-pixel frame around x0 <= x < x1, y0 <= y < y1.
  void frame(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Color c) {
    fill(x0, y0, x1, y0 + 1, c);
    fill(x0, y1 - 1, x1, y1, c);
    fill(x0, y0, x0 + 1, y1, c);
    fill(x1 - 1, y0, x1, y1, c);
  }

  /// An anti-aliased segment `width` pixels wide: each pixel is covered by how far its centre
  /// lies inside the stroke.
  void line(double ax, double ay, double bx, double by, Color c, double width = 2) {
    const double half = width / 2;
    const double dx = bx - ax, dy = by - ay, length2 = dx * dx + dy * dy;
    const auto x0 = static_cast<int64_t>(std::floor(std::min(ax, bx) - half - 1));
    const auto x1 = static_cast<int64_t>(std::ceil(std::max(ax, bx) + half + 1));
    const auto y0 = static_cast<int64_t>(std::floor(std::min(ay, by) - half - 1));
    const auto y1 = static_cast<int64_t>(std::ceil(std::max(ay, by) + half + 1));
    for (int64_t y = std::max<int64_t>(y0, 0); y <= std::min(y1, h_ - 1); ++y) {
      for (int64_t x = std::max<int64_t>(x0, 0); x <= std::min(x1, w_ - 1); ++x) {
        const double px = x + 0.5, py = y + 0.5;
        double t = length2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / length2 : 0;
        t = std::clamp(t, 0.0, 1.0);
        const double distance = std::hypot(px - (ax + t * dx), py - (ay + t * dy));
        blend(x, y, c, half + 0.5 - distance);
      }
    }
  }

  /// Text with its top-left corner at (x, y); `upright` turns it a quarter left (reading
  /// upwards) with (x, y) its bottom-left corner.
  void text(int64_t x, int64_t y, const std::string& s, Color c, bool upright = false) {
    const std::string a = ascii(s);
    for (size_t i = 0; i < a.size(); ++i) {
      const uint8_t* glyph = kFont[a[i] - 32];
      for (int col = 0; col < 5; ++col) {
        for (int row = 0; row < 7; ++row) {
          if (!(glyph[col] >> row & 1)) continue;
          const int64_t along = static_cast<int64_t>(i) * kAdvance + col * kScale;
          const int64_t across = row * kScale;
          if (upright) {
            fill(x + across, y - along - kScale, x + across + kScale, y - along, c);
          } else {
            fill(x + along, y + across, x + along + kScale, y + across + kScale, c);
          }
        }
      }
    }
  }

  torch::Tensor tensor() const {
    return torch::from_blob(const_cast<uint8_t*>(pixels_.data()), {h_, w_, 3}, torch::kUInt8)
        .clone();
  }

 private:
  int64_t w_, h_;
  std::vector<uint8_t> pixels_;
};

/// "Nice" tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi], about `target` of
/// them; `step` receives their spacing.
std::vector<double> nice_ticks(double lo, double hi, int target, double* step) {
  const double raw = (hi - lo) / std::max(target, 1);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / power;
  *step = (fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10) * power;
  std::vector<double> ticks;
  for (double k = std::ceil(lo / *step - 1e-9); k * *step <= hi + *step * 1e-9; ++k) {
    ticks.push_back(k * *step);
  }
  return ticks;
}

/// A tick value with as many decimals as its spacing needs: 0.25 -> "0.25", 2000 -> "2000",
/// and scientific notation for very small or very large values (1e-5 -> "1.0e-05").
std::string format_tick(double v, double step) {
  if (std::abs(v) < step * 1e-6) v = 0;
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  char buf[32];
  if (decimals > 4 || std::abs(v) >= 1e7) {
    if (v == 0) return "0";
    std::snprintf(buf, sizeof buf, "%.1e", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

std::string shorten(const std::string& text, int64_t max_chars) {
  const std::string a = ascii(text);
  if (static_cast<int64_t>(a.size()) <= max_chars) return a;
  return a.substr(0, static_cast<size_t>(std::max<int64_t>(max_chars - 2, 0))) + "..";
}

/// White -> dark blue through matplotlib's "Blues" colours; t in [0, 1].
Color blues(double t) {
  static constexpr Color stops[] = {
      {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(static_cast<int>(t), 3);
  const double f = t - i;
  Color c;
  for (int k = 0; k < 3; ++k)
    c[k] = static_cast<uint8_t>(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f + 0.5);
  return c;
}

}  // namespace detail

int64_t text_width(const std::string& text) {
  const auto n = static_cast<int64_t>(detail::ascii(text).size());
  return n == 0 ? 0 : n * detail::kAdvance - detail::kScale;
}

torch::Tensor render_text(const std::string& text) {
  detail::Canvas canvas(text_width(text) + 8, detail::kTextHeight + 8);
  canvas.text(4, 4, text, detail::kBlack);
  return canvas.tensor();
}

// ------------------------------------------------------------------------------ line chart

torch::Tensor render_line_chart(const std::vector<Series>& series, const LineChartOptions& o) {
  using namespace detail;
  TORCH_CHECK(o.width >= 200 && o.height >= 150, "render_line_chart: size ", o.width, "x", o.height,
              " is too small (at least 200x150)");
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series) {
    TORCH_CHECK(s.x.size() == s.y.size(), "render_line_chart: series '", s.label, "' has ",
                s.x.size(), " x values and ", s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing finite to draw
  if (x0 == x1) x0 -= 1, x1 += 1;
  if (y0 == y1) {
    const double d = y0 != 0 ? std::abs(y0) * 0.1 : 1;
    y0 -= d, y1 += d;
  } else {  // 5% air above and below the data
    const double d = (y1 - y0) * 0.05;
    y0 -= d, y1 += d;
  }

  const int64_t pad = 10, tick = 5;
  const int64_t title_h = o.title.empty() ? 0 : kTextHeight + 12;
  const int64_t x_label_h = o.x_label.empty() ? 0 : kTextHeight + 8;
  const int64_t y_label_w = o.y_label.empty() ? 0 : kTextHeight + 10;
  int64_t legend_w = 0;
  const int64_t legend_chars = 22;
  for (const auto& s : series) {
    legend_w = std::max(legend_w, 28 + text_width(shorten(s.label, legend_chars)) + pad);
  }
  const int64_t top = pad + title_h + kTextHeight / 2;
  const int64_t bottom = o.height - pad - x_label_h - kTextHeight - tick - 4;
  double y_step = 1;
  const std::vector<double> y_ticks =
      nice_ticks(y0, y1, static_cast<int>(std::max<int64_t>((bottom - top) / 60, 2)), &y_step);
  int64_t tick_w = 0;
  for (double v : y_ticks) tick_w = std::max(tick_w, text_width(format_tick(v, y_step)));
  const int64_t left = pad + y_label_w + tick_w + tick + 4;
  const int64_t right = o.width - pad - legend_w;
  TORCH_CHECK(right - left >= 50 && bottom - top >= 50, "render_line_chart: size ", o.width, "x",
              o.height, " leaves no room for the plot");
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (right - left); };
  const auto py = [&](double y) { return bottom - (y - y0) / (y1 - y0) * (bottom - top); };

  Canvas c(o.width, o.height);
  if (!o.title.empty()) {
    c.text((left + right) / 2 - text_width(o.title) / 2, pad + 2, o.title, kBlack);
  }
  // Grid, ticks and their labels.
  for (double v : y_ticks) {
    const auto y = static_cast<int64_t>(std::lround(py(v)));
    c.fill(left, y, right, y + 1, kGrid);
    c.fill(left - tick, y, left, y + 1, kAxis);
    const std::string label = format_tick(v, y_step);
    c.text(left - tick - 4 - text_width(label), y - kTextHeight / 2, label, kAxis);
  }
  double x_step = 1;
  int64_t last_label_end = std::numeric_limits<int64_t>::min();
  for (double v :
       nice_ticks(x0, x1, static_cast<int>(std::max<int64_t>((right - left) / 100, 2)), &x_step)) {
    const auto x = static_cast<int64_t>(std::lround(px(v)));
    c.fill(x, top, x + 1, bottom, kGrid);
    c.fill(x, bottom, x + 1, bottom + tick, kAxis);
    const std::string label = format_tick(v, x_step);
    const int64_t begin = x - text_width(label) / 2;
    if (begin > last_label_end + 8) {  // never let labels touch
      c.text(begin, bottom + tick + 4, label, kAxis);
      last_label_end = begin + text_width(label);
    }
  }
  c.frame(left, top, right + 1, bottom + 1, kAxis);
  if (!o.x_label.empty()) {
    c.text((left + right) / 2 - text_width(o.x_label) / 2, o.height - pad - kTextHeight, o.x_label,
           kBlack);
  }
  if (!o.y_label.empty()) {
    c.text(pad, (top + bottom) / 2 + text_width(o.y_label) / 2, o.y_label, kBlack,
           /*upright=*/true);
  }
  // The series, then the legend.
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const Color color = kPalette[k % std::size(kPalette)];
    for (size_t i = 0; i + 1 < s.x.size(); ++i) {
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && std::isfinite(s.x[i + 1]) &&
          std::isfinite(s.y[i + 1])) {
        c.line(px(s.x[i]), py(s.y[i]), px(s.x[i + 1]), py(s.y[i + 1]), color);
      }
    }
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (s.markers || s.x.size() == 1) {
        const auto x = std::lround(px(s.x[i])), y = std::lround(py(s.y[i]));
        c.fill(x - 3, y - 3, x + 4, y + 4, color);
      }
    }
    const int64_t ly = top + static_cast<int64_t>(k) * (kTextHeight + 8);
    const int64_t lx = right + pad;
    c.line(lx, ly + kTextHeight / 2.0, lx + 20, ly + kTextHeight / 2.0, color);
    if (s.markers)
      c.fill(lx + 7, ly + kTextHeight / 2 - 3, lx + 14, ly + kTextHeight / 2 + 4, color);
    c.text(lx + 28, ly, shorten(s.label, legend_chars), kBlack);
  }
  return c.tensor();
}

// ------------------------------------------------------------------------------ heatmap

namespace {

struct HeatmapGeometry {
  int64_t pad = 8, cell_w = 0, cell_h = 0, title_h = 0, row_label_w = 0, column_label_h = 0;
  bool upright_columns = false;
  int64_t grid_w = 0, grid_h = 0, body_h = 0, bar_w = 16, bar_label_w = 0;
  int64_t width = 0, height = 0;
};

std::string value_text(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, std::abs(v) < 1000 ? "%.2f" : "%.2g", v);
  return buf;
}

HeatmapGeometry geometry(int64_t rows, int64_t columns, const HeatmapOptions& o) {
  using detail::kTextHeight;
  HeatmapGeometry g;
  g.cell_h = o.cell_height;
  g.cell_w = o.cell_width > 0 ? o.cell_width
             : o.annotate     ? std::max<int64_t>(28, text_width("-0.00") + 8)
                              : 28;
  g.title_h = o.title.empty() ? 0 : kTextHeight + g.pad;
  for (const auto& label : o.row_labels) {
    g.row_label_w =
        std::max(g.row_label_w, text_width(detail::shorten(label, o.max_label_chars)) + g.pad);
  }
  int64_t longest = 0;
  for (const auto& label : o.column_labels) {
    longest = std::max(longest, text_width(detail::shorten(label, o.max_label_chars)));
  }
  g.upright_columns = longest > g.cell_w - 4;
  if (!o.column_labels.empty())
    g.column_label_h = (g.upright_columns ? longest : kTextHeight) + g.pad;
  g.grid_w = columns * g.cell_w;
  g.grid_h = rows * g.cell_h;
  g.body_h = std::max<int64_t>(g.grid_h, 2 * kTextHeight + 4);
  g.bar_label_w = text_width("-1.0e+99");  // the widest value_text writes
  g.width = g.pad + g.row_label_w + g.grid_w + g.pad + g.bar_w + 4 + g.bar_label_w + g.pad;
  g.width = std::max(g.width, text_width(o.title) + 2 * g.pad);
  g.height = g.pad + g.title_h + g.column_label_h + g.body_h + g.pad;
  return g;
}

std::pair<double, double> value_range(const torch::Tensor& values, const HeatmapOptions& o) {
  double lo = o.vmin, hi = o.vmax;
  torch::Tensor finite = values.masked_select(torch::isfinite(values));
  if (std::isnan(lo)) lo = finite.numel() ? finite.min().item<double>() : 0;
  if (std::isnan(hi)) hi = finite.numel() ? finite.max().item<double>() : 1;
  return {lo, hi};
}

}  // namespace

HeatmapLayout heatmap_layout(int64_t rows, int64_t columns, const HeatmapOptions& options) {
  const HeatmapGeometry g = geometry(rows, columns, options);
  return {g.width, g.height};
}

torch::Tensor render_heatmap(const torch::Tensor& values_in, const HeatmapOptions& o) {
  using namespace detail;
  TORCH_CHECK(values_in.dim() == 2, "render_heatmap: values must be (rows, columns), got ",
              values_in.sizes());
  TORCH_CHECK(values_in.numel() > 0, "render_heatmap: no values");
  TORCH_CHECK(o.cell_height >= 8 && o.cell_width >= 0,
              "render_heatmap: cells must be at least 8 "
              "pixels high, got ",
              o.cell_height);
  const int64_t rows = values_in.size(0), columns = values_in.size(1);
  TORCH_CHECK(o.row_labels.empty() || static_cast<int64_t>(o.row_labels.size()) == rows,
              "render_heatmap: ", o.row_labels.size(), " row labels for ", rows, " rows");
  TORCH_CHECK(o.column_labels.empty() || static_cast<int64_t>(o.column_labels.size()) == columns,
              "render_heatmap: ", o.column_labels.size(), " column labels for ", columns,
              " columns");
  const torch::Tensor values = values_in.detach().to(torch::kCPU, torch::kDouble).contiguous();
  auto [lo, hi] = value_range(values, o);
  const HeatmapGeometry g = geometry(rows, columns, o);
  Canvas c(g.width, g.height);
  const int64_t grid_x = g.pad + g.row_label_w;
  const int64_t grid_y = g.pad + g.title_h + g.column_label_h;
  if (!o.title.empty()) c.text(g.pad, g.pad, o.title, kBlack);
  const auto* v = values.data_ptr<double>();
  const double span = hi > lo ? hi - lo : 1;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < columns; ++k) {
      const double x = v[r * columns + k];
      const double t = (x - lo) / span;
      const Color color = std::isnan(x) ? kNaN : blues(t);
      const int64_t cx = grid_x + k * g.cell_w, cy = grid_y + r * g.cell_h;
      c.fill(cx, cy, cx + g.cell_w, cy + g.cell_h, color);
      if (o.annotate && g.cell_h >= kTextHeight + 2) {
        const std::string text = value_text(x);
        c.text(cx + (g.cell_w - text_width(text)) / 2, cy + (g.cell_h - kTextHeight) / 2, text,
               t > 0.6 ? kWhite : kBlack);
      }
    }
  }
  c.frame(grid_x - 1, grid_y - 1, grid_x + g.grid_w + 1, grid_y + g.grid_h + 1, kAxis);
  for (int64_t r = 0; r < static_cast<int64_t>(o.row_labels.size()); ++r) {
    const std::string label = shorten(o.row_labels[r], o.max_label_chars);
    c.text(grid_x - g.pad - text_width(label), grid_y + r * g.cell_h + (g.cell_h - kTextHeight) / 2,
           label, kBlack);
  }
  for (int64_t k = 0; k < static_cast<int64_t>(o.column_labels.size()); ++k) {
    const std::string label = shorten(o.column_labels[k], o.max_label_chars);
    const int64_t cx = grid_x + k * g.cell_w;
    if (g.upright_columns) {
      c.text(cx + (g.cell_w - kTextHeight) / 2, grid_y - g.pad, label, kBlack, /*upright=*/true);
    } else {
      c.text(cx + (g.cell_w - text_width(label)) / 2, grid_y - g.pad - kTextHeight, label, kBlack);
    }
  }
  // Colour bar: vmax at the top, vmin at the bottom.
  const int64_t bar_x = grid_x + g.grid_w + g.pad;
  const int64_t bar_h = g.body_h;
  for (int64_t y = 0; y < bar_h; ++y) {
    c.fill(bar_x, grid_y + y, bar_x + g.bar_w, grid_y + y + 1,
           blues(1 - static_cast<double>(y) / std::max<int64_t>(bar_h - 1, 1)));
  }
  c.frame(bar_x - 1, grid_y - 1, bar_x + g.bar_w + 1, grid_y + bar_h + 1, kAxis);
  c.text(bar_x + g.bar_w + 4, grid_y, value_text(hi), kAxis);
  c.text(bar_x + g.bar_w + 4, grid_y + bar_h - kTextHeight, value_text(lo), kAxis);
  return c.tensor();
}

}  // namespace nlpkit
