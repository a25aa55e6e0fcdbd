#include "io/cleanup_on_signal.h"

#include <unistd.h>

#include <atomic>
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

Slot g_slots[kSlots];  // NOLINT: read by the signal handler, which can reach nothing else

extern "C" void OnSignal(int signal) {
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

void TestSignalPoint(const char* stage) {
  const char* at = std::getenv("BERTOPT_TEST_SIGNAL_AT");
  if (!at || std::strcmp(at, stage) != 0) return;
  const char* which = std::getenv("BERTOPT_TEST_SIGNAL");
  std::raise(which && std::strcmp(which, "INT") == 0 ? SIGINT : SIGTERM);
}

}  // namespace bertopt::io
