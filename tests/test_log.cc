// base/log.h: when a Progress prints, what its line holds, and which Log levels print what.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/log.h"

namespace shardrec {
namespace {

// The lines written to f so far.
std::vector<std::string> lines_of(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::vector<std::string> out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out.emplace_back(buf);
  return out;
}

TEST(Progress, PeriodZeroPrintsEveryUpdateAndEndsAtTheTotal) {
  std::FILE* f = std::tmpfile();
  Progress p("eval test", "users", 0, f);
  p.begin(10);
  for (int64_t done : {3, 7, 10}) p.update(done);
  const auto l = lines_of(f);
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].rfind("  eval test  users 3/10 (30%)  ", 0), 0u) << l[0];
  EXPECT_NE(l[2].find("users 10/10 (100%)  "), std::string::npos) << l[2];
  EXPECT_NE(l[2].find(" users/s  0s left\n"), std::string::npos) << l[2];
  std::fclose(f);
}

TEST(Progress, PeriodZeroPrintsEvenASingleBlockAndTheCallerNamesItsUnit) {
  std::FILE* f = std::tmpfile();
  Progress p("eval test", "users", 0, f);
  p.begin(80, "rows");  // labeled evaluation counts rows
  p.update(80);
  const auto l = lines_of(f);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].rfind("  eval test  rows 80/80 (100%)  ", 0), 0u) << l[0];
  EXPECT_NE(l[0].find(" rows/s  0s left\n"), std::string::npos) << l[0];
  std::fclose(f);
}

TEST(Progress, AQuickTaskPrintsNothingNotEvenItsLastLine) {
  std::FILE* f = std::tmpfile();
  Progress p("export", "rows", 1e9, f);
  p.begin(4);
  p.update(2);
  p.update(4);
  EXPECT_TRUE(lines_of(f).empty());
  std::fclose(f);
}

TEST(Progress, DisabledPrintsNothing) {
  Progress p;  // to == nullptr
  EXPECT_FALSE(p.enabled());
  p.begin(3);
  p.update(3);  // must not crash or print
}

TEST(Log, LevelsAndRoot) {
  const Log quiet(LogLevel::kQuiet), error(LogLevel::kError), warn(LogLevel::kWarn), info(LogLevel::kInfo),
      debug(LogLevel::kDebug), other_rank(LogLevel::kDebug, false);
  EXPECT_FALSE(quiet.summary());
  EXPECT_TRUE(error.summary());
  EXPECT_FALSE(error.warn());
  EXPECT_TRUE(warn.warn());
  EXPECT_FALSE(warn.info());
  EXPECT_TRUE(info.info());
  EXPECT_FALSE(info.debug());
  EXPECT_TRUE(debug.debug());
  EXPECT_FALSE(other_rank.warn());
  EXPECT_FALSE(warn.progress("x", "rows").enabled());
  EXPECT_TRUE(info.progress("x", "rows").enabled());
  EXPECT_FALSE(other_rank.progress("x", "rows").enabled());
}

TEST(Log, PeriodFromTheEnvironment) {
  ::setenv("SHARDREC_PROGRESS_SECONDS", "0", 1);
  EXPECT_EQ(Log().progress_period(), 0);
  ::setenv("SHARDREC_PROGRESS_SECONDS", "x", 1);  // not a number: the default
  EXPECT_EQ(Log().progress_period(), 5);
  ::unsetenv("SHARDREC_PROGRESS_SECONDS");
  EXPECT_EQ(Log().progress_period(), 5);
}

TEST(Throttle, Periods) {
  Throttle always(0), never(-1), slow(1e9);
  EXPECT_TRUE(always.due());
  EXPECT_TRUE(always.due());
  EXPECT_FALSE(never.due());
  EXPECT_FALSE(slow.due());
}

TEST(HumanText, TimeAndRate) {
  EXPECT_EQ(human_time(42), "42s");
  EXPECT_EQ(human_time(185), "3m05s");
  EXPECT_EQ(human_time(7800), "2h10m");
  EXPECT_EQ(human_rate(950), "950");
  EXPECT_EQ(human_rate(12500), "12.5k");
  EXPECT_EQ(human_rate(1.25e6), "1.25M");
}

}  // namespace
}  // namespace shardrec
