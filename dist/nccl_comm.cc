#include "dist/nccl_comm.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/cuda_util.h"

namespace shardrec::dist {

struct NcclComm::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int rank = 0, size = 1, device = 0;
  double timeout = 300;
  bool broken = false;

  [[noreturn]] void failed(const std::string& what, ncclResult_t r) {
    broken = true;
    fail("NCCL error on rank " + std::to_string(rank) + " (device " + std::to_string(device) + ") in " + what +
         ": " + ncclGetErrorString(r) + (r == ncclRemoteError || r == ncclSystemError
                                             ? " (a peer rank may have failed)" : ""));
  }
  void check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess && r != ncclInProgress) failed(what, r);
  }
  // Waits for the stream while polling NCCL's asynchronous error state; a peer that died leaves
  // the collective pending forever, so the wait is bounded.
  void wait(const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t e = cudaStreamQuery(stream);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) shardrec::cuda::cuda_fail(e, what, __FILE__, __LINE__);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress) failed(what, async);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (waited > timeout) {
        broken = true;
        fail("NCCL " + std::string(what) + " on rank " + std::to_string(rank) + " did not finish within " +
             std::to_string(static_cast<int>(timeout)) + " s; a peer rank has probably failed");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
};

NcclComm::NcclComm(Comm& host, int device, double timeout_seconds) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.rank = host.rank();
  m.size = host.size();
  m.device = device;
  m.timeout = timeout_seconds;
  SHARDREC_CUDA_CHECK(cudaSetDevice(device));
  ncclUniqueId id{};
  if (m.rank == 0) m.check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  host.broadcast(&id, sizeof id, 0);
  m.check(ncclCommInitRank(&m.comm, m.size, id, m.rank), "ncclCommInitRank");
  SHARDREC_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
}

NcclComm::~NcclComm() {
  if (!impl_) return;
  if (impl_->comm) {
    if (impl_->broken) ncclCommAbort(impl_->comm);
    else ncclCommDestroy(impl_->comm);
  }
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

int NcclComm::rank() const { return impl_->rank; }
int NcclComm::size() const { return impl_->size; }
int NcclComm::version() {
  int v = 0;
  ncclGetVersion(&v);
  return v;
}

void NcclComm::alltoallv(const void* send, const size_t* send_bytes, const size_t* send_displs, void* recv,
                         const size_t* recv_bytes, const size_t* recv_displs) {
  Impl& m = *impl_;
  m.check(ncclGroupStart(), "ncclGroupStart");
  for (int k = 0; k < m.size; ++k) {
    if (send_bytes[k])
      m.check(ncclSend(static_cast<const char*>(send) + send_displs[k], send_bytes[k], ncclChar, k, m.comm, m.stream),
              "ncclSend");
    if (recv_bytes[k])
      m.check(ncclRecv(static_cast<char*>(recv) + recv_displs[k], recv_bytes[k], ncclChar, k, m.comm, m.stream),
              "ncclRecv");
  }
  m.check(ncclGroupEnd(), "ncclGroupEnd (all-to-all-v)");
  m.wait("all-to-all-v");
}

void NcclComm::allreduce_sum(int64_t* d, size_t n) {
  Impl& m = *impl_;
  m.check(ncclAllReduce(d, d, n, ncclInt64, ncclSum, m.comm, m.stream), "ncclAllReduce");
  m.wait("all-reduce");
}

void NcclComm::allreduce_max(double* d, size_t n) {
  Impl& m = *impl_;
  m.check(ncclAllReduce(d, d, n, ncclFloat64, ncclMax, m.comm, m.stream), "ncclAllReduce");
  m.wait("all-reduce");
}

void NcclComm::broadcast(void* d, size_t bytes, int root) {
  Impl& m = *impl_;
  m.check(ncclBroadcast(d, d, bytes, ncclChar, root, m.comm, m.stream), "ncclBroadcast");
  m.wait("broadcast");
}

}  // namespace shardrec::dist
