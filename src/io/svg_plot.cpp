#include "vlm/io/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

namespace vlm::plot {
namespace {

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// 26 distinct letter colours for logos (hue wheel).
std::string letter_colour(char c) {
  int i = (c >= 'A' && c <= 'Z') ? c - 'A' : (static_cast<unsigned char>(c) % 26);
  return fmt::format("hsl({},{}%,{}%)", (i * 137) % 360, 65 + (i % 3) * 10, 35 + (i % 4) * 6);
}

std::string header(int w, int h, const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">{3}</text>\n",
      w, h, w / 2, escape(title));
}

// "Nice" tick positions covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int target = 6) {
  double span = hi - lo;
  if (span <= 0) span = 1;
  double raw = span / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::abs(t) < 1e-12 ? 0 : t);
  return out;
}

std::string tick_label(double v) { return fmt::format("{:g}", v); }

struct Frame {
  double x0, x1, y0, y1;   // data range
  double left = 70, right = 20, top = 40, bottom = 55;
  int w = 640, h = 420;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - left - right); }
  double py(double y) const { return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom); }
};

std::string axes(const Frame& f, const ChartOptions& o, bool numeric_x) {
  std::string s;
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", f.left,
                   f.top, f.w - f.left - f.right, f.h - f.top - f.bottom);
  for (double t : ticks(f.y0, f.y1)) {
    double y = f.py(t);
    s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>", f.left,
                     f.w - f.right, y, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"11\">{}</text>\n", f.left - 6,
                     y + 4, tick_label(t));
  }
  if (numeric_x)
    for (double t : ticks(f.x0, f.x1)) {
      double x = f.px(t);
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n", x,
                       f.h - f.bottom + 16, tick_label(t));
    }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
                   (f.left + f.w - f.right) / 2, f.h - 12, escape(o.xlabel));
  s += fmt::format(
      "<text x=\"16\" y=\"{0}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 16 {0})\">{1}</text>\n",
      (f.top + f.h - f.bottom) / 2, escape(o.ylabel));
  return s;
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string line_chart(const std::vector<Series>& series, const ChartOptions& o) {
  VLM_CHECK(!series.empty(), "line_chart: no series");
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    VLM_CHECK(s.x.size() == s.y.size() && !s.x.empty(), "line_chart: series '", s.name, "' has ", s.x.size(),
              " x values and ", s.y.size(), " y values");
    VLM_CHECK(s.yerr.empty() || s.yerr.size() == s.y.size(), "line_chart: series '", s.name, "' yerr length");
    for (size_t i = 0; i < s.x.size(); ++i) {
      double e = s.yerr.empty() ? 0 : s.yerr[i];
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i] - e), y1 = std::max(y1, s.y[i] + e);
    }
  }
  if (x1 == x0) x0 -= 1, x1 += 1;
  double pad = (y1 - y0) * 0.08 + 1e-9;
  Frame f{x0, x1, o.ymin.value_or(y0 - pad), o.ymax.value_or(y1 + pad)};
  f.w = o.width, f.h = o.height;
  std::string svg = header(o.width, o.height, o.title) + axes(f, o, true);
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    std::string colour = kPalette[k % 10], points;
    for (size_t i = 0; i < s.x.size(); ++i) points += fmt::format("{:.1f},{:.1f} ", f.px(s.x[i]), f.py(s.y[i]));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", colour, points);
    for (size_t i = 0; i < s.x.size(); ++i) {
      double x = f.px(s.x[i]);
      if (!s.yerr.empty() && s.yerr[i] > 0) {
        double a = f.py(s.y[i] - s.yerr[i]), b = f.py(s.y[i] + s.yerr[i]);
        svg += fmt::format(
            "<path d=\"M{0:.1f},{1:.1f}V{2:.1f}M{3:.1f},{1:.1f}H{4:.1f}M{3:.1f},{2:.1f}H{4:.1f}\" stroke=\"{5}\"/>\n",
            x, a, b, x - 4, x + 4, colour);
      }
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{}: ({:g}, {:g})</title>"
                         "</circle>\n",
                         x, f.py(s.y[i]), colour, escape(s.name), s.x[i], s.y[i]);
    }
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" "
                       "font-size=\"12\">{}</text>\n",
                       f.left + 10, f.top + 12 + 16 * k, colour, f.left + 28, f.top + 17 + 16 * k, escape(s.name));
  }
  return svg + "</svg>\n";
}

std::string bar_chart(const std::vector<std::string>& labels, const std::vector<double>& values,
                      const ChartOptions& o) {
  VLM_CHECK(labels.size() == values.size() && !values.empty(), "bar_chart: ", labels.size(), " labels for ",
            values.size(), " values");
  double hi = *std::max_element(values.begin(), values.end());
  double lo = std::min(0.0, *std::min_element(values.begin(), values.end()));
  Frame f{0, static_cast<double>(values.size()), o.ymin.value_or(lo), o.ymax.value_or(hi > lo ? hi * 1.08 : lo + 1)};
  f.w = o.width, f.h = o.height;
  std::string svg = header(o.width, o.height, o.title) + axes(f, o, false);
  double bw = (f.px(1) - f.px(0)) * 0.8;
  for (size_t i = 0; i < values.size(); ++i) {
    double x = f.px(i + 0.1), y = f.py(values[i]), base = f.py(std::max(f.y0, 0.0));
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: "
                       "{:g}</title></rect>\n",
                       x, std::min(y, base), bw, std::abs(base - y), kPalette[0], escape(labels[i]), values[i]);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n",
                       x + bw / 2, f.h - f.bottom + 16, escape(labels[i]));
  }
  return svg + "</svg>\n";
}

