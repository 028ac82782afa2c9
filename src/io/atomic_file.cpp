#include "advft/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "advft/error.h"

namespace advft::io {
namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

[[noreturn]] void throw_write_error(const std::string& path, const std::string& step, int err) {
  throw Error("cannot write " + path + ": " + step + ": " + errno_text(err), kExitRunDir);
}

// Closes a descriptor on every path out of a function, so error branches cannot leak it.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  /// Closes now and reports close()'s error, which on NFS is where a failed write shows up.
  int close_checked() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  if (slash == 0) {
    return "/";
  }
  return path.substr(0, slash);
}

// Writes all bytes, resuming after short writes and EINTR. Returns 0 or the errno.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const size_t chunk = std::min<size_t>(size, size_t{1} << 30);
    const ssize_t n = ::write(fd, data, chunk);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

constexpr const char* kTemporaryInfix = ".tmp.";

// A name beside `path` for writing before the rename; pid + counter keeps concurrent writers
// (threads, or ranks sharing a file system) apart. temporary_file_writer reads it back.
std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  return path + kTemporaryInfix + std::to_string(::getpid()) + "." +
         std::to_string(counter.fetch_add(1));
}

// The number of leading decimal digits of `text` from `pos`.
size_t digits_at(const std::string& text, size_t pos) {
  size_t end = pos;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9')
    ++end;
  return end - pos;
}

// Without this a rename may be lost on power failure.
void fsync_parent_dir(const std::string& path) {
  FdGuard dir(::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  // Some file systems cannot open or fsync a directory (EINVAL); the data is written either way.
  if (dir.get() >= 0 && ::fsync(dir.get()) != 0 && errno != EINVAL) {
    throw_write_error(path, "fsync of its directory", errno);
  }
}

}  // namespace

long temporary_file_writer(const std::string& path, const std::string& candidate) {
  const std::string prefix = path + kTemporaryInfix;
  if (candidate.compare(0, prefix.size(), prefix) != 0) return 0;
  const size_t pid_digits = digits_at(candidate, prefix.size());
  const size_t dot = prefix.size() + pid_digits;
  // <pid>.<n> and nothing after: pids fit in 7 digits on Linux.
  if (pid_digits == 0 || pid_digits > 9 || dot >= candidate.size() || candidate[dot] != '.')
    return 0;
  const size_t counter_digits = digits_at(candidate, dot + 1);
  if (counter_digits == 0 || dot + 1 + counter_digits != candidate.size()) return 0;
  return std::stol(candidate.substr(prefix.size(), pid_digits));
}

void check_file_writable(const std::string& path, const std::string& option) {
  const std::string what = option + " " + path + ": ";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error(what + "is a folder; name a file", kExitRunDir);
  }
  // Creating the temporary file write_file_atomic will create answers for everything at once:
  // a missing folder, permissions, a read-only or full file system.
  const std::string tmp = temporary_name(path);
  FdGuard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    throw Error(what + "cannot create a file in " + parent_dir(path) + ": " + errno_text(errno) +
                    "; name a file in a folder that exists and can be written",
                kExitRunDir);
  }
  ::unlink(tmp.c_str());
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = temporary_name(path);

  FdGuard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    throw_write_error(path, "cannot create temporary file " + tmp, errno);
  }
  int err = write_all(fd.get(), bytes.data(), bytes.size());
  std::string step = "write";
  if (err == 0 && ::fsync(fd.get()) != 0) {
    err = errno;
    step = "fsync";
  }
  if (err == 0 && fd.close_checked() != 0) {
    err = errno;
    step = "close";
  }
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    step = "rename";
  }
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw_write_error(path, step, err);
  }
  fsync_parent_dir(path);
}

void link_file_atomic(const std::string& from, const std::string& to) {
  const std::string tmp = temporary_name(to);
  if (::link(from.c_str(), tmp.c_str()) != 0) {
    if (errno == ENOENT) throw_write_error(to, "no " + from + " to link", errno);
    write_file_atomic(to, read_file_bytes(from));  // no hard links here (EPERM, EXDEV, ...)
    return;
  }
  if (::rename(tmp.c_str(), to.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_write_error(to, "rename", err);
  }
  fsync_parent_dir(to);
}

std::string read_file_bytes(const std::string& path) {
  FdGuard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw Error("cannot read " + path + ": " + errno_text(errno), kExitRunDir);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw Error("cannot read " + path + ": " + errno_text(errno), kExitRunDir);
  }
  if (S_ISDIR(st.st_mode)) {
    throw Error("cannot read " + path + ": " + errno_text(EISDIR), kExitRunDir);
  }
  std::string out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    out.reserve(static_cast<size_t>(st.st_size));
  }
  // Read to EOF rather than trusting st_size: the file may be growing, or a pipe.
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw Error("cannot read " + path + ": " + errno_text(errno), kExitRunDir);
    }
    if (n == 0) {
      break;
    }
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

std::string read_checkpoint_bytes(const std::string& path) {
  std::error_code ec;
  // Only a definite "not there" gets this message; permission errors come from the read.
  if (!std::filesystem::exists(path, ec) && !ec) throw CheckpointError(path + ": no such file");
  try {
    std::string bytes = read_file_bytes(path);
    // Said as it is: every reader would otherwise name the format it expected instead.
    if (bytes.empty())
      throw CheckpointError(path +
                            ": the file is empty (0 bytes): an interrupted copy or download?");
    return bytes;
  } catch (const CheckpointError&) {
    throw;
  } catch (const Error& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace advft::io
