#include "perf/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace bertopt::perf {
namespace {

// Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. Yellow last since
// it is faint on white.
constexpr const char* kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                    "#56B4E9", "#D55E00", "#000000", "#F0E442"};
constexpr size_t kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

// Text width is not measurable without a font engine; ~0.6 em per character is a safe upper bound
// for the sans-serif faces browsers pick at these sizes.
double TextWidth(std::string_view text, double font_size) {
  return static_cast<double>(text.size()) * font_size * 0.6;
}

// The baseline that centres a line of text on `middle`. dominant-baseline would say this directly,
// but several renderers (librsvg among them) ignore it.
double Baseline(double middle, double font_size) { return middle + font_size * 0.35; }

std::string Num(double v) { return fmt::format("{:.1f}", v); }

// Decimals that show a tick step exactly: 0.25 needs 2, 5 needs 0.
int TickDecimals(double step) {
  for (int d = 0; d < 6; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::fabs(scaled - std::round(scaled)) < 1e-6) return d;
  }
  return 6;
}

}  // namespace

std::vector<double> NiceTicks(double max_value, int target_count) {
  if (!(max_value > 0) || !std::isfinite(max_value)) return {0, 1};
  target_count = std::max(target_count, 1);
  const double raw_step = max_value / target_count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw_step)));
  const double normalized = raw_step / magnitude;
  double step = 10;
  for (double candidate : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (normalized <= candidate + 1e-9) {
      step = candidate;
      break;
    }
  }
  step *= magnitude;
  const int count = static_cast<int>(std::ceil(max_value / step - 1e-9));
  std::vector<double> ticks;
  // step * i rather than a running sum, so rounding errors do not pile up tick after tick.
  for (int i = 0; i <= std::max(count, 1); ++i) ticks.push_back(step * i);
  return ticks;
}

