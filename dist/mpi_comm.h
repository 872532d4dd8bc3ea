// MPI communicator. MpiEnv owns MPI_Init/MPI_Finalize for a process; MpiComm owns a duplicate of
// the world communicator. The MPI handle stays in the .cc file.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/comm.h"

namespace shardrec::dist {

class MpiEnv {
 public:
  MpiEnv(int* argc, char*** argv);
  ~MpiEnv();
  MpiEnv(const MpiEnv&) = delete;
  MpiEnv& operator=(const MpiEnv&) = delete;
  // Ends every rank of the job with this exit code (after an error on one rank).
  static void abort(int code);
  // Whether an MPI launcher (mpirun, srun with PMI/PMIx) started this process, from its
  // environment: an error before MPI starts then still has the other ranks to agree with.
  static bool launched();
};

// What the ranks said about a failure outside the collectives (MpiComm::agree_failure).
struct FailureVerdict {
  struct Failed {
    int rank = 0, code = 0;
    uint64_t digest = 0;  // of the message: ranks with the same error print it once
  };
  std::vector<Failed> failed;  // ascending by rank, this one included
  bool heard_all = false;      // every other rank either failed too or stopped (RankFailed)
};

class MpiComm final : public Comm {
 public:
  MpiComm();  // a duplicate of MPI_COMM_WORLD
  ~MpiComm() override;
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // A watchdog thread (started on the first region when a timeout is set) ends the process when
  // a region lasts longer than timeout(); it never calls MPI.
  void enter_region(const std::string& what) override;
  void leave_region() override;
 protected:
  void do_alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                    const size_t* recv_bytes, const size_t* recv_displs, Memory mem) override;
  void do_alltoall_u64(const uint64_t* send, uint64_t* recv) override;
  void do_allreduce_sum(int64_t* data, size_t n, Memory mem) override;
  void do_allreduce_max(double* data, size_t n, Memory mem) override;
  void do_allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes,
                     Memory mem) override;
  void do_allgather_u64(uint64_t value, uint64_t* recv) override;
  void do_broadcast(void* data, size_t bytes, int root, Memory mem) override;
  void do_barrier() override;

 public:

  // The MPI communicator as an opaque pointer, for parallel HDF5 (io/ casts it back).
  const void* native_handle() const;

  // A failure outside the collectives, where the other ranks may be waiting in one. Tells every
  // rank (on a side communicator) that this one failed with `code` and `message`, then listens up
  // to wait_s seconds for each other rank's answer: its own failure, or that it stopped. A rank
  // waiting in a collective hears of it while it polls (only with a timeout: the blocking
  // collectives of --comm-timeout 0 cannot poll) and throws RankFailed there.
  FailureVerdict agree_failure(int code, const std::string& message, double wait_s);
  // A failed rank, after printing: tells the other failed ranks and waits (up to wait_s) until
  // they have printed too, so that no rank's exit ends the job before every message is out.
  void release_failed(const FailureVerdict& v, double wait_s);
  // After RankFailed: tells every rank that this one stopped (the failed ranks wait for it).
  void announce_stopped();

 private:
  // Waits for a non-blocking collective (an MPI_Request*) within timeout().
  void finish(void* request, const char* what);
  template <class Blocking, class Start>
  void run(const char* what, Blocking blocking, Start start);  // mpi_comm.cc only
  void watch();
  // Throws RankFailed once another rank has announced a failure (sticky: every later collective).
  void check_failure_notice();
  int failed_rank_ = -1;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread watchdog_;
  bool stop_ = false, in_region_ = false;
  std::string region_;
  std::chrono::steady_clock::time_point region_start_;
  int rank_ = 0, size_ = 1;
};

}  // namespace shardrec::dist
