#include "dist/mpi_comm.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"

namespace shardrec::dist {

namespace {
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  fail(std::string("MPI ") + what + " failed: " + std::string(buf, len));
}
// Tags of the side communicator on which the ranks tell each other of a failure.
constexpr int kTagFailed = 1, kTagStopped = 2, kTagPrinted = 3;
uint64_t digest(const std::string& s) {  // FNV-1a
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
int to_int(size_t v, const char* what) {
  if (v > static_cast<size_t>(INT_MAX))
    fail(std::string("MPI ") + what + ": a message of " + std::to_string(v) +
         " bytes exceeds MPI's int count; use a smaller batch");
  return static_cast<int>(v);
}
}  // namespace

MpiEnv::MpiEnv(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
}
MpiEnv::~MpiEnv() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
void MpiEnv::abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
bool MpiEnv::launched() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

struct MpiComm::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  // Failure notices travel here, apart from the collectives' traffic, so a rank can tell the
  // others while they wait in a collective it will not join.
  MPI_Comm notice = MPI_COMM_NULL;
  uint64_t out[4][2] = {};            // per tag: what this rank sent (alive until the sends finish)
  std::vector<MPI_Request> sends;
  std::vector<char> printed;          // per rank: its kTagPrinted arrived

  // Sends msg to every rank in `to` (all but this one when empty), without waiting.
  void send(int tag, uint64_t a, uint64_t b, int self, int size, const std::vector<int>& to = {}) {
    out[tag][0] = a;
    out[tag][1] = b;
    std::vector<int> dest = to;
    if (dest.empty())
      for (int k = 0; k < size; ++k)
        if (k != self) dest.push_back(k);
    for (const int k : dest) {
      MPI_Request r;
      if (MPI_Isend(out[tag], 2, MPI_UINT64_T, k, tag, notice, &r) == MPI_SUCCESS) sends.push_back(r);
    }
  }
  // Waits up to wait_s for the sends to leave (a peer that is gone must not hold us).
  void drain(double wait_s) {
    const auto t0 = std::chrono::steady_clock::now();
    int done = 0;
    while (!sends.empty() && seconds_since(t0) < wait_s) {
      MPI_Testall(static_cast<int>(sends.size()), sends.data(), &done, MPI_STATUSES_IGNORE);
      if (done) sends.clear();
      else std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
};

// Without a timeout the blocking collective; with one its non-blocking form, tested until it
// completes or the time is up. The results are the same bits (int64 sums and max are exact;
// the rest moves bytes). A waiting rank spins briefly, then sleeps between tests so that it does
// not take a core from the ranks it waits for.
void MpiComm::finish(void* request, const char* what) {
  MPI_Request& req = *static_cast<MPI_Request*>(request);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (int tests = 0;; ++tests) {
    int done = 0;
    check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    if (tests < 2000) continue;
    // Waiting already: a rank that failed alone may have said so (it will not join this one).
    check_failure_notice();
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > timeout_) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", timeout_);
      throw CommTimeout(std::string("MPI ") + what + " did not complete within " + secs + " s on rank " +
                        std::to_string(rank_) + " of " + std::to_string(size_) +
                        (context().empty() ? "" : " (" + context() + ")") +
                        ": a rank stopped or the network between the ranks is down; the job ends here "
                        "(resume from the last checkpoint; --comm-timeout sets the limit)");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

MpiComm::MpiComm() : impl_(std::make_unique<Impl>()) {
  check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm), "Comm_dup");
  MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN);
  check(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->notice), "Comm_dup");
  MPI_Comm_set_errhandler(impl_->notice, MPI_ERRORS_RETURN);
  MPI_Comm_rank(impl_->comm, &rank_);
  MPI_Comm_size(impl_->comm, &size_);
  impl_->printed.assign(size_, 0);
}
MpiComm::~MpiComm() {
  if (watchdog_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (impl_->comm != MPI_COMM_NULL && !finalized) MPI_Comm_free(&impl_->comm);
  if (impl_->notice != MPI_COMM_NULL && !finalized) MPI_Comm_free(&impl_->notice);
}

void MpiComm::check_failure_notice() {
  if (failed_rank_ < 0) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTagFailed, impl_->notice, &flag, &st) != MPI_SUCCESS || !flag) return;
    failed_rank_ = st.MPI_SOURCE;
  }
  throw RankFailed(failed_rank_, "rank " + std::to_string(failed_rank_) + " of " + std::to_string(size_) +
                                     " failed; see its error");
}

