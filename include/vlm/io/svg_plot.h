#pragma once
// A small plotting helper (Debian packages no C++ plotting library): self-contained SVG strings a browser opens.
//
//   vlm::plot::Series s{"exact", {500, 1000}, {0.78, 0.85}, {0.004, 0.003}};
//   vlm::plot::save_svg("acc.svg", vlm::plot::line_chart({s}, {"Accuracy", "iteration", "accuracy"}));
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vlm::plot {

struct ChartOptions {
  std::string title, xlabel, ylabel;
  int width = 640, height = 420;
  std::optional<double> ymin, ymax;  ///< fixed y range; otherwise fitted to the data (and error bars)
};

/// One line of points; `yerr` (optional, same length) draws symmetric error bars.
struct Series {
  std::string name;
  std::vector<double> x, y, yerr;
};

std::string line_chart(const std::vector<Series>& series, const ChartOptions& options);

/// Vertical bars, one per label.
std::string bar_chart(const std::vector<std::string>& labels, const std::vector<double>& values,
                      const ChartOptions& options);

/// A matrix as coloured cells with the values written in them (e.g. a confusion matrix: rows true, columns predicted).
std::string heatmap(const std::vector<std::vector<double>>& matrix, const std::vector<std::string>& row_labels,
                    const std::vector<std::string>& col_labels, const ChartOptions& options,
                    const std::string& value_format = "{:.0f}");

/// Sequence logos, one panel per group (e.g. per digit): for each position, letters stacked by frequency, the
/// stack's height the position's information content in bits (log2(alphabet) - entropy), like logomaker.
/// `counts[panel][position]` maps letter -> count.
std::string sequence_logo(const std::vector<std::string>& panel_titles,
                          const std::vector<std::vector<std::map<char, double>>>& counts, int alphabet_size,
                          const std::string& title, int columns = 5);

/// Writes an SVG string atomically.
void save_svg(const std::string& path, const std::string& svg);

/// Escapes &, <, >, " for SVG text.
std::string escape(const std::string& text);

}  // namespace vlm::plot
