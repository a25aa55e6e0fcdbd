#pragma once
// POSIX file helpers for model I/O: errno-aware messages and a temporary-file-then-rename writer,
// so a crash or a full disk never leaves a half-written model where a good one is expected.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bertopt/ir/tensor.h"
#include "bertopt/status.h"

namespace bertopt::io {

/// The message for `errno_value`, e.g. "No space left on device".
std::string ErrnoText(int errno_value);

/// A regular file opened for reading; closes itself. The loader's three readers (model, external
/// data, protected input) share it so they agree on what counts as a readable file.
class InputFile {
 public:
  /// Opens `path`. Errors start with `subject` ("model.onnx", or "model.onnx: external data file
  /// 'w.bin' for tensor 'emb'"): missing is kNotFound, a folder or other non-regular file kIoError.
  static StatusOr<InputFile> Open(const std::filesystem::path& path, const std::string& subject);
  InputFile(InputFile&& other) noexcept : fd_(other.fd_), size_(other.size_) { other.fd_ = -1; }
  InputFile& operator=(InputFile&&) = delete;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  int fd() const { return fd_; }
  int64_t size() const { return size_; }

 private:
  InputFile(int fd, int64_t size) : fd_(fd), size_(size) {}
  int fd_;
  int64_t size_;
};

/// A regular file mapped read-only, its bytes readable through tensors marked with its region
/// (ir::MarkMapped). The file stays open too, so ranges can be copied file to file. Nothing is
/// read when mapping: pages come in as they are touched, from the page cache when the file is
/// there. The file must not be truncated while mapped (reads past its new end fault).
class MappedFile {
 public:
  /// Opens and maps `path`; errors as InputFile::Open, plus kIoError when mmap fails.
  static StatusOr<std::unique_ptr<MappedFile>> Open(const std::filesystem::path& path,
                                                    const std::string& subject);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::string_view bytes() const { return region_->bytes(); }
  const ir::MappedRegion& region() const { return *region_; }

 private:
  MappedFile(InputFile file, void* data) : file_(std::move(file)), data_(data) {}
  InputFile file_;
  void* data_;  // nullptr for an empty file
  std::unique_ptr<ir::MappedRegion> region_;
};

/// A file being written under a temporary name beside `target`; `Publish` renames it into place.
/// Destroying it before `Publish` removes the temporary, so early returns clean up by themselves.
class AtomicFile {
 public:
  /// Checks that the target folder exists and `target` is not a folder, then creates the
  /// temporary file there (same folder, so the final rename cannot cross file systems).
  static StatusOr<std::unique_ptr<AtomicFile>> Create(const std::filesystem::path& target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_; }
  const std::filesystem::path& target() const { return target_; }
  /// Bytes written through Write/WriteZeros so far.
  size_t size() const { return size_; }

  [[nodiscard]] Status Write(std::string_view bytes);
  [[nodiscard]] Status WriteZeros(size_t count);
  /// Appends `payload`: moved file to file in the kernel (splice through a pipe) when it can,
  /// else written from its mapped bytes.
  [[nodiscard]] Status WritePayload(const ir::MappedPayload& payload);
  /// For writes made directly on fd() (e.g. through a protobuf stream): report the failure.
  [[nodiscard]] Status WriteFailed(int errno_value) const;
  /// Flushes to disk and closes; after this only Publish is allowed.
  [[nodiscard]] Status Finish();
  /// Renames the finished temporary over `target`.
  [[nodiscard]] Status Publish();

 private:
  // Starts writing what is in the page cache to disk without waiting, so the disk works while
  // the rest is copied and Finish's fsync has less left to wait for.
  void StartWriteback();
  static constexpr size_t kWritebackChunk = size_t{32} << 20;
  // The pipe WritePayload splices through, made on first use; false when none can be made.
  bool OpenPipe();
  // Moves `count` bytes from the pipe to the end of the file.
  [[nodiscard]] Status DrainPipe(size_t count);
  void ClosePipe();

  AtomicFile(std::filesystem::path target, std::filesystem::path temp, int fd)
      : target_(std::move(target)), temp_(std::move(temp)), fd_(fd) {}

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  size_t size_ = 0;
  bool published_ = false;
  int cleanup_slot_ = -1;  // io/cleanup_on_signal.h: the temporary goes if a signal comes
  size_t unsynced_ = 0;    // bytes spliced since the last StartWriteback
  int pipe_[2] = {-1, -1};
  size_t pipe_bytes_ = 0;
  bool pipe_failed_ = false;
  bool splice_out_failed_ = false;
};

/// Creates `target` through an AtomicFile: `write` fills it, then it is synced and renamed.
[[nodiscard]] Status WriteAtomically(const std::filesystem::path& target,
                                     const std::function<Status(AtomicFile*)>& write);

}  // namespace bertopt::io