FailureVerdict MpiComm::agree_failure(int code, const std::string& message, double wait_s) {
  FailureVerdict v;
  v.failed.push_back({rank_, code, digest(message)});
  v.heard_all = size_ == 1;
  if (size_ == 1) return v;
  impl_->send(kTagFailed, static_cast<uint64_t>(code), v.failed[0].digest, rank_, size_);
  std::vector<char> heard(size_, 0);
  heard[rank_] = 1;
  int left = size_ - 1;
  const auto t0 = std::chrono::steady_clock::now();
  while (left > 0 && seconds_since(t0) < wait_s) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, impl_->notice, &flag, &st) != MPI_SUCCESS) break;
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    uint64_t in[2];
    const int k = st.MPI_SOURCE;
    MPI_Recv(in, 2, MPI_UINT64_T, k, st.MPI_TAG, impl_->notice, MPI_STATUS_IGNORE);
    if (st.MPI_TAG == kTagPrinted) {  // a failed rank that heard everyone before we did
      impl_->printed[k] = 1;
      continue;
    }
    if (st.MPI_TAG == kTagFailed) v.failed.push_back({k, static_cast<int>(in[0]), in[1]});
    if (!heard[k]) {
      heard[k] = 1;
      --left;
    }
  }
  v.heard_all = left == 0;
  std::sort(v.failed.begin(), v.failed.end(), [](const auto& a, const auto& b) { return a.rank < b.rank; });
  return v;
}

void MpiComm::release_failed(const FailureVerdict& v, double wait_s) {
  std::vector<int> others;
  for (const auto& f : v.failed)
    if (f.rank != rank_) others.push_back(f.rank);
  if (others.empty()) return;
  impl_->send(kTagPrinted, 0, 0, rank_, size_, others);
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    bool all = true;
    for (const int k : others) all = all && impl_->printed[k];
    if (all || seconds_since(t0) >= wait_s) break;
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTagPrinted, impl_->notice, &flag, &st) != MPI_SUCCESS) break;
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    uint64_t in[2];
    MPI_Recv(in, 2, MPI_UINT64_T, st.MPI_SOURCE, kTagPrinted, impl_->notice, MPI_STATUS_IGNORE);
    impl_->printed[st.MPI_SOURCE] = 1;
  }
  impl_->drain(wait_s);
}

void MpiComm::announce_stopped() {
  if (size_ == 1) return;
  impl_->send(kTagStopped, 0, 0, rank_, size_);
  impl_->drain(2);
}

const void* MpiComm::native_handle() const { return &impl_->comm; }

void MpiComm::enter_region(const std::string& what) {
  if (timeout_ <= 0 || size_ == 1) return;
  std::lock_guard<std::mutex> lock(mu_);
  region_ = what;
  region_start_ = std::chrono::steady_clock::now();
  in_region_ = true;
  if (!watchdog_.joinable()) watchdog_ = std::thread([this] { watch(); });
}

void MpiComm::leave_region() {
  std::lock_guard<std::mutex> lock(mu_);
  in_region_ = false;
}

void MpiComm::watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (!in_region_) continue;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - region_start_).count();
    if (waited <= timeout_) continue;
    // The main thread is inside MPI (MPI-IO) and will not come back: say so and end here.
    std::fprintf(stderr,
                 "error (rank %d of %d): %s did not complete within %g s on rank %d of %d%s: a rank stopped or "
                 "the network between the ranks is down; the job ends here (resume from the last checkpoint; "
                 "--comm-timeout sets the limit)\n",
                 rank_, size_, region_.c_str(), timeout_, rank_, size_,
                 context().empty() ? "" : (" (" + context() + ")").c_str());
    std::fflush(nullptr);
    std::_Exit(kExitCommTimeout);
  }
}

