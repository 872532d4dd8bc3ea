// What a command prints besides its results: a level (--log-level) and progress lines. No global
// state: the command makes one Log and hands it (or a Progress made from it) to what it calls.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace shardrec {

// quiet < error < warn < info < debug. Errors print at every level (the command's error path does
// not ask the Log); the level gates warnings, informational lines and progress.
enum class LogLevel { kQuiet, kError, kWarn, kInfo, kDebug };

std::string human_time(double seconds);     // 42s, 3m05s, 2h10m
std::string human_rate(double per_second);  // 950, 12.5k, 1.25M
// The process's peak resident memory so far (MiB): a high-water mark that never goes down.
double peak_rss_mib();

// Due at most once every `period` seconds (0: always; < 0: never): the pace of progress lines.
class Throttle {
 public:
  explicit Throttle(double period) : period_(period), last_(Clock::now()) {}
  bool due() {
    if (period_ < 0) return false;
    const auto now = Clock::now();
    if (std::chrono::duration<double>(now - last_).count() < period_) return false;
    last_ = now;
    return true;
  }

 private:
  using Clock = std::chrono::steady_clock;
  double period_;
  Clock::time_point last_;
};

// A progress line on standard error, at most one every period seconds, in train's look:
//   "  eval test  users 1200/5000 (24%)  2.5k users/s  15s left"
// begin(total) starts (or restarts) the count; update(done) prints when a line is due; the line at
// done == total prints only when an earlier one did (or the period is 0), so a long task ends at
// 100% and a quick one prints nothing. A disabled Progress (to == nullptr) does nothing; so do ranks other than 0.
class Progress {
 public:
  Progress() = default;  // disabled
  Progress(std::string what, std::string unit, double period, std::FILE* to)
      : what_(std::move(what)), unit_(std::move(unit)), period_(period), to_(to) {}
  bool enabled() const { return to_ != nullptr; }
  void set_what(std::string what) { what_ = std::move(what); }
  // unit: what the caller counts, when it is not what the command named (labeled evaluation
  // counts rows, not users).
  void begin(int64_t total, const char* unit = nullptr);
  void update(int64_t done);

 private:
  std::string what_, unit_;
  double period_ = -1;
  std::FILE* to_ = nullptr;
  int64_t total_ = 0;
  bool printed_ = false;
  std::chrono::steady_clock::time_point start_{};
  Throttle throttle_{-1};
};

class Log {
 public:
  // root: whether this process prints (rank 0). The progress period is SHARDREC_PROGRESS_SECONDS
  // when set (for tests: 0 prints every block), else 5 seconds.
  explicit Log(LogLevel level = LogLevel::kInfo, bool root = true);
  LogLevel level() const { return level_; }
  bool root() const { return root_; }
  bool at(LogLevel l) const { return root_ && level_ >= l; }
  bool warn() const { return at(LogLevel::kWarn); }
  bool info() const { return at(LogLevel::kInfo); }
  bool debug() const { return at(LogLevel::kDebug); }
  // A result's summary on standard output ("wrote FILE", a table a file also holds): all but quiet.
  bool summary() const { return at(LogLevel::kError); }
  double progress_period() const { return period_; }
  // Enabled at info and above, on the root only.
  Progress progress(std::string what, std::string unit) const;

 private:
  LogLevel level_;
  bool root_;
  double period_;
};

}  // namespace shardrec
