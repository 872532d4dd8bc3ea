// Small text helpers shared by the readers of raw logs (io/parsers.cc) and of feature files
// (io/features.cc): line iteration and the shape of their error messages.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace shardrec::io::text {

[[noreturn]] inline void fail_at(const std::string& source, int64_t line, const std::string& msg) {
  fail(source + ":" + std::to_string(line) + ": " + msg);
}

// A field as shown in a message: quoted and cut short so a binary file cannot flood the terminal.
inline std::string show(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = "'";  // built by appends: GCC 12 warns falsely (-Wrestrict) on "'" + string
  out.append(s.substr(0, kMax));
  out += s.size() > kMax ? "...'" : "'";
  return out;
}

// Calls f(line, 1-based line number) for every line that is not blank (only spaces, tabs, CR),
// without its line ending.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  int64_t number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) f(line, number);
  }
}

// Splits line at every occurrence of sep (no quoting rules) into out.
inline void split(std::string_view line, std::string_view sep, std::vector<std::string_view>& out) {
  out.clear();
  size_t pos = 0;
  for (;;) {
    const size_t k = line.find(sep, pos);
    if (k == std::string_view::npos) {
      out.push_back(line.substr(pos));
      return;
    }
    out.push_back(line.substr(pos, k - pos));
    pos = k + sep.size();
  }
}

}  // namespace shardrec::io::text
