#include "io/cleanup_on_signal.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

namespace bertopt::io {
namespace {

constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;

struct Slot {
  std::atomic<bool> used{false};
  bool is_folder = false;
  char path[kPathBytes] = {};
};

Slot g_slots[kSlots];     // NOLINT: read by the signal handler, which can reach nothing else
pthread_t g_main_thread;  // NOLINT: the thread that installed the handlers
std::atomic<bool> g_main_known{false};  // NOLINT

extern "C" void OnSignal(int signal) {
  // Only the main thread cleans up. There the handler interrupts the very code it could race
  // with (a temporary being created, files being moved into place), and DeferSignals can hold it
  // back. A signal sent to the process goes to any thread that does not block it, and ORT starts
  // threads of its own (one from CreateEnv lives as long as the process): pass it on to the main
  // thread, where it waits if DeferSignals holds it.
  if (g_main_known.load() && ::pthread_equal(::pthread_self(), g_main_thread) == 0) {
    const int saved_errno = errno;
    ::pthread_kill(g_main_thread, signal);
    errno = saved_errno;
    return;
  }
  // Files first, then folders (which are only removable once empty).
  for (int pass = 0; pass < 2; ++pass) {
    for (Slot& slot : g_slots) {
      if (!slot.used.load() || slot.is_folder != (pass == 1)) continue;
      if (slot.is_folder) {
        ::rmdir(slot.path);
      } else {
        ::unlink(slot.path);
      }
    }
  }
  ::_exit(128 + signal);
}

}  // namespace

void InstallCleanupOnSignal() {
  static const bool installed = [] {
    g_main_thread = ::pthread_self();
    g_main_known.store(true);
    struct sigaction action {};
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT);
    sigaddset(&action.sa_mask, SIGTERM);
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
    return true;
  }();
  (void)installed;
}

int RememberForCleanup(const std::filesystem::path& path, bool is_folder) {
  const std::string text = std::filesystem::absolute(path).string();
  if (text.size() >= kPathBytes) return -1;
  for (int i = 0; i < kSlots; ++i) {
    Slot& slot = g_slots[i];
    if (slot.used.load()) continue;
    std::memcpy(slot.path, text.c_str(), text.size() + 1);
    slot.is_folder = is_folder;
    slot.used.store(true);  // published last: the handler never sees a half-written path
    return i;
  }
  return -1;
}

void ForgetCleanup(int slot) {
  if (slot >= 0 && slot < kSlots) g_slots[slot].used.store(false);
}

DeferSignals::DeferSignals() {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &block, &previous_);
}

DeferSignals::~DeferSignals() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

void TestSignalPoint(const char* stage) {
  const char* at = std::getenv("BERTOPT_TEST_SIGNAL_AT");
  if (!at || std::strcmp(at, stage) != 0) return;
  const char* which = std::getenv("BERTOPT_TEST_SIGNAL");
  std::raise(which && std::strcmp(which, "INT") == 0 ? SIGINT : SIGTERM);
}

}  // namespace bertopt::io
