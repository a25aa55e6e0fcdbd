#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <system_error>
#include <vector>

#include "io/cleanup_on_signal.h"

namespace bertopt::io {
namespace fs = std::filesystem;

std::string ErrnoText(int errno_value) { return std::generic_category().message(errno_value); }

namespace {

// Random, so concurrent writers (threads or processes) into one folder rarely collide; O_EXCL
// and the retry in AtomicFile::Create settle the rare case.
std::string TempName(const fs::path& target) {
  std::random_device random;
  return "." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(random());
}

}  // namespace

StatusOr<InputFile> InputFile::Open(const fs::path& path, const std::string& subject) {
  // O_NONBLOCK so that a FIFO fails the regular-file check below instead of blocking open();
  // it changes nothing for reads of regular files.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return NotFound(subject + ": no such file");
    return IoError(subject + ": cannot open (" + ErrnoText(err) + ")");
  }
  InputFile file(fd, 0);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return IoError(subject + ": cannot stat (" + ErrnoText(errno) + ")");
  if (S_ISDIR(st.st_mode)) return IoError(subject + ": is a folder, not a file");
  if (!S_ISREG(st.st_mode)) return IoError(subject + ": is not a regular file");
  file.size_ = st.st_size;
  return file;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const fs::path& path,
                                                       const std::string& subject) {
  ASSIGN_OR_RETURN(InputFile file, InputFile::Open(path, subject));
  const auto size = static_cast<size_t>(file.size());
  void* data = nullptr;
  if (size > 0) {
    data = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, file.fd(), 0);
    if (data == MAP_FAILED) {
      return IoError(subject + ": cannot map the file (" + ErrnoText(errno) + ")");
    }
  }
  const int fd = file.fd();
  auto mapped = std::unique_ptr<MappedFile>(new MappedFile(std::move(file), data));
  mapped->region_ = std::make_unique<ir::MappedRegion>(
      std::string_view(static_cast<const char*>(data), size), fd);
  return mapped;
}

MappedFile::~MappedFile() {
  // Unregistered first, so no marked tensor can reach the bytes once they are unmapped.
  const size_t size = region_ ? region_->bytes().size() : 0;
  region_.reset();
  if (data_ != nullptr) ::munmap(data_, size);
}

StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const fs::path& target) {
  const std::string label = target.string();
  if (target.filename().empty()) return InvalidArgument(label + ": not a file name");
  fs::path folder = target.parent_path();
  if (folder.empty()) folder = ".";

  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return NotFound(label + ": output folder '" + folder.string() + "' does not exist");
    }
    return IoError(label + ": cannot access output folder '" + folder.string() + "' (" +
                   ErrnoText(err) + ")");
  }
  if (!S_ISDIR(st.st_mode)) {
    return IoError(label + ": '" + folder.string() + "' is not a folder");
  }
  if (::stat(target.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return IoError(label + ": is a folder, cannot write a file there");
  }

  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path temp = folder / TempName(target);
    // Registered before it exists, so a signal between the two cannot leave it behind.
    const int slot = RememberForCleanup(temp);
    // 0666 so the final file gets the usual umask-derived permissions, like any new file.
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      auto file = std::unique_ptr<AtomicFile>(new AtomicFile(target, std::move(temp), fd));
      file->cleanup_slot_ = slot;
      return file;
    }
    const int err = errno;
    ForgetCleanup(slot);
    errno = err;
    if (errno != EEXIST) {
      return IoError(label + ": cannot create a temporary file in '" + folder.string() + "' (" +
                     ErrnoText(errno) + ")");
    }
  }
  return IoError(label + ": cannot find a free temporary file name in '" + folder.string() + "'");
}

AtomicFile::~AtomicFile() {
  ClosePipe();
  if (fd_ >= 0) ::close(fd_);
  if (!published_) ::unlink(temp_.c_str());
  ForgetCleanup(cleanup_slot_);
}

Status AtomicFile::WriteFailed(int errno_value) const {
  return IoError(target_.string() + ": write failed (" + ErrnoText(errno_value) + ")");
}

