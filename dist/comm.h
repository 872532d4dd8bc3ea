// Communicator: who we are (rank, size) and the collectives a training step needs.
// Backends: MPI (dist/mpi_comm.h), in-process threads (dist/inproc_comm.h, for tests), and NCCL later.
// No backend handle appears here, so models and strategies never see MPI_Comm or ncclComm_t.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"

namespace shardrec::dist {

// Traffic counters, per rank, counted once by Comm itself for every backend: the planner and
// tests read them. Bytes are those a rank sends to other ranks (its own share is a local copy).
struct CommStats {
  uint64_t alltoall_calls = 0;  // fixed-size exchanges (counts ahead of an all-to-all-v)
  uint64_t alltoallv_calls = 0;
  uint64_t alltoallv_bytes_sent = 0;
  uint64_t allreduce_calls = 0;
  uint64_t allreduce_bytes = 0;
  uint64_t allgather_calls = 0;  // allgatherv and allgather_u64
  uint64_t allgather_bytes_sent = 0;  // allgatherv: this rank's part times the others
  uint64_t bcast_calls = 0;
  uint64_t barrier_calls = 0;
};

// A collective did not complete within the communicator's timeout: a rank stopped, or the
// network between the ranks is down. The job cannot go on (the collective is still pending).
class CommTimeout : public Error {
 public:
  using Error::Error;
};
// The exit code of a job that a communication timeout ended.
constexpr int kExitCommTimeout = 124;

// Another rank failed alone and said so (dist/mpi_comm.h, MpiComm::agree_failure): thrown from
// the collective this rank waited in, and from every collective after it. Its error is that
// rank's to print; this one stops with a one-line notice.
class RankFailed : public Error {
 public:
  RankFailed(int failed, const std::string& what) : Error(what), failed_rank(failed) {}
  int failed_rank;
};
// The exit code of a rank that stopped because another rank failed (RankFailed).
constexpr int kExitRankFailed = 4;

class Comm;

// Where a collective's buffers live. Device buffers need a communicator that handles them
// (dist/cuda_comm.h); a host-only backend refuses them with an error instead of reading garbage.
enum class Memory { kHost, kDevice };

// The collectives are non-virtual: they count the traffic, check the memory kind, and call the
// backend's do_* hook, so every backend counts alike and implements only the transport.
class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // True when the backend can exchange device buffers (Memory::kDevice).
  virtual bool handles_device_memory() const { return false; }

  // Personalised exchange: send_bytes[k] bytes starting at send_displs[k] go to rank k; the caller
  // knows recv_bytes[k] (exchange counts first with alltoall_counts) and receives at recv_displs[k].
  void alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                 const size_t* recv_bytes, const size_t* recv_displs, Memory mem = Memory::kHost);
  // Every rank sends one uint64 to every rank: send[k] -> rank k, recv[k] <- rank k.
  void alltoall_u64(const uint64_t* send, uint64_t* recv);
  // Sum of int64 is exact and so independent of the reduction order (see dist/exact_sum.h).
  void allreduce_sum(int64_t* data, size_t n, Memory mem = Memory::kHost);
  void allreduce_max(double* data, size_t n, Memory mem = Memory::kHost);
  // Gather bytes from every rank to every rank, concatenated in rank order. recv_bytes[k] is what
  // rank k contributes (exchange it first with allgather_u64 when unknown).
  void allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes,
                  Memory mem = Memory::kHost);
  void allgather_u64(uint64_t value, uint64_t* recv);
  void broadcast(void* data, size_t bytes, int root, Memory mem = Memory::kHost);
  void barrier();

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

  // A collective that has not completed after this many seconds throws CommTimeout (0: wait for
  // ever). Backends that can bound their waits honour it (MPI); the others wait.
  void set_timeout(double seconds) { timeout_ = seconds; }
  double timeout() const { return timeout_; }
  // What the ranks are doing ("epoch 2, after step 17"), named when a collective times out.
  // The step is kept as a number (set_step every step costs no string) and named only then.
  void set_context(std::string what, int64_t step = -1) {
    context_ = std::move(what);
    step_ = step;
  }
  void set_step(int64_t step) { step_ = step; }
  std::string context() const {
    const int64_t s = step_;
    return s < 0 ? context_ : context_ + ", step " + std::to_string(s);
  }
  // A stretch in which this rank waits on the others outside these collectives (parallel HDF5's
  // MPI-IO): a backend with a timeout ends the process (kExitCommTimeout, a message naming
  // `what`) when it lasts longer. Use BlockingRegion.
  virtual void enter_region(const std::string& /*what*/) {}
  virtual void leave_region() {}

 protected:
  double timeout_ = 0;
  std::string context_;
  std::atomic<int64_t> step_{-1};  // read by a backend's watchdog thread
  // The transport. `mem` is kDevice only when handles_device_memory().
  virtual void do_alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                            const size_t* recv_bytes, const size_t* recv_displs, Memory mem) = 0;
  virtual void do_alltoall_u64(const uint64_t* send, uint64_t* recv) = 0;
  virtual void do_allreduce_sum(int64_t* data, size_t n, Memory mem) = 0;
  virtual void do_allreduce_max(double* data, size_t n, Memory mem) = 0;
  virtual void do_allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes,
                             Memory mem) = 0;
  virtual void do_allgather_u64(uint64_t value, uint64_t* recv) = 0;
  virtual void do_broadcast(void* data, size_t bytes, int root, Memory mem) = 0;
  virtual void do_barrier() = 0;

 private:
  void check_memory(Memory mem, const char* op) const;
  CommStats stats_;
};

