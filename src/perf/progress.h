#pragma once
// The live progress line of `bertopt perf` on stderr: "[3/8] B1 S128 T2: run 45/100", rewritten in
// place with '\r'. Only on a terminal: in a log file or a pipe the carriage returns would pile up
// into one unreadable line. Updates are drawn between runs (the scheduler's progress callback), and
// at most every 100 ms, so the terminal costs nothing measurable inside the timed region.

#include <chrono>
#include <cstdio>
#include <string>

namespace bertopt::perf {

class PerfProgress {
 public:
  /// Draws on `out` only when `enabled`; see ForStderr for the usual choice.
  PerfProgress(std::FILE* out, bool enabled) : out_(out), enabled_(enabled) {}
  /// Enabled when stderr is a terminal.
  static PerfProgress ForStderr();

  ~PerfProgress() { Clear(); }
  PerfProgress(const PerfProgress&) = delete;
  PerfProgress& operator=(const PerfProgress&) = delete;
  PerfProgress(PerfProgress&& other) noexcept;
  PerfProgress& operator=(PerfProgress&&) = delete;

  bool enabled() const { return enabled_; }

  /// Shows `text`; throttled to one draw per 100 ms unless `force` (first and last updates).
  void Show(const std::string& text, bool force = false);

  /// "[k/n] label: run d/t", forced at the first and last run of a setting.
  void ShowRuns(int setting, int settings, const std::string& label, int runs_done, int runs_total);

  /// Erases the line, so what follows on stderr starts on a clean line.
  void Clear();

 private:
  std::FILE* out_;
  bool enabled_;
  size_t shown_width_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace bertopt::perf
