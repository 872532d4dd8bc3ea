// Reading a raw log in blocks: the parsers (io/parsers.cc) pull lines or bytes from an Input, so a
// file is never held whole in memory, compressed or not. The bytes come from a Source: a plain
// file, a gzip (.gz) or zstd (.zst) file decompressed as it is read, or text already in memory.
//
// Errors name the file ("<file>: ...").
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

namespace shardrec::io {

// 64-bit FNV-1a, the checksum of input files and the dataset fingerprint (docs/data-format.md):
// simple enough to recompute in a few lines of Python.
struct Fnv64 {
  uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  std::string hex() const;  // 16 lowercase hex digits
};

// The checksum of a stored file (prep_config's "fnv64_blocks"): Fnv64 of each 1 MiB block of the
// bytes, then Fnv64 over those block hashes (8 bytes each, little-endian). Blocks sit at fixed
// offsets, so ranks that read different parts of one file can each hash their blocks.
class BlockHash {
 public:
  static constexpr uint64_t kBlock = 1 << 20;
  void add(const void* data, size_t n);
  // The hash of the bytes so far (a partial last block counts as a block).
  uint64_t value() const;
  // Fnv64 over given block hashes: the file's checksum from its blocks' hashes, in order.
  static uint64_t combine(const uint64_t* blocks, size_t n);
  // Appends to out the Fnv64 of each block of data (n bytes from a block boundary: whole blocks,
  // the last one possibly short), four blocks in step: Fnv64 is one long chain of multiplies, and
  // four independent chains run in the time of one.
  static void hash_blocks(const char* data, size_t n, std::vector<uint64_t>& out);

 private:
  static void combine_into(Fnv64& f, const uint64_t* blocks, size_t n);
  Fnv64 all_;             // over the finished blocks' hashes
  Fnv64 block_;           // the current block
  uint64_t in_block_ = 0;  // its bytes so far
};

// A stream of decoded bytes.
class Source {
 public:
  virtual ~Source() = default;
  // Up to n bytes into dst; 0 only at the end.
  virtual size_t read(char* dst, size_t n) = 0;
  // Bytes taken from the file so far (as stored, before any decoding).
  virtual uint64_t stored_bytes() const = 0;
  // BlockHash of those bytes.
  virtual uint64_t stored_hash() const = 0;
};

// The file's bytes, decompressed by extension: ".gz" (gzip, several members allowed) and ".zst"
// (zstd, several frames allowed). A directory, an unreadable file, corrupt or truncated compressed
// data, a compression this build lacks (the message names the Debian package), or a regular file
// that starts with gzip / zstd magic under another name is an error naming the file.
std::unique_ptr<Source> open_source(const std::string& path);

// Bytes [begin, end) of a plain file, as they are (a piece of a file read by one rank of the
// parallel prep). Its stored_hash is not the file's (the prep hashes whole blocks itself).
std::unique_ptr<Source> open_range(const std::string& path, uint64_t begin, uint64_t end);

// The path without a ".gz" / ".zst" suffix: what the content's own extension is.
std::string uncompressed_name(const std::string& path);

class Input {
 public:
  // `name` is how messages call it (the file name).
  // `first_line`: the number of the source's first line (a piece of a file that starts further on;
  // it then has no byte-order mark to drop).
  Input(std::unique_ptr<Source> source, std::string name, int64_t first_line = 1);
  static Input file(const std::string& path) { return Input(open_source(path), path); }
  static Input memory(std::string_view text, std::string name);

  const std::string& name() const { return name_; }

  // The first bytes of the input (at most max, fewer at the end), for format detection. Only
  // before anything was consumed.
  std::string_view head(size_t max);

  // The next line, without its line ending ("\n" or "\r\n"), and its 1-based number; false at the
  // end. The view holds until the next call.
  bool next_line(std::string_view& line, int64_t& number);

  // Byte by byte (JSON): the byte k places ahead, or -1 past the end; skip consumes n bytes.
  int peek(size_t k = 0) {
    if (buf_.size() - pos_ <= k && !fill(k + 1)) return -1;
    return static_cast<unsigned char>(buf_[pos_ + k]);
  }
  void skip(size_t n = 1) { pos_ = std::min(pos_ + n, buf_.size()); }

  // Called after every block read with the stored bytes read so far (progress reports).
  void on_block(std::function<void(uint64_t)> f) { on_block_ = std::move(f); }
  uint64_t stored_bytes() const { return source_->stored_bytes(); }
  uint64_t stored_hash() const { return source_->stored_hash(); }

 private:
  // Reads blocks until at least `ahead` unconsumed bytes are buffered; false when the input ends
  // first. Moves the unconsumed bytes to the front (views handed out before are invalid).
  bool fill(size_t ahead);
  std::unique_ptr<Source> source_;
  std::string name_;
  std::string buf_;
  size_t pos_ = 0;
  int64_t line_ = 0;
  bool eof_ = false, started_ = false;
  std::function<void(uint64_t)> on_block_;
};

}  // namespace shardrec::io

namespace shardrec::io {

// Calls f(line, 1-based number) for every line that is not blank (only spaces, tabs, CR).
template <class F>
void for_each_line(Input& in, F&& f) {
  std::string_view line;
  int64_t number = 0;
  while (in.next_line(line, number))
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) f(line, number);
}

}  // namespace shardrec::io
