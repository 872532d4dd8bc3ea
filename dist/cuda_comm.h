// A communicator for device buffers: a collective called with Memory::kDevice goes over NCCL when
// the ranks have one (one GPU each), or is staged through pinned host memory over the host
// communicator (several ranks sharing one GPU, as the tests' thread ranks do); host buffers always
// take the host communicator (MPI or in-process). The caller says where its buffers live; nothing
// is probed. Counters count the collectives once (dist::Comm), whichever way they went.
#pragma once
#include <memory>

#include "dist/comm.h"
#include "dist/nccl_comm.h"

namespace shardrec::dist {

class CudaAwareComm final : public Comm {
 public:
  // nccl may be null (staging only). Both must outlive this object.
  CudaAwareComm(Comm& host, NcclComm* nccl);
  ~CudaAwareComm() override;
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  bool uses_nccl() const { return nccl_ != nullptr; }
  bool handles_device_memory() const override { return true; }
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
  void do_barrier() override { host_.barrier(); }

 public:

 private:
  struct Staging;
  Comm& host_;
  NcclComm* nccl_;
  std::unique_ptr<Staging> stage_;
};

}  // namespace shardrec::dist
