#include "io/input.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "base/error.h"
#include "shardrec_config.h"

#if SHARDREC_HAVE_ZLIB
#include <zlib.h>
#endif
#if SHARDREC_HAVE_ZSTD
#include <zstd.h>
#endif

namespace shardrec::io {
namespace {

constexpr size_t kBlock = 1 << 20;

class FileSource : public Source {
 public:
  explicit FileSource(const std::string& path) : path_(path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) fail(path + ": is a directory, not a file");
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) fail(path + ": cannot open file: " + std::strerror(errno));
  }
  ~FileSource() override { std::fclose(f_); }
  size_t read(char* dst, size_t n) override {
    const size_t got = std::fread(dst, 1, n, f_);
    if (got < n && std::ferror(f_)) fail(path_ + ": read error: " + std::strerror(errno));
    bytes_ += got;
    hash_.add(dst, got);
    return got;
  }
  uint64_t stored_bytes() const override { return bytes_; }
  uint64_t stored_hash() const override { return hash_.value(); }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t bytes_ = 0;
  BlockHash hash_;
};

class RangeSource : public Source {
 public:
  RangeSource(const std::string& path, uint64_t begin, uint64_t end) : path_(path), pos_(begin), end_(end) {
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) fail(path + ": cannot open file: " + std::strerror(errno));
    if (std::fseek(f_, static_cast<long>(begin), SEEK_SET) != 0)
      fail(path + ": cannot seek to byte " + std::to_string(begin) + ": " + std::strerror(errno));
  }
  ~RangeSource() override { std::fclose(f_); }
  size_t read(char* dst, size_t n) override {
    n = static_cast<size_t>(std::min<uint64_t>(n, end_ - pos_));
    const size_t got = n ? std::fread(dst, 1, n, f_) : 0;
    if (got < n && std::ferror(f_)) fail(path_ + ": read error: " + std::strerror(errno));
    if (got < n) fail(path_ + ": the file ended at byte " + std::to_string(pos_ + got) + " (did it change while read?)");
    pos_ += got;
    bytes_ += got;
    return got;
  }
  uint64_t stored_bytes() const override { return bytes_; }
  uint64_t stored_hash() const override { return 0; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_, end_, bytes_ = 0;
};

class MemorySource : public Source {
 public:
  explicit MemorySource(std::string_view text) : text_(text) {}
  size_t read(char* dst, size_t n) override {
    n = std::min(n, text_.size() - pos_);
    std::memcpy(dst, text_.data() + pos_, n);
    hash_.add(dst, n);
    pos_ += n;
    return n;
  }
  uint64_t stored_bytes() const override { return pos_; }
  uint64_t stored_hash() const override { return hash_.value(); }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  BlockHash hash_;
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

#if SHARDREC_HAVE_ZLIB || SHARDREC_HAVE_ZSTD
// What the decoders share: the compressed file underneath (its size and hash are the stored
// file's) and a buffer of its bytes.
class Decompressing : public Source {
 public:
  Decompressing(const std::string& path, size_t buffer) : path_(path), file_(path), in_(buffer) {}
  uint64_t stored_bytes() const override { return file_.stored_bytes(); }
  uint64_t stored_hash() const override { return file_.stored_hash(); }

 protected:
  std::string path_;
  FileSource file_;
  std::vector<char> in_;
};
#endif

#if SHARDREC_HAVE_ZLIB
// gzip (or zlib) members one after another, as `cat a.gz b.gz` makes them.
class GzipSource final : public Decompressing {
 public:
  explicit GzipSource(const std::string& path) : Decompressing(path, kBlock) {
    if (inflateInit2(&z_, 15 + 32) != Z_OK) fail(path + ": cannot start the gzip decoder");
  }
  ~GzipSource() override { inflateEnd(&z_); }
  size_t read(char* dst, size_t n) override {
    z_.next_out = reinterpret_cast<Bytef*>(dst);
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    while (z_.avail_out == static_cast<uInt>(std::min<size_t>(n, 1u << 30))) {
      if (z_.avail_in == 0) {
        z_.avail_in = static_cast<uInt>(file_.read(in_.data(), in_.size()));
        z_.next_in = reinterpret_cast<Bytef*>(in_.data());
        if (z_.avail_in == 0) {
          if (in_member_) fail(path_ + ": truncated gzip data (the file ends inside a member)");
          break;
        }
      }
      in_member_ = true;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        in_member_ = false;
        inflateReset(&z_);  // another member may follow
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(path_ + ": corrupt gzip data" + (z_.msg ? std::string(" (") + z_.msg + ")" : ""));
      }
    }
    return std::min<size_t>(n, 1u << 30) - z_.avail_out;
  }

