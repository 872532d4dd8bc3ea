#include "io/spill.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"

namespace shardrec::io {

SpillBytes::SpillBytes(const std::string& dir) : dir_(dir) {
  if (dir.empty()) return;
  std::string name = dir + "/.shardrec-spill-XXXXXX";
  fd_ = ::mkstemp(name.data());
  if (fd_ < 0) fail("prep: cannot create a spill file in " + dir + " (--tmp-dir): " + std::strerror(errno));
  ::unlink(name.c_str());  // gone from the directory now; the space goes back when fd_ closes
}

SpillBytes::~SpillBytes() {
  if (fd_ >= 0) ::close(fd_);
}

SpillBytes::SpillBytes(SpillBytes&& o) noexcept
    : dir_(std::move(o.dir_)), fd_(o.fd_), released_(o.released_), blocks_(std::move(o.blocks_)) {
  o.fd_ = -1;
}

SpillBytes& SpillBytes::operator=(SpillBytes&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    dir_ = std::move(o.dir_);
    fd_ = o.fd_;
    released_ = o.released_;
    blocks_ = std::move(o.blocks_);
    o.fd_ = -1;
  }
  return *this;
}

void SpillBytes::write(uint64_t at, const void* p, size_t n) {
  const char* src = static_cast<const char*>(p);
  if (fd_ >= 0) {
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, src, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(at));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("prep: cannot write the spill file in " + dir_ + " (--tmp-dir): " + std::strerror(w < 0 ? errno : ENOSPC));
      src += w;
      at += static_cast<uint64_t>(w);
      n -= static_cast<size_t>(w);
    }
    return;
  }
  while (n > 0) {
    const size_t b = static_cast<size_t>(at / kBlock), off = static_cast<size_t>(at % kBlock);
    if (b >= blocks_.size()) blocks_.resize(b + 1);
    if (!blocks_[b]) blocks_[b].reset(new char[kBlock]);  // not zeroed: resident as written
    const size_t m = std::min(n, kBlock - off);
    std::memcpy(blocks_[b].get() + off, src, m);
    src += m;
    at += m;
    n -= m;
  }
}

void SpillBytes::read(uint64_t at, size_t n, void* out) const {
  char* dst = static_cast<char*>(out);
  if (fd_ >= 0) {
    while (n > 0) {
      const ssize_t r = ::pread(fd_, dst, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(at));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail("prep: cannot read the spill file in " + dir_ + ": " + (r < 0 ? std::strerror(errno) : "it is shorter than written"));
      dst += r;
      at += static_cast<uint64_t>(r);
      n -= static_cast<size_t>(r);
    }
    return;
  }
  while (n > 0) {
    const size_t b = static_cast<size_t>(at / kBlock), off = static_cast<size_t>(at % kBlock);
    SHARDREC_CHECK(b < blocks_.size() && blocks_[b], "prep: a spill read before its write");
    const size_t m = std::min(n, kBlock - off);
    std::memcpy(dst, blocks_[b].get() + off, m);
    dst += m;
    at += m;
    n -= m;
  }
}

void SpillBytes::release_before(uint64_t at) {
  if (fd_ >= 0) {
    // The file's space goes back to the disk as it is read (a hole keeps the offsets); a file
    // system without holes keeps it until the store closes.
    const uint64_t end = at / kBlock * kBlock;
    if (end > released_) {
      ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(released_),
                  static_cast<off_t>(end - released_));
      released_ = end;
    }
    return;
  }
  const size_t end = std::min(blocks_.size(), static_cast<size_t>(at / kBlock));
  for (size_t b = 0; b < end; ++b) blocks_[b].reset();
}

uint64_t SpillBytes::held_bytes() const {
  if (fd_ >= 0) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return 0;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  uint64_t n = 0;
  for (const auto& b : blocks_) n += b ? kBlock : 0;
  return n;
}

}  // namespace shardrec::io