Status AtomicFile::Write(std::string_view bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return WriteFailed(errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  size_ += bytes.size();
  return Status::Ok();
}

Status AtomicFile::WriteZeros(size_t count) {
  static constexpr size_t kChunk = size_t{64} * 1024;
  const std::vector<char> zeros(std::min(count, kChunk), 0);
  while (count > 0) {
    size_t n = std::min(count, zeros.size());
    RETURN_IF_ERROR(Write(std::string_view(zeros.data(), n)));
    count -= n;
  }
  return Status::Ok();
}

void AtomicFile::StartWriteback() {
#ifdef SYNC_FILE_RANGE_WRITE
  // Advice: an error here is the page cache's, and fsync in Finish reports it.
  ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
}

bool AtomicFile::OpenPipe() {
  if (pipe_[0] >= 0) return true;
  if (pipe_failed_ || ::pipe2(pipe_, O_CLOEXEC) != 0) {
    pipe_failed_ = true;
    return false;
  }
  // 1 MiB, the most an unprivileged process may ask for, instead of the default 64 KiB: the
  // kernel writes a pipe's content to the file in one go, and where the payload's place in the
  // output is not at the same offset within a page as in the input (most of them, once a pass
  // changed the graph) every write starts and ends inside a page. Through 64 KiB that made
  // copying BERT-base 40-60 % slower than copying the same bytes aligned (copy_file_range, which
  // uses such a pipe inside the kernel, or cp).
  constexpr int kPipeBytes = 1 << 20;
  int size = ::fcntl(pipe_[1], F_SETPIPE_SZ, kPipeBytes);
  if (size <= 0) size = ::fcntl(pipe_[1], F_GETPIPE_SZ);
  pipe_bytes_ = size > 0 ? static_cast<size_t>(size) : size_t{64} << 10;
  return true;
}

void AtomicFile::ClosePipe() {
  for (int& fd : pipe_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

Status AtomicFile::DrainPipe(size_t count) {
  while (count > 0 && !splice_out_failed_) {
    ssize_t n = ::splice(pipe_[0], nullptr, fd_, nullptr, count, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EINVAL) return WriteFailed(errno);
    // A file system that takes no splice: the rest goes through memory.
    if (n <= 0) {
      splice_out_failed_ = true;
      break;
    }
    count -= static_cast<size_t>(n);
    size_ += static_cast<size_t>(n);
  }
  std::vector<char> buffer(std::min(count, size_t{64} << 10));
  while (count > 0) {
    ssize_t n = ::read(pipe_[0], buffer.data(), std::min(count, buffer.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return WriteFailed(n < 0 ? errno : EIO);
    RETURN_IF_ERROR(Write(std::string_view(buffer.data(), static_cast<size_t>(n))));
    count -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status AtomicFile::WritePayload(const ir::MappedPayload& payload) {
  loff_t from = payload.offset;
  size_t left = payload.bytes.size();
  while (left > 0 && payload.fd >= 0 && OpenPipe()) {
    ssize_t n = ::splice(payload.fd, &from, pipe_[1], nullptr, std::min(left, pipe_bytes_), 0);
    if (n < 0 && errno == EINTR) continue;
    // The input's file system takes no splice: write from the mapping instead.
    if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EBADF)) {
      break;
    }
    if (n < 0) {
      return IoError(target_.string() + ": reading the input failed (" + ErrnoText(errno) + ")");
    }
    // Reading its mapping now would fault: say what happened instead.
    if (n == 0) return IoError(target_.string() + ": the input file shrank while being copied");
    RETURN_IF_ERROR(DrainPipe(static_cast<size_t>(n)));
    left -= static_cast<size_t>(n);
    unsynced_ += static_cast<size_t>(n);
    if (unsynced_ >= kWritebackChunk) {
      StartWriteback();
      unsynced_ = 0;
    }
  }
  return Write(payload.bytes.substr(payload.bytes.size() - left));
}

Status AtomicFile::Finish() {
  ClosePipe();
  // fsync before rename: otherwise a crash can leave the new name pointing at an empty file.
  if (::fsync(fd_) != 0) {
    return IoError(target_.string() + ": fsync failed (" + ErrnoText(errno) + ")");
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    return IoError(target_.string() + ": close failed (" + ErrnoText(errno) + ")");
  }
  return Status::Ok();
}

Status AtomicFile::Publish() {
  if (fd_ >= 0) return InternalError(target_.string() + ": Publish before Finish");
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    return IoError(target_.string() + ": cannot rename the temporary file into place (" +
                   ErrnoText(errno) + ")");
  }
  published_ = true;
  ForgetCleanup(cleanup_slot_);
  cleanup_slot_ = -1;
  // Make the rename itself durable. Best effort: the file is already in place and complete, so
  // failing here would report an error while leaving the output behind.
  fs::path folder = target_.parent_path();
  if (folder.empty()) folder = ".";
  int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
}

Status WriteAtomically(const fs::path& target, const std::function<Status(AtomicFile*)>& write) {
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(target));
  RETURN_IF_ERROR(write(file.get()));
  TestSignalPoint("write");
  RETURN_IF_ERROR(file->Finish());
  return file->Publish();
}

}  // namespace bertopt::io