 private:
  z_stream z_{};
  bool in_member_ = false;
};
#endif

#if SHARDREC_HAVE_ZSTD
class ZstdSource final : public Decompressing {
 public:
  explicit ZstdSource(const std::string& path) : Decompressing(path, ZSTD_DStreamInSize()), ctx_(ZSTD_createDCtx()) {
    if (!ctx_) fail(path + ": cannot start the zstd decoder");
  }
  ~ZstdSource() override { ZSTD_freeDCtx(ctx_); }
  size_t read(char* dst, size_t n) override {
    ZSTD_outBuffer out{dst, n, 0};
    while (out.pos == 0) {
      if (input_.pos == input_.size) {
        input_ = {in_.data(), file_.read(in_.data(), in_.size()), 0};
        if (input_.size == 0) {
          if (pending_ != 0) fail(path_ + ": truncated zstd data (the file ends inside a frame)");
          break;
        }
      }
      pending_ = ZSTD_decompressStream(ctx_, &out, &input_);
      if (ZSTD_isError(pending_))
        fail(path_ + ": corrupt zstd data (" + ZSTD_getErrorName(pending_) + ")");
    }
    return out.pos;
  }

 private:
  ZSTD_DCtx* ctx_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  size_t pending_ = 0;  // ZSTD_decompressStream's last answer: 0 = at a frame's end
};
#endif

}  // namespace

std::string Fnv64::hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string uncompressed_name(const std::string& path) {
  if (ends_with(path, ".gz")) return path.substr(0, path.size() - 3);
  if (ends_with(path, ".zst")) return path.substr(0, path.size() - 4);
  return path;
}

std::unique_ptr<Source> open_source(const std::string& path) {
  if (ends_with(path, ".gz")) {
#if SHARDREC_HAVE_ZLIB
    return std::make_unique<GzipSource>(path);
#else
    fail(path + ": reading .gz files needs zlib, which this build of shardrec lacks: install the "
         "Debian package zlib1g-dev and rebuild (or decompress the file first)");
#endif
  }
  if (ends_with(path, ".zst")) {
#if SHARDREC_HAVE_ZSTD
    return std::make_unique<ZstdSource>(path);
#else
    fail(path + ": reading .zst files needs zstd, which this build of shardrec lacks: install the "
         "Debian package libzstd-dev and rebuild (or decompress the file first)");
#endif
  }
  // Compressed data under a plain name would be parsed as garbage: say what the name should be.
  // Regular files only: a pipe cannot be read twice.
  std::error_code ec;
  std::FILE* f = std::filesystem::is_regular_file(path, ec) ? std::fopen(path.c_str(), "rb") : nullptr;
  if (f) {
    unsigned char m[4] = {0, 0, 0, 0};
    const size_t n = std::fread(m, 1, 4, f);
    std::fclose(f);
    const char* kind = n >= 2 && m[0] == 0x1f && m[1] == 0x8b                                   ? "gzip"
                       : n == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd ? "zstd"
                                                                                                : nullptr;
    if (kind)
      fail(path + ": the file is " + kind + "-compressed but its name does not end in ." +
           (kind[0] == 'g' ? "gz" : "zst") + " (compressed inputs are recognised by the extension): rename it");
  }
  return std::make_unique<FileSource>(path);
}

