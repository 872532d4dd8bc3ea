#include "launch/cli_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <vector>

#include "base/atomic_file.h"
#include "base/error.h"
#include "dist/mpi_comm.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/export.h"
#include "io/hdf5_util.h"

namespace shardrec::cli {

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

namespace {
// The metrics in reading order: by name, then cutoff as a number (hit@5 before hit@10).
std::vector<std::pair<std::string, double>> in_order(const EvalResult& r) {
  std::vector<std::pair<std::string, double>> v(r.values.begin(), r.values.end());
  auto key = [](const std::string& k) {
    const auto at = k.find('@');
    return std::pair{k.substr(0, at), at == std::string::npos ? -1L : std::atol(k.c_str() + at + 1)};
  };
  std::stable_sort(v.begin(), v.end(), [&](const auto& a, const auto& b) { return key(a.first) < key(b.first); });
  return v;
}
}  // namespace

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool empty_split(const EvalResult& r) {
  if (r.users > 0) return false;
  // Ranking metrics of 0 users read 0; the others (auc, logloss) are NaN without rows.
  for (auto& [k, v] : r.values)
    if (k != "users" && k.find('@') == std::string::npos && std::isfinite(v)) return false;
  return true;
}

std::string json_metrics(const EvalResult& r) {
  std::string s = "{";
  const bool none = empty_split(r);  // no metric is defined: null, not 0
  for (auto& [k, v] : in_order(r))
    s += (s.size() > 1 ? ", \"" : "\"") + k + "\": " + (none && k != "users" ? "null" : json_number(v));
  return s + "}";
}

void print_metrics(const char* split, const EvalResult& r, std::FILE* to) {
  if (empty_split(r)) {
    std::fprintf(to, "%s: no rows\n", split);
    return;
  }
  std::map<std::string, std::vector<std::pair<std::string, double>>> rows;
  for (auto& [k, v] : in_order(r)) {
    const auto at = k.find('@');
    rows[at == std::string::npos ? k : k.substr(0, at)].push_back({k, v});
  }
  std::fprintf(to, "%s (%lld users):\n", split, (long long)r.users);
  for (auto& [fam, cols] : rows) {
    std::fprintf(to, "  ");
    for (auto& [k, v] : cols) std::fprintf(to, "%-14s %.4f   ", k.c_str(), v);
    std::fprintf(to, "\n");
  }
}

void write_output(const std::string& path, const std::string& text) {
  if (path != "-") return write_file(path, text);
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    fail("standard output: write failed");
}

void check_inputs(dist::Comm& comm, const std::string& data, const std::string& params) {
  io::agree(comm, [&] {
    io::DatasetInfo info;
    if (!data.empty()) info = io::read_info(io::H5File::open_read(data));
    if (params.empty()) return;
    const auto f = io::H5File::open_read(params);
    std::string fmt;
    if (f.has_attr("/", "format")) fmt = f.read_attr_str("/", "format");
    if (fmt != io::kParamsFormat)
      fail(params + ": not a shardrec parameters file (root attribute 'format' is '" + fmt + "')");
    // Parameters of another dataset of the same shape would be relabelled silently with these ids.
    if (data.empty() || info.fingerprint.empty() || !f.has_attr("/", "dataset_fingerprint")) return;
    const std::string trained = f.read_attr_str("/", "dataset_fingerprint");
    if (trained != info.fingerprint)
      fail(params + ": trained on the dataset with fingerprint " + trained + ", but " + data + " has fingerprint " +
           info.fingerprint + " (another dataset, or one prepared differently)");
  });
}

void debug_partition(const Log& log, const io::DataShard& data, dist::Comm& comm) {
  if (log.level() < LogLevel::kDebug) return;  // the same on every rank: all skip the collective
  const auto& sl = data.split;
  const std::vector<int64_t> mine = {sl[0].user_lo, sl[0].user_hi, sl[0].rows(), sl[1].rows(), sl[2].rows()};
  const auto all = dist::allgather(comm, mine);
  if (!log.debug()) return;
  for (int k = 0; k < comm.size(); ++k)
    std::fprintf(stderr, "debug: rank %d of %d: users [%lld, %lld), rows train %lld, valid %lld, test %lld\n", k,
                 comm.size(), (long long)all[k][0], (long long)all[k][1], (long long)all[k][2], (long long)all[k][3],
                 (long long)all[k][4]);
}

double default_comm_timeout() {
  const char* v = std::getenv("SHARDREC_COMM_TIMEOUT");
  if (!v || !*v) return 600;
  char* end = nullptr;
  const double t = std::strtod(v, &end);
  if (*end || !(t >= 0) || !std::isfinite(t))
    fail(std::string("SHARDREC_COMM_TIMEOUT: '") + v + "': expected seconds (0: no limit)");
  return t;
}

namespace {
// How long a failed rank waits for the others to answer (each waits in a collective, polls it
// and answers within milliseconds; one busy elsewhere for longer is ended by MPI_Abort).
constexpr double kFailureWaitSeconds = 10;
// A rank stopped by another's failure exits this much later, so that the failed rank's exit,
// which ends the job under mpirun, comes first and its exit code is the job's.
constexpr auto kStopGrace = std::chrono::seconds(3);

// An error on this rank, which the others may not share: the ranks agree who failed with what
// (dist::MpiComm::agree_failure), and each message is printed once, by the lowest rank that
// has it. When every rank failed, returns the exit code (MPI can end in order); otherwise the
// failed ranks leave with _Exit (the others' collectives are still pending) or, when a rank did
// not answer, MPI_Abort.
int fail_across_ranks(dist::MpiComm& comm, int code, const std::string& what) {
  const auto v = comm.agree_failure(code, what, kFailureWaitSeconds);
  const int n = comm.size();
  const bool everyone = v.heard_all && static_cast<int>(v.failed.size()) == n;
  uint64_t mine = 0;
  for (const auto& f : v.failed)
    if (f.rank == comm.rank()) mine = f.digest;
  std::vector<int> same;  // the ranks that failed with this message
  for (const auto& f : v.failed)
    if (f.digest == mine) same.push_back(f.rank);
  if (same.front() == comm.rank()) {
    if (n == 1 || (everyone && static_cast<int>(same.size()) == n)) {
      std::fprintf(stderr, "error: %s\n", what.c_str());
    } else {
      std::string who = same.size() == 1 ? "rank " : "ranks ";
      for (size_t i = 0; i < same.size(); ++i) who += (i ? ", " : "") + std::to_string(same[i]);
      std::fprintf(stderr, "error (%s of %d): %s\n", who.c_str(), n, what.c_str());
    }
  }
  std::fflush(nullptr);
  if (!v.heard_all) dist::MpiEnv::abort(code);  // a rank that cannot hear us: end them all
  comm.release_failed(v, kFailureWaitSeconds);
  if (everyone) return code;
  std::_Exit(code);
}
}  // namespace

int report_error(bool mpi_command, int code, const std::string& what, int argc, char** argv) {
  if (!mpi_command || !dist::MpiEnv::launched()) {
    std::fprintf(stderr, "error: %s\n", what.c_str());
    return code;
  }
  // The other ranks may have passed this point (an error only this rank sees) and wait in
  // run_mpi's first collective; they hear of it there.
  dist::MpiEnv env(&argc, &argv);
  dist::MpiComm comm;
  return fail_across_ranks(comm, code, what);
}

int run_mpi(const std::function<int(dist::Comm&)>& body, int argc, char** argv, double comm_timeout) {
  if (comm_timeout < 0) comm_timeout = default_comm_timeout();
  dist::MpiEnv env(&argc, &argv);
  dist::MpiComm comm;
  comm.set_timeout(comm_timeout);
  std::string error;
  bool agreed = false;  // every rank holds the same error and stops in step (io::agree)
  try {
    return body(comm);
  } catch (const dist::CommTimeout& e) {
    // Every rank still alive times out on its own: each says which collective it waited in. The
    // collective is still pending, so MPI cannot be shut down in order.
    std::fprintf(stderr, "error (rank %d of %d): %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(nullptr);
    std::_Exit(dist::kExitCommTimeout);
  } catch (const dist::RankFailed& e) {
    // Another rank failed alone and prints its error; this one says why it stops, tells the
    // failed rank it heard, and leaves after it (the collective it waited in stays pending).
    std::fprintf(stderr, "stopped (rank %d of %d): %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(nullptr);
    comm.announce_stopped();
    std::this_thread::sleep_for(kStopGrace);
    std::_Exit(dist::kExitRankFailed);
  } catch (const AgreedError& e) {
    error = e.what();
    agreed = true;
  } catch (const std::exception& e) {
    error = e.what();
  }
  int rc = 1;
  if (comm.size() == 1 || agreed) {
    if (comm.rank() == 0) std::fprintf(stderr, "error: %s\n", error.c_str());
    std::fflush(nullptr);
  } else {
    rc = fail_across_ranks(comm, 1, error);  // returns only when every rank failed
  }
  // MPI_Finalize would run HDF5's cleanup, which crashes on a file whose close failed.
  if (io::hdf5_close_failed()) std::_Exit(rc);
  return rc;
}

}  // namespace shardrec::cli
