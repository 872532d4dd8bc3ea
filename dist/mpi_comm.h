// MPI communicator. MpiEnv owns MPI_Init/MPI_Finalize for a process; MpiComm owns a duplicate of
// the world communicator. The MPI handle stays in the .cc file.
#pragma once
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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

 private:
  // Waits for a non-blocking collective (an MPI_Request*) within timeout().
  void finish(void* request, const char* what);
  template <class Blocking, class Start>
  void run(const char* what, Blocking blocking, Start start);  // mpi_comm.cc only
  void watch();
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
