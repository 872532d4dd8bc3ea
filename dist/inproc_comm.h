// In-process communicator: N ranks as N threads of one process, for tests (gloo-style harness).
// Collectives post pointers into a shared group and synchronise on a barrier that fails fast: when
// one rank throws, the others leave their barrier with an exception instead of hanging.
#pragma once
#include <functional>
#include <memory>

#include "dist/comm.h"

namespace shardrec::dist {

class InProcGroup;

class InProcComm final : public Comm {
 public:
  InProcComm(std::shared_ptr<InProcGroup> group, int rank);
  int rank() const override { return rank_; }
  int size() const override;
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

 private:
  std::shared_ptr<InProcGroup> group_;
  int rank_;
};

// Runs fn on `world` threads, each with its own communicator; rethrows the first failure.
void run_ranks(int world, const std::function<void(Comm&)>& fn);

}  // namespace shardrec::dist
