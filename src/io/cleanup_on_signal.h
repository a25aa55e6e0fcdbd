#pragma once
// SIGINT / SIGTERM must leave no partial or temporary file behind (a 1.3 GB `.tmp-` file beside
// the output of an interrupted BERT-large optimize). Files and folders that exist only while an
// operation runs are registered here; the handler removes them and exits 130 (SIGINT) or 143
// (SIGTERM). This is process-wide state by necessity (a signal handler has no other way to know),
// kept in fixed-size storage so the handler only calls async-signal-safe functions (unlink, rmdir,
// _exit).

#include <signal.h>

#include <filesystem>

namespace bertopt::io {

/// Installs the SIGINT / SIGTERM handlers (once; the CLI calls it at start, from the main
/// thread). The cleanup always runs on the thread that installed them: a signal that lands in
/// another thread is passed on to it.
void InstallCleanupOnSignal();

/// Registers `path` (a file, or an empty-at-the-end folder: removed after the files) for removal
/// if a signal arrives; returns a slot to pass to Forget, or -1 when the table is full (then the
/// path is not protected, which is only a missed cleanup).
int RememberForCleanup(const std::filesystem::path& path, bool is_folder = false);
/// The path no longer needs removing (renamed into place, or removed normally).
void ForgetCleanup(int slot);

/// Holds SIGINT / SIGTERM back while it lives, on the thread that installed the handlers (where
/// the cleanup runs: a signal landing in another thread is passed on to it, and waits there); one
/// that arrives meanwhile is handled (cleanup, exit) when it ends. For steps that must not be cut
/// in two: moving a model's external data file into place and then the model, where a signal in
/// between would leave the data without its model.
class DeferSignals {
 public:
  DeferSignals();
  ~DeferSignals();
  DeferSignals(const DeferSignals&) = delete;
  DeferSignals& operator=(const DeferSignals&) = delete;

 private:
  sigset_t previous_{};
};

/// For tests: raises `signal` (SIGINT or SIGTERM) when the environment variable
/// BERTOPT_TEST_SIGNAL_AT equals `stage` ("load", "passes", "write", "verify"; with external data
/// also "publish", between renaming the data file and the model into place, and "move", the same
/// out of --verify's staging folder), so interrupting each stage can be tested without timing.
void TestSignalPoint(const char* stage);

}  // namespace bertopt::io
