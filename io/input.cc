#include "io/input.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/error.h"

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
    return got;
  }
  uint64_t stored_bytes() const override { return bytes_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t bytes_ = 0;
};

class MemorySource : public Source {
 public:
  explicit MemorySource(std::string_view text) : text_(text) {}
  size_t read(char* dst, size_t n) override {
    n = std::min(n, text_.size() - pos_);
    std::memcpy(dst, text_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  uint64_t stored_bytes() const override { return pos_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::unique_ptr<Source> open_source(const std::string& path) {
  return std::make_unique<FileSource>(path);
}

Input::Input(std::unique_ptr<Source> source, std::string name)
    : source_(std::move(source)), name_(std::move(name)) {}

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
