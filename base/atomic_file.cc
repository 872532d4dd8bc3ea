#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/error.h"

namespace shardrec {

namespace {
std::string errno_text() { return std::strerror(errno); }

// Writes all of data to fd (write may stop short); false with errno set on failure.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}
}  // namespace

std::string output_target(const std::string& path) {
  if (path.empty()) fail("an output path is empty");
  // /dev/stdout and /dev/fd/N resolve to whatever the descriptor is, a redirected file too:
  // replacing that file would take the output away from the redirection.
  auto special = [](const std::string& p) { return p.rfind("/dev/", 0) == 0 || p.rfind("/proc/", 0) == 0; };
  const char* hint = " (give a file name, or - for standard output where the command prints text)";
  if (special(path)) fail(path + ": a device or process file, not an output file" + hint);
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return path;
    fail(path + ": cannot be written (" + errno_text() + ")");
  }
  std::string target = path;
  if (S_ISLNK(st.st_mode)) {
    if (::stat(path.c_str(), &st) != 0) fail(path + ": a symlink to nothing; refusing to replace it");
    char* real = ::realpath(path.c_str(), nullptr);
    if (!real) fail(path + ": cannot resolve the symlink (" + errno_text() + ")");
    target = real;
    std::free(real);
    if (special(target)) fail(path + ": a device or process file, not an output file" + hint);
  }
  if (S_ISDIR(st.st_mode)) fail(path + ": is a directory; an output must be a file name");
  if (!S_ISREG(st.st_mode))
    fail(path + ": not a regular file (a device, fifo or socket); refusing to replace it with a file" + hint);
  return target;
}

AtomicFile::AtomicFile(const std::string& path) : path_(output_target(path)) {
  std::string tmpl = path_ + ".tmp-XXXXXX";
  fd_ = ::mkstemp(tmpl.data());
  if (fd_ < 0) fail(path + ": cannot create a file next to it (" + errno_text() + ")");
  tmp_ = tmpl;
  ::fchmod(fd_, 0644);  // mkstemp makes 0600; outputs are ordinary files
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(std::string_view data) {
  if (!write_all(fd_, data)) fail(path_ + ": write failed (" + errno_text() + "; disk full?)");
}

void AtomicFile::sync() {
  // fsync works on the file, so it also flushes what another writer (HDF5) put there by name.
  if (::fsync(fd_) != 0) fail(path_ + ": cannot sync to disk (" + errno_text() + "; disk full?)");
}

void AtomicFile::rename_into_place() {
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(path_ + ": cannot move the finished output into place (" + errno_text() + ")");
  done_ = true;
}

void AtomicFile::commit() {
  sync();
  rename_into_place();
}

AtomicFile& AtomicFiles::add(const std::string& path) {
  parts_.push_back(std::make_unique<AtomicFile>(path));
  return *parts_.back();
}

void AtomicFiles::commit() {
  for (auto& p : parts_) p->sync();
  for (auto& p : parts_) p->rename_into_place();
}

void write_file(const std::string& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

void append_file(const std::string& path, std::string_view text) {
  output_target(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail(path + ": cannot be opened for appending (" + errno_text() + ")");
  struct stat st{};
  ::fstat(fd, &st);
  const bool ok = write_all(fd, text) && ::fsync(fd) == 0;
  const std::string why = ok ? "" : errno_text();
  if (!ok && ::ftruncate(fd, st.st_size) != 0) { /* the error below is what matters */ }
  ::close(fd);
  if (!ok) fail(path + ": cannot append (" + why + "; disk full?)");
}

}  // namespace shardrec
