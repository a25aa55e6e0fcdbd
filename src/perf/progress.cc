#include "perf/progress.h"

#include <fmt/format.h>
#include <unistd.h>

namespace bertopt::perf {

PerfProgress PerfProgress::ForStderr() { return PerfProgress(stderr, isatty(fileno(stderr)) != 0); }

PerfProgress::PerfProgress(PerfProgress&& other) noexcept
    : out_(other.out_),
      enabled_(other.enabled_),
      shown_width_(other.shown_width_),
      last_draw_(other.last_draw_) {
  // The moved-from object must not clear a line it no longer owns.
  other.enabled_ = false;
  other.shown_width_ = 0;
}

void PerfProgress::Show(const std::string& text, bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  // Pad with spaces over a longer previous text instead of relying on an ANSI erase sequence, which
  // some consoles print literally.
  const size_t pad = shown_width_ > text.size() ? shown_width_ - text.size() : 0;
  std::fputs(("\r" + text + std::string(pad, ' ')).c_str(), out_);
  std::fflush(out_);
  shown_width_ = text.size();
}

void PerfProgress::ShowRuns(int setting, int settings, const std::string& label, int runs_done,
                            int runs_total) {
  Show(fmt::format("[{}/{}] {}: run {}/{}", setting, settings, label, runs_done, runs_total),
       runs_done == 0 || runs_done == runs_total);
}

void PerfProgress::Clear() {
  if (!enabled_ || shown_width_ == 0) return;
  std::fputs(("\r" + std::string(shown_width_, ' ') + "\r").c_str(), out_);
  std::fflush(out_);
  shown_width_ = 0;
}

}  // namespace bertopt::perf
