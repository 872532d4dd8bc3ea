#include "base/log.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace shardrec {

std::string human_time(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) % 3600 / 60);
  return buf;
}

double peak_rss_mib() {
  struct rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

std::string human_rate(double r) {
  char buf[32];
  if (r >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", r / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", r);
  return buf;
}

void Progress::begin(int64_t total, const char* unit) {
  if (unit) unit_ = unit;
  total_ = total;
  printed_ = false;
  start_ = std::chrono::steady_clock::now();
  throttle_ = Throttle(period_);
}

void Progress::update(int64_t done) {
  if (!to_) return;
  const bool last = done >= total_;
  // Period 0 (tests) prints every update; otherwise the last one only after an earlier line.
  if (!(last ? printed_ || period_ == 0 : throttle_.due())) return;
  printed_ = true;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = static_cast<double>(done) / std::max(s, 1e-9);
  const double left = done > 0 ? s / static_cast<double>(done) * static_cast<double>(total_ - done) : 0;
  const int pct = total_ > 0 ? static_cast<int>(100 * done / total_) : 100;
  std::fprintf(to_, "  %s  %s %lld/%lld (%d%%)  %s %s/s  %s left\n", what_.c_str(), unit_.c_str(), (long long)done,
               (long long)total_, pct, human_rate(rate).c_str(), unit_.c_str(), human_time(left).c_str());
  std::fflush(to_);
}

namespace {
double period_from_env() {
  const char* v = std::getenv("SHARDREC_PROGRESS_SECONDS");
  if (!v || !*v) return 5;
  char* end = nullptr;
  const double p = std::strtod(v, &end);
  return end && *end == 0 && p >= 0 ? p : 5;
}
}  // namespace

Log::Log(LogLevel level, bool root) : level_(level), root_(root), period_(period_from_env()) {}

Progress Log::progress(std::string what, std::string unit) const {
  return info() ? Progress(std::move(what), std::move(unit), period_, stderr) : Progress();
}

}  // namespace shardrec