// Typed all-to-all-v: send[k] goes to rank k; returns what each rank sent us, by source rank.
// The counts travel first, then the payload, in one call each.
template <class T>
std::vector<std::vector<T>> all_to_all(Comm& comm, const std::vector<std::vector<T>>& send) {
  const int n = comm.size();
  std::vector<uint64_t> scount(n), rcount(n);
  for (int k = 0; k < n; ++k) scount[k] = send[k].size();
  comm.alltoall_u64(scount.data(), rcount.data());
  std::vector<size_t> sb(n), sd(n), rb(n), rd(n);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    sb[k] = scount[k] * sizeof(T); sd[k] = stotal; stotal += sb[k];
    rb[k] = rcount[k] * sizeof(T); rd[k] = rtotal; rtotal += rb[k];
  }
  std::vector<T> sbuf(stotal / sizeof(T)), rbuf(rtotal / sizeof(T));
  for (int k = 0; k < n; ++k)
    if (sb[k]) std::memcpy(reinterpret_cast<char*>(sbuf.data()) + sd[k], send[k].data(), sb[k]);
  comm.alltoallv(sbuf.data(), sb.data(), sd.data(), rbuf.data(), rb.data(), rd.data());
  std::vector<std::vector<T>> out(n);
  for (int k = 0; k < n; ++k) {
    out[k].resize(rcount[k]);
    if (rb[k]) std::memcpy(out[k].data(), reinterpret_cast<char*>(rbuf.data()) + rd[k], rb[k]);
  }
  return out;
}

// Byte counts and displacements of an all-to-all-v of whole rows (a graph's halo): rows_out[q]
// rows to rank q and rows_in[q] from it, in rank order, row_bytes each.
struct RowLayout {
  std::vector<size_t> send_bytes, send_displs, recv_bytes, recv_displs;
  size_t send_total = 0, recv_total = 0;
  RowLayout(const std::vector<size_t>& rows_out, const std::vector<size_t>& rows_in, size_t row_bytes);
};

// Typed all-gather-v: every rank's vector, in rank order.
template <class T>
std::vector<std::vector<T>> allgather(Comm& comm, const std::vector<T>& mine) {
  const int n = comm.size();
  std::vector<uint64_t> counts(n);
  comm.allgather_u64(mine.size(), counts.data());
  std::vector<size_t> bytes(n);
  size_t total = 0;
  for (int k = 0; k < n; ++k) { bytes[k] = counts[k] * sizeof(T); total += bytes[k]; }
  std::vector<T> buf(total / sizeof(T));
  comm.allgatherv(mine.data(), mine.size() * sizeof(T), buf.data(), bytes.data());
  std::vector<std::vector<T>> out(n);
  size_t off = 0;
  for (int k = 0; k < n; ++k) {
    out[k].assign(buf.begin() + off, buf.begin() + off + counts[k]);
    off += counts[k];
  }
  return out;
}

// Marks a blocking stretch for the communicator's timeout (Comm::enter_region).
class BlockingRegion {
 public:
  BlockingRegion(Comm& comm, const std::string& what) : comm_(comm) { comm_.enter_region(what); }
  ~BlockingRegion() { comm_.leave_region(); }
  BlockingRegion(const BlockingRegion&) = delete;
  BlockingRegion& operator=(const BlockingRegion&) = delete;

 private:
  Comm& comm_;
};

}  // namespace shardrec::dist