// A collective: its blocking call without a timeout, else its non-blocking form finished within
// it. Both lambdas return an MPI error code; start gets the request to fill.
template <class Blocking, class Start>
void MpiComm::run(const char* what, Blocking blocking, Start start) {
  if (failed_rank_ >= 0) check_failure_notice();  // a failed rank is in no collective any more
  if (timeout_ <= 0) {
    check(blocking(), what);
    return;
  }
  MPI_Request req;
  check(start(&req), what);
  finish(&req, what);
}

void MpiComm::do_alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs,
                          void* recv, const size_t* recv_bytes, const size_t* recv_displs, Memory) {
  std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
  for (int k = 0; k < size_; ++k) {
    sc[k] = to_int(send_bytes[k], "alltoallv");
    sd[k] = to_int(send_displs[k], "alltoallv");
    rc[k] = to_int(recv_bytes[k], "alltoallv");
    rd[k] = to_int(recv_displs[k], "alltoallv");
  }
  run("Alltoallv",
      [&] { return MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, impl_->comm); },
      [&](MPI_Request* q) {
        return MPI_Ialltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, impl_->comm, q);
      });
}

void MpiComm::do_alltoall_u64(const uint64_t* send, uint64_t* recv) {
  run("Alltoall", [&] { return MPI_Alltoall(send, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T, impl_->comm); },
      [&](MPI_Request* q) { return MPI_Ialltoall(send, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T, impl_->comm, q); });
}

void MpiComm::do_allreduce_sum(int64_t* data, size_t n, Memory) {
  const int count = to_int(n, "allreduce");
  run("Allreduce", [&] { return MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_INT64_T, MPI_SUM, impl_->comm); },
      [&](MPI_Request* q) { return MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_INT64_T, MPI_SUM, impl_->comm, q); });
}

void MpiComm::do_allreduce_max(double* data, size_t n, Memory) {
  const int count = to_int(n, "allreduce");
  run("Allreduce", [&] { return MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_MAX, impl_->comm); },
      [&](MPI_Request* q) { return MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_MAX, impl_->comm, q); });
}

void MpiComm::do_allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes, Memory) {
  std::vector<int> rc(size_), rd(size_);
  size_t off = 0;
  for (int k = 0; k < size_; ++k) {
    rc[k] = to_int(recv_bytes[k], "allgatherv");
    rd[k] = to_int(off, "allgatherv");
    off += recv_bytes[k];
  }
  const int sb = to_int(send_bytes, "allgatherv");
  run("Allgatherv", [&] { return MPI_Allgatherv(send, sb, MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, impl_->comm); },
      [&](MPI_Request* q) {
        return MPI_Iallgatherv(send, sb, MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, impl_->comm, q);
      });
}

void MpiComm::do_allgather_u64(uint64_t value, uint64_t* recv) {
  run("Allgather", [&] { return MPI_Allgather(&value, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T, impl_->comm); },
      [&](MPI_Request* q) { return MPI_Iallgather(&value, 1, MPI_UINT64_T, recv, 1, MPI_UINT64_T, impl_->comm, q); });
}

void MpiComm::do_broadcast(void* data, size_t bytes, int root, Memory) {
  const int count = to_int(bytes, "broadcast");
  run("Bcast", [&] { return MPI_Bcast(data, count, MPI_BYTE, root, impl_->comm); },
      [&](MPI_Request* q) { return MPI_Ibcast(data, count, MPI_BYTE, root, impl_->comm, q); });
}

void MpiComm::do_barrier() {
  run("Barrier", [&] { return MPI_Barrier(impl_->comm); }, [&](MPI_Request* q) { return MPI_Ibarrier(impl_->comm, q); });
}

}  // namespace shardrec::dist
