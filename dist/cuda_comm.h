// A communicator that picks the transport by where the buffer lives: device buffers go over NCCL
// when the ranks have one (one GPU each), or are staged through pinned host memory over the host
// communicator (several ranks sharing one GPU, as the tests' thread ranks do); host buffers always
// take the host communicator (MPI or in-process). Counters count the collectives once, whichever
// way they went.
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
  void alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                 const size_t* recv_bytes, const size_t* recv_displs) override;
  void alltoall_u64(const uint64_t* send, uint64_t* recv) override;
  void allreduce_sum(int64_t* data, size_t n) override;
  void allreduce_max(double* data, size_t n) override;
  void allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes) override;
  void allgather_u64(uint64_t value, uint64_t* recv) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void barrier() override { host_.barrier(); }

 private:
  struct Staging;
  Comm& host_;
  NcclComm* nccl_;
  std::unique_ptr<Staging> stage_;
};

}  // namespace shardrec::dist