std::string FormatMsShort(double ms) {
  const double a = std::fabs(ms);
  if (a >= 100) return fmt::format("{:.0f}", ms);
  if (a >= 10) return fmt::format("{:.1f}", ms);
  if (a >= 1) return fmt::format("{:.2f}", ms);
  return fmt::format("{:.3g}", ms);
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderLatencyPlotSvg(const LatencyPlot& plot) {
  constexpr double kWidth = 900;
  constexpr double kMargin = 16;
  constexpr double kLabelFont = 12;
  constexpr double kValueFont = 11;
  constexpr double kBarHeight = 14;
  constexpr double kBarGap = 3;
  constexpr double kBandPadding = 7;
  const size_t series_count = std::max<size_t>(plot.series.size(), 1);

  // Legend: swatch + name, wrapped onto more lines when the models do not fit on one.
  struct LegendItem {
    double x, y;
    size_t series;
  };
  std::vector<LegendItem> legend;
  double legend_x = kMargin;
  double legend_y = plot.subtitle.empty() ? 50 : 66;
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const double item_width = 18 + TextWidth(plot.series[s], kLabelFont) + 20;
    if (legend_x > kMargin && legend_x + item_width > kWidth - kMargin) {
      legend_x = kMargin;
      legend_y += 20;
    }
    legend.push_back({legend_x, legend_y, s});
    legend_x += item_width;
  }

  double label_width = 0;
  for (const std::string& c : plot.categories) {
    label_width = std::max(label_width, TextWidth(c, kLabelFont));
  }
  double max_value = 0;
  for (const auto& row : plot.cells) {
    for (const PlotCell& cell : row) {
      if (cell.present) max_value = std::max({max_value, cell.p50_ms, cell.p90_ms});
    }
  }
  const std::vector<double> ticks = NiceTicks(max_value, 6);
  const double axis_max = ticks.back();
  const int decimals = TickDecimals(ticks.size() > 1 ? ticks[1] - ticks[0] : 1);

  const double plot_left = kMargin + label_width + 12;
  const double plot_right = kWidth - kMargin - 56;  // room for the value after the longest whisker
  const double plot_top = legend_y + 22;
  const double band_height = static_cast<double>(series_count) * kBarHeight +
                             static_cast<double>(series_count - 1) * kBarGap + 2 * kBandPadding;
  const double plot_bottom = plot_top + band_height * static_cast<double>(plot.categories.size());
  const double height = plot_bottom + 52;
  auto x_of = [&](double ms) {
    return plot_left + (plot_right - plot_left) * std::clamp(ms / axis_max, 0.0, 1.0);
  };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      Num(kWidth), Num(height));
  svg += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n",
                     Num(kWidth), Num(height));
  svg += fmt::format("<text x=\"{}\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
                     Num(kMargin), XmlEscape(plot.title));
  if (!plot.subtitle.empty()) {
    svg += fmt::format("<text x=\"{}\" y=\"47\" font-size=\"12\" fill=\"#555555\">{}</text>\n",
                       Num(kMargin), XmlEscape(plot.subtitle));
  }
  for (const LegendItem& item : legend) {
    svg += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{}\" font-size=\"{}\">{}</text>\n",
        Num(item.x), Num(item.y - 10), kPalette[item.series % kPaletteSize], Num(item.x + 18),
        Num(item.y), Num(kLabelFont), XmlEscape(plot.series[item.series]));
  }

  // Alternate band shading tells groups apart without boxes around them.
  for (size_t c = 0; c < plot.categories.size(); ++c) {
    if (c % 2 == 1) {
      svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f3f3f3\"/>\n",
                         Num(kMargin), Num(plot_top + band_height * static_cast<double>(c)),
                         Num(plot_right - kMargin), Num(band_height));
    }
  }
  // Grid and tick labels.
  for (double tick : ticks) {
    const double x = x_of(tick);
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"1\"/>\n"
        "<text x=\"{0}\" y=\"{4}\" font-size=\"{5}\" text-anchor=\"middle\">{6}</text>\n",
        Num(x), Num(plot_top), Num(plot_bottom + 4), tick == 0 ? "#333333" : "#d0d0d0",
        Num(plot_bottom + 18), Num(kValueFont), fmt::format("{:.{}f}", tick, decimals));
  }
  svg += fmt::format(
      "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333333\" stroke-width=\"1\"/>\n",
      Num(plot_left), Num(plot_bottom), Num(plot_right));
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"middle\">latency (ms): bar = P50, "
      "whisker to P90</text>\n",
      Num((plot_left + plot_right) / 2), Num(plot_bottom + 40), Num(kLabelFont));

  for (size_t c = 0; c < plot.categories.size(); ++c) {
    const double band_top = plot_top + band_height * static_cast<double>(c);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\" text-anchor=\"end\">{}</text>\n",
                       Num(plot_left - 10), Num(Baseline(band_top + band_height / 2, kLabelFont)),
                       Num(kLabelFont), XmlEscape(plot.categories[c]));
    for (size_t s = 0; s < plot.series.size(); ++s) {
      const double y = band_top + kBandPadding + static_cast<double>(s) * (kBarHeight + kBarGap);
      const double mid = y + kBarHeight / 2;
      const PlotCell cell =
          c < plot.cells.size() && s < plot.cells[c].size() ? plot.cells[c][s] : PlotCell{};
      if (!cell.present) {
        svg += fmt::format(
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"#777777\">no result</text>\n",
            Num(plot_left + 4), Num(Baseline(mid, kValueFont)), Num(kValueFont));
        continue;
      }
      const double x50 = x_of(cell.p50_ms);
      const double x90 = x_of(std::max(cell.p90_ms, cell.p50_ms));
      svg += fmt::format(
          "<g><title>{}: {} P50 {} ms, P90 {} ms</title>"
          "<rect class=\"p50\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
          XmlEscape(plot.series[s]), XmlEscape(plot.categories[c]), FormatMsShort(cell.p50_ms),
          FormatMsShort(cell.p90_ms), Num(plot_left), Num(y), Num(std::max(x50 - plot_left, 1.0)),
          Num(kBarHeight), kPalette[s % kPaletteSize]);
      svg += fmt::format(
          "<line class=\"p90\" x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"#222222\" "
          "stroke-width=\"1.5\"/>"
          "<line x1=\"{1}\" y1=\"{3}\" x2=\"{1}\" y2=\"{4}\" stroke=\"#222222\" "
          "stroke-width=\"1.5\"/>\n",
          Num(x50), Num(x90), Num(mid), Num(mid - kBarHeight * 0.35), Num(mid + kBarHeight * 0.35));
      svg +=
          fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"{}\">{}</text></g>\n", Num(x90 + 5),
                      Num(Baseline(mid, kValueFont)), Num(kValueFont), FormatMsShort(cell.p50_ms));
    }
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace bertopt::perf