std::string heatmap(const std::vector<std::vector<double>>& m, const std::vector<std::string>& rows,
                    const std::vector<std::string>& cols, const ChartOptions& o, const std::string& value_format) {
  VLM_CHECK(!m.empty() && m.size() == rows.size(), "heatmap: ", m.size(), " rows for ", rows.size(), " labels");
  double hi = 0;
  for (const auto& r : m) {
    VLM_CHECK(r.size() == cols.size(), "heatmap: a row has ", r.size(), " values for ", cols.size(), " columns");
    for (double v : r) hi = std::max(hi, v);
  }
  const double left = 70, top = 50, bottom = 50;
  double cw = (o.width - left - 20) / cols.size(), ch = (o.height - top - bottom) / rows.size();
  std::string svg = header(o.width, o.height, o.title);
  for (size_t i = 0; i < rows.size(); ++i) {
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"12\">{}</text>\n", left - 6,
                       top + (i + 0.5) * ch + 4, escape(rows[i]));
    for (size_t j = 0; j < cols.size(); ++j) {
      // Square-root scale so that small off-diagonal counts stay visible next to a heavy diagonal.
      double t = hi > 0 ? std::sqrt(m[i][j] / hi) : 0;
      int shade = static_cast<int>(255 - 200 * t);
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"rgb({},{},255)\" "
                         "stroke=\"white\"/>",
                         left + j * cw, top + i * ch, cw, ch, shade, shade);
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"{}\" fill=\"{}\">{}</text>\n",
                         left + (j + 0.5) * cw, top + (i + 0.5) * ch + 4, std::min(12.0, cw / 3.2),
                         t > 0.6 ? "white" : "black", fmt::format(fmt::runtime(value_format), m[i][j]));
    }
  }
  for (size_t j = 0; j < cols.size(); ++j)
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n",
                       left + (j + 0.5) * cw, top + rows.size() * ch + 16, escape(cols[j]));
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
                     left + cols.size() * cw / 2, o.height - 10, escape(o.xlabel));
  svg += fmt::format(
      "<text x=\"16\" y=\"{0:.1f}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 16 {0:.1f})\">{1}"
      "</text>\n",
      top + rows.size() * ch / 2, escape(o.ylabel));
  return svg + "</svg>\n";
}

std::string sequence_logo(const std::vector<std::string>& titles,
                          const std::vector<std::vector<std::map<char, double>>>& counts, int alphabet_size,
                          const std::string& title, int columns) {
  VLM_CHECK(titles.size() == counts.size() && !counts.empty(), "sequence_logo: ", titles.size(), " titles for ",
            counts.size(), " panels");
  VLM_CHECK(alphabet_size >= 2 && columns >= 1, "sequence_logo: bad alphabet size or columns");
  const double max_bits = std::log2(alphabet_size);
  const int panel_w = 220, panel_h = 150, col_w = 24;
  const int ncols = std::min<int>(columns, counts.size());
  const int nrows = (static_cast<int>(counts.size()) + ncols - 1) / ncols;
  const int w = ncols * panel_w + 20, h = nrows * panel_h + 40;
  std::string svg = header(w, h, title);
  for (size_t p = 0; p < counts.size(); ++p) {
    double ox = 30 + (p % ncols) * panel_w, oy = 40 + (p / ncols) * panel_h, base = oy + panel_h - 30;
    double scale = (panel_h - 50) / max_bits;  // pixels per bit
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\">{}</text>\n", ox, oy + 8, escape(titles[p]));
    svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", ox, ox,
                       base - max_bits * scale, base);
    for (size_t pos = 0; pos < counts[p].size(); ++pos) {
      double total = 0;
      for (const auto& [c, n] : counts[p][pos]) total += n;
      if (total <= 0) continue;
      std::vector<std::pair<double, char>> freq;
      double entropy = 0;
      for (const auto& [c, n] : counts[p][pos])
        if (n > 0) {
          double q = n / total;
          freq.emplace_back(q, c);
          entropy -= q * std::log2(q);
        }
      std::sort(freq.begin(), freq.end());  // smallest at the bottom, most frequent on top
      double info = std::max(0.0, max_bits - entropy), y = base, x = ox + 6 + pos * col_w;
      for (const auto& [q, c] : freq) {
        double hgt = q * info * scale;
        if (hgt < 0.3) continue;
        // A capital glyph at font-size 100 is ~72 units tall and ~62 wide: scale it to the cell.
        svg += fmt::format("<text transform=\"translate({:.1f},{:.1f}) scale({:.3f},{:.3f})\" font-size=\"100\" "
                           "font-weight=\"bold\" fill=\"{}\">{}</text>\n",
                           x, y, (col_w - 2) / 66.0, hgt / 72.0, letter_colour(c), c);
        y -= hgt;
      }
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n",
                         x + col_w / 2.0 - 1, base + 12, pos + 1);
    }
  }
  return svg + "</svg>\n";
}

void save_svg(const std::string& path, const std::string& svg) { write_text_atomically(path, svg); }

}  // namespace vlm::plot
