#include "launch/cli_util.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "base/error.h"
#include "dist/mpi_comm.h"

namespace shardrec::cli {

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string json_metrics(const EvalResult& r) {
  std::string s = "{";
  for (auto& [k, v] : r.values) s += (s.size() > 1 ? ", \"" : "\"") + k + "\": " + json_number(v);
  return s + "}";
}

std::string human_time(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) % 3600 / 60);
  return buf;
}

std::string human_rate(double r) {
  char buf[32];
  if (r >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", r / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", r);
  return buf;
}

void print_metrics(const char* split, const EvalResult& r) {
  std::map<std::string, std::vector<std::pair<std::string, double>>> rows;
  for (auto& [k, v] : r.values) {
    const auto at = k.find('@');
    rows[at == std::string::npos ? k : k.substr(0, at)].push_back({k, v});
  }
  std::printf("%s (%lld users):\n", split, (long long)r.users);
  for (auto& [fam, cols] : rows) {
    std::printf("  ");
    for (auto& [k, v] : cols) std::printf("%-14s %.4f   ", k.c_str(), v);
    std::printf("\n");
  }
}

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) fail(path + ": cannot be written");
    out << text;
    if (!out.flush()) fail(path + ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

int run_mpi(const std::function<int(dist::Comm&)>& body, int argc, char** argv) {
  dist::MpiEnv env(&argc, &argv);
  dist::MpiComm comm;
  try {
    return body(comm);
  } catch (const std::exception& e) {
    if (comm.size() == 1) throw;
    std::fprintf(stderr, "error (rank %d of %d): %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    dist::MpiEnv::abort(1);
    return 1;
  }
}

}  // namespace shardrec::cli
