#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "perf/report.h"
#include "perf/svg_plot.h"

namespace bertopt::perf {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Every match of `pattern`'s first group in `text`, as numbers.
std::vector<double> Captures(const std::string& text, const std::string& pattern) {
  std::vector<double> values;
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    values.push_back(std::stod((*it)[1].str()));
  }
  return values;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(SvgPlotTest, NiceTicksUseRoundStepsAndCoverTheMaximum) {
  EXPECT_THAT(NiceTicks(58, 6), ElementsAre(0, 10, 20, 30, 40, 50, 60));
  EXPECT_THAT(NiceTicks(0.75, 5), ElementsAre(0, DoubleNear(0.2, 1e-12), DoubleNear(0.4, 1e-12),
                                              DoubleNear(0.6, 1e-12), DoubleNear(0.8, 1e-12)));
  EXPECT_THAT(NiceTicks(9, 4), ElementsAre(0, 2.5, 5, 7.5, 10));
  EXPECT_THAT(NiceTicks(100, 5), ElementsAre(0, 20, 40, 60, 80, 100));
  EXPECT_THAT(NiceTicks(0, 5), ElementsAre(0, 1));
  EXPECT_THAT(NiceTicks(-3, 5), ElementsAre(0, 1));
}

TEST(SvgPlotTest, ShortMillisecondsKeepThreeSignificantDigits) {
  EXPECT_EQ(FormatMsShort(0.001234), "0.00123");
  EXPECT_EQ(FormatMsShort(0.01234), "0.0123");
  EXPECT_EQ(FormatMsShort(0.5), "0.5");
  EXPECT_EQ(FormatMsShort(1.2345), "1.23");
  EXPECT_EQ(FormatMsShort(12.345), "12.3");
  EXPECT_EQ(FormatMsShort(123.45), "123");
}

TEST(SvgPlotTest, EscapesXmlSpecialCharacters) {
  EXPECT_EQ(XmlEscape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
}

LatencyPlot TwoByTwo() {
  LatencyPlot plot;
  plot.title = "t";
  plot.series = {"base.onnx", "opt<1>.onnx"};
  plot.categories = {"B1 S128 T1", "B1 S128 T2"};
  plot.cells = {{{true, 4.0, 5.0}, {true, 2.0, 2.5}}, {{true, 8.0, 9.0}, {false, 0, 0}}};
  return plot;
}

TEST(SvgPlotTest, DrawsOneBarPerResultWithLengthProportionalToP50) {
  const std::string svg = RenderLatencyPlotSvg(TwoByTwo());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
  const std::vector<double> widths = Captures(svg,
                                              "class=\"p50\" x=\"[0-9.]+\" y=\"[0-9.]+\" "
                                              "width=\"([0-9.]+)\"");
  ASSERT_EQ(widths.size(), 3u);                   // the missing result draws no bar
  EXPECT_NEAR(widths[0] / widths[1], 2.0, 0.01);  // 4 ms against 2 ms
  EXPECT_NEAR(widths[2] / widths[0], 2.0, 0.01);  // 8 ms against 4 ms
  EXPECT_EQ(Count(svg, "class=\"p90\""), 3u);
  EXPECT_THAT(svg, HasSubstr("no result"));
}

TEST(SvgPlotTest, WhiskersRunFromP50ToP90) {
  const std::string svg = RenderLatencyPlotSvg(TwoByTwo());
  const std::vector<double> bar_ends =
      Captures(svg, "class=\"p50\" x=\"[0-9.]+\" y=\"[0-9.]+\" width=\"([0-9.]+)\"");
  const std::vector<double> bar_x = Captures(svg, "class=\"p50\" x=\"([0-9.]+)\"");
  const std::vector<double> whisker_x1 = Captures(svg, "class=\"p90\" x1=\"([0-9.]+)\"");
  const std::vector<double> whisker_x2 =
      Captures(svg, "class=\"p90\" x1=\"[0-9.]+\" y1=\"[0-9.]+\" x2=\"([0-9.]+)\"");
  ASSERT_EQ(whisker_x1.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(whisker_x1[i], bar_x[i] + bar_ends[i], 0.11);  // starts where the bar ends
    // P90/P50 is 1.25 for the first two and 1.125 for the third.
    const double expected = i < 2 ? 1.25 : 1.125;
    EXPECT_NEAR((whisker_x2[i] - bar_x[i]) / bar_ends[i], expected, 0.01);
  }
}

TEST(SvgPlotTest, HasLegendSettingLabelsAndAnAxisInMs) {
  const std::string svg = RenderLatencyPlotSvg(TwoByTwo());
  EXPECT_THAT(svg, HasSubstr(">base.onnx</text>"));
  EXPECT_THAT(svg, HasSubstr(">opt&lt;1&gt;.onnx</text>"));  // escaped, so the file stays XML
  EXPECT_THAT(svg, HasSubstr(">B1 S128 T1</text>"));
  EXPECT_THAT(svg, HasSubstr(">B1 S128 T2</text>"));
  EXPECT_THAT(svg, HasSubstr("latency (ms)"));
  // 9 ms maximum at about five ticks: 0, 2, 4, 6, 8, 10.
  for (const char* tick : {">0</text>", ">2</text>", ">10</text>"}) {
    EXPECT_THAT(svg, HasSubstr(tick));
  }
}

TEST(SvgPlotTest, BuildsGroupsPerSettingAndBarsPerModelFromTheReport) {
  PerfReport report;
  report.info.models = {"a/base.onnx", "b/opt.onnx"};
  auto row = [](int model, int64_t batch, double p50) {
    PerfRow r;
    r.setting = {model, model == 0 ? "a/base.onnx" : "b/opt.onnx", batch, 128, 1};
    r.latency.p50_ms = p50;
    r.latency.p90_ms = p50 * 2;
    return r;
  };
  report.rows = {row(1, 8, 3), row(0, 1, 2), row(0, 8, 6), row(1, 1, 1)};
  const LatencyPlot plot = BuildLatencyPlot(report);
  EXPECT_THAT(plot.series, ElementsAre("base.onnx", "opt.onnx"));
  EXPECT_THAT(plot.categories, ElementsAre("B1 S128 T1", "B8 S128 T1"));
  ASSERT_EQ(plot.cells.size(), 2u);
  EXPECT_DOUBLE_EQ(plot.cells[0][0].p50_ms, 2);
  EXPECT_DOUBLE_EQ(plot.cells[0][1].p50_ms, 1);
  EXPECT_DOUBLE_EQ(plot.cells[1][0].p90_ms, 12);
  EXPECT_DOUBLE_EQ(plot.cells[1][1].p50_ms, 3);
}

}  // namespace
}  // namespace bertopt::perf
