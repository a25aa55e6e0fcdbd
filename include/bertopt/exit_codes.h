#pragma once
// Process exit codes shared by every bertopt command (the CLI in tools/ and perf in src/ort).

namespace bertopt {

inline constexpr int kExitOk = 0;
/// The work ran but its result is a failure: compare mismatch, --verify failure, a failed run.
inline constexpr int kExitFailed = 1;
/// Bad input: flags, missing or unusable files and models.
inline constexpr int kExitBadInput = 2;

}  // namespace bertopt
