// NCCL collectives on device buffers, one GPU per rank. The NCCL unique id travels over a host
// communicator (MPI), so launchers need nothing NCCL-specific. The NCCL handle stays inside
// (pimpl): models and strategies see dist::Comm only (dist/cuda_comm.h routes device buffers here).
// Errors become shardrec::Error naming the rank; a collective that does not finish within the
// timeout (a peer died) aborts the communicator instead of hanging.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "dist/comm.h"

namespace shardrec::dist {

class NcclComm {
 public:
  // Collective over `host`: every rank calls it with its own device.
  NcclComm(Comm& host, int device, double timeout_seconds = 300);
  ~NcclComm();  // destroys the communicator, or aborts it after an error
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const;
  int size() const;
  // As Comm::alltoallv, on device buffers (grouped ncclSend/ncclRecv).
  void alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                 const size_t* recv_bytes, const size_t* recv_displs);
  void allreduce_sum(int64_t* device_data, size_t n);
  void allreduce_max(double* device_data, size_t n);
  void broadcast(void* device_data, size_t bytes, int root);
  // NCCL's version, for logs.
  static int version();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec::dist