std::unique_ptr<Source> open_range(const std::string& path, uint64_t begin, uint64_t end) {
  return std::make_unique<RangeSource>(path, begin, end);
}

void BlockHash::add(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, kBlock - in_block_));
    block_.add(p, take);
    in_block_ += take;
    p += take;
    n -= take;
    if (in_block_ == kBlock) {
      const uint64_t h = block_.h;
      combine_into(all_, &h, 1);
      block_ = Fnv64{};
      in_block_ = 0;
    }
  }
}

void BlockHash::combine_into(Fnv64& f, const uint64_t* blocks, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    unsigned char b[8];
    for (int k = 0; k < 8; ++k) b[k] = static_cast<unsigned char>(blocks[i] >> (8 * k));
    f.add(b, 8);
  }
}

uint64_t BlockHash::value() const {
  Fnv64 f = all_;
  if (in_block_ > 0) combine_into(f, &block_.h, 1);
  return f.h;
}

void BlockHash::hash_blocks(const char* data, size_t n, std::vector<uint64_t>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  for (; n >= 4 * kBlock; p += 4 * kBlock, n -= 4 * kBlock) {
    uint64_t h0 = Fnv64{}.h, h1 = h0, h2 = h0, h3 = h0;
    const unsigned char *p0 = p, *p1 = p + kBlock, *p2 = p + 2 * kBlock, *p3 = p + 3 * kBlock;
    for (size_t i = 0; i < kBlock; ++i) {
      h0 = (h0 ^ p0[i]) * kPrime;
      h1 = (h1 ^ p1[i]) * kPrime;
      h2 = (h2 ^ p2[i]) * kPrime;
      h3 = (h3 ^ p3[i]) * kPrime;
    }
    out.insert(out.end(), {h0, h1, h2, h3});
  }
  for (; n > 0;) {
    const size_t m = static_cast<size_t>(std::min<uint64_t>(n, kBlock));
    Fnv64 f;
    f.add(p, m);
    out.push_back(f.h);
    p += m;
    n -= m;
  }
}

uint64_t BlockHash::combine(const uint64_t* blocks, size_t n) {
  Fnv64 f;
  combine_into(f, blocks, n);
  return f.h;
}

Input::Input(std::unique_ptr<Source> source, std::string name, int64_t first_line)
    : source_(std::move(source)), name_(std::move(name)), line_(first_line - 1), started_(first_line != 1) {}

Input Input::memory(std::string_view text, std::string name) {
  return Input(std::make_unique<MemorySource>(text), std::move(name));
}

bool Input::fill(size_t ahead) {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  while (buf_.size() < ahead && !eof_) {
    const size_t old = buf_.size();
    buf_.resize(old + std::max(kBlock, ahead - old));
    const size_t got = source_->read(buf_.data() + old, buf_.size() - old);
    buf_.resize(old + got);
    eof_ = got == 0;
    if (on_block_) on_block_(source_->stored_bytes());
    if (!started_ && buf_.size() >= 3) {
      started_ = true;
      if (buf_.compare(0, 3, "\xEF\xBB\xBF") == 0) buf_.erase(0, 3);  // UTF-8 byte-order mark
    }
  }
  started_ = true;
  return buf_.size() >= ahead;
}

std::string_view Input::head(size_t max) {
  fill(max);
  return std::string_view(buf_).substr(pos_, max);
}

bool Input::next_line(std::string_view& line, int64_t& number) {
  size_t scanned = pos_;
  size_t nl;
  while ((nl = buf_.find('\n', scanned)) == std::string::npos) {
    if (eof_) {
      if (pos_ == buf_.size()) return false;
      nl = buf_.size();
      break;
    }
    scanned = buf_.size() - pos_;  // fill moves the unconsumed bytes to the front
    fill(buf_.size() - pos_ + 1);
  }
  line = std::string_view(buf_).substr(pos_, nl - pos_);
  pos_ = std::min(nl + 1, buf_.size());
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  number = ++line_;
  return true;
}

}  // namespace shardrec::io
