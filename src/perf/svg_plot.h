#pragma once
// A hand-written SVG chart for `bertopt perf --plot`: one horizontal bar per (setting, model) whose
// length is the P50 latency, with a whisker out to P90, grouped by setting. Horizontal bars because
// setting labels ("B32 S512 T16") read better on the left than slanted under columns, and a group
// keeps the models that ran interleaved side by side. No plotting library: the output is small, the
// layout is fixed, and the file must open in any browser.

#include <string>
#include <string_view>
#include <vector>

namespace bertopt::perf {

struct PlotCell {
  bool present = false;  ///< false where a model has no result for a setting
  double p50_ms = 0;
  double p90_ms = 0;
};

struct LatencyPlot {
  std::string title;
  std::string subtitle;
  std::vector<std::string> series;           ///< legend entries (models), in drawing order
  std::vector<std::string> categories;       ///< group labels (settings), top to bottom
  std::vector<std::vector<PlotCell>> cells;  ///< [category][series]
};

/// Axis ticks from 0 to at least `max_value` at a 1, 2, 2.5 or 5 times a power of ten step, about
/// `target_count` of them; {0, 1} when max_value is not positive.
std::vector<double> NiceTicks(double max_value, int target_count = 5);

/// A latency in ms with three significant digits or more ("0.00123", "0.123", "1.23", "12.3",
/// "123").
std::string FormatMsShort(double ms);

/// Escapes the five XML special characters for text and attribute values.
std::string XmlEscape(std::string_view text);

/// The whole SVG document.
std::string RenderLatencyPlotSvg(const LatencyPlot& plot);

}  // namespace bertopt::perf
