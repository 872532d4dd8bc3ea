// A record array that lives in memory or in an unnamed temporary file (prep's spill space).
//
// prep keeps every row-sized stage in one of these: with no directory it is memory, allocated in
// blocks as written (no doubling copy, pages resident only once written, blocks already read can
// be released); with a directory it is a file created there and unlinked at once, so that nothing
// is left behind on any exit. Reads and writes take a record offset, so stages that know their
// sizes write several regions of one array (the buckets of a grouping) in any order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shardrec::io {

class SpillBytes {
 public:
  // dir empty: memory.
  explicit SpillBytes(const std::string& dir = "");
  ~SpillBytes();
  SpillBytes(SpillBytes&& o) noexcept;
  SpillBytes& operator=(SpillBytes&& o) noexcept;
  SpillBytes(const SpillBytes&) = delete;
  SpillBytes& operator=(const SpillBytes&) = delete;

  void write(uint64_t at, const void* p, size_t n);
  void read(uint64_t at, size_t n, void* out) const;
  // Frees the 8 MiB blocks wholly before byte `at` (they are not read again): memory, or the
  // file's disk space (a hole punched).
  void release_before(uint64_t at);
  bool on_disk() const { return fd_ >= 0; }
  // What the store holds now: memory blocks allocated, or the file's disk space.
  uint64_t held_bytes() const;

 private:
  static constexpr size_t kBlock = size_t{8} << 20;
  std::string dir_;
  int fd_ = -1;
  uint64_t released_ = 0;  // file: bytes before this are a hole
  std::vector<std::unique_ptr<char[]>> blocks_;
};

template <class T>
class Spill {
 public:
  explicit Spill(const std::string& dir = "") : bytes_(dir) {}
  size_t size() const { return n_; }
  void write(size_t at, const T* p, size_t n) {
    bytes_.write(at * sizeof(T), p, n * sizeof(T));
    if (at + n > n_) n_ = at + n;
  }
  void append(const T* p, size_t n) { write(n_, p, n); }
  void read(size_t at, size_t n, T* out) const { bytes_.read(at * sizeof(T), n * sizeof(T), out); }
  void read(size_t at, size_t n, std::vector<T>& out) const {
    out.resize(n);
    read(at, n, out.data());
  }
  void truncate(size_t n) { n_ = n; }  // later records are dropped (their space is reused)
  void release_before(size_t at) { bytes_.release_before(at * sizeof(T)); }
  bool on_disk() const { return bytes_.on_disk(); }
  uint64_t held_bytes() const { return bytes_.held_bytes(); }

 private:
  SpillBytes bytes_;
  size_t n_ = 0;
};

}  // namespace shardrec::io
