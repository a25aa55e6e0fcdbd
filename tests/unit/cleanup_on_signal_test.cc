// io/cleanup_on_signal.h where timing decides: a signal sent to the process lands in whichever
// thread does not block it, and ORT keeps a thread of its own running from its first CreateEnv.
// The cleanup must still run on the main thread, and wait there while DeferSignals holds it.
// Each case runs in a death-test child, which the signal ends.
#include "io/cleanup_on_signal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace bertopt::io {
namespace {

namespace fs = std::filesystem;
using std::chrono_literals::operator""ms;

// Registers `file` (created first), then inside DeferSignals sends `signal` the way `kill`
// does, or raises it in this thread; writes "deferred" once the file has outlived the signal
// by 300 ms. Leaving DeferSignals must then remove the file and exit 128 + signal.
void SignalWhileDeferred(const fs::path& file, int signal, bool to_process) {
  InstallCleanupOnSignal();
  std::ofstream(file) << "partial";
  RememberForCleanup(file);
  // Blocks nothing, like ORT's thread: with the main thread holding the signal back, the kernel
  // gives a process-directed one to this thread.
  std::atomic<bool> stop{false};
  std::thread other([&] {
    while (!stop.load()) std::this_thread::sleep_for(1ms);
  });
  {
    DeferSignals defer;
    if (to_process) {
      ::kill(::getpid(), signal);
    } else {
      std::raise(signal);
    }
    std::this_thread::sleep_for(300ms);
    std::fputs(fs::exists(file) ? "deferred\n" : "cleaned up too early\n", stderr);
  }
  stop.store(true);
  other.join();
  std::fputs("the signal was lost\n", stderr);
  std::_Exit(0);
}

// Without DeferSignals: a signal landing in the other thread (the main thread is busy in a
// blocking call, so either may take it) still cleans up and exits.
void SignalToProcess(const fs::path& file, int signal) {
  InstallCleanupOnSignal();
  std::ofstream(file) << "partial";
  RememberForCleanup(file);
  std::thread other([] {
    while (true) std::this_thread::sleep_for(1ms);
  });
  other.detach();
  ::kill(::getpid(), signal);
  std::this_thread::sleep_for(2000ms);
  std::fputs("the signal was lost\n", stderr);
  std::_Exit(0);
}

class CleanupOnSignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ =
        fs::temp_directory_path() / ("bertopt-cleanup-test-" + std::to_string(::getpid()) + ".tmp");
  }
  void TearDown() override { fs::remove(file_); }
  fs::path file_;
};

TEST_F(CleanupOnSignalTest, ASignalToTheProcessWaitsForDeferSignalsThenCleansUp) {
  for (const auto& [signal, code] : {std::pair{SIGINT, 130}, std::pair{SIGTERM, 143}}) {
    EXPECT_EXIT(SignalWhileDeferred(file_, signal, /*to_process=*/true),
                ::testing::ExitedWithCode(code), "deferred");
    EXPECT_FALSE(fs::exists(file_)) << signal;
  }
}

TEST_F(CleanupOnSignalTest, ASignalRaisedInTheMainThreadWaitsForDeferSignalsThenCleansUp) {
  for (const auto& [signal, code] : {std::pair{SIGINT, 130}, std::pair{SIGTERM, 143}}) {
    EXPECT_EXIT(SignalWhileDeferred(file_, signal, /*to_process=*/false),
                ::testing::ExitedWithCode(code), "deferred");
    EXPECT_FALSE(fs::exists(file_)) << signal;
  }
}

TEST_F(CleanupOnSignalTest, ASignalToTheProcessCleansUpWhicheverThreadTakesIt) {
  for (const auto& [signal, code] : {std::pair{SIGINT, 130}, std::pair{SIGTERM, 143}}) {
    EXPECT_EXIT(SignalToProcess(file_, signal), ::testing::ExitedWithCode(code), "");
    EXPECT_FALSE(fs::exists(file_)) << signal;
  }
}

}  // namespace
}  // namespace bertopt::io
