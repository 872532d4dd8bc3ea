#include "dist/cuda_comm.h"

#include <cuda_runtime.h>

#include "base/cuda_util.h"

namespace shardrec::dist {

struct CudaAwareComm::Staging {
  shardrec::cuda::PinnedBuffer<char> send, recv;
};

CudaAwareComm::CudaAwareComm(Comm& host, NcclComm* nccl)
    : host_(host), nccl_(nccl), stage_(std::make_unique<Staging>()) {}
CudaAwareComm::~CudaAwareComm() = default;

// Device buffers (mem == kDevice) go over NCCL when every rank has its own GPU, else they are
// staged through pinned host memory; host buffers always take the host communicator.
void CudaAwareComm::do_alltoallv(const void* send, const size_t* sb, const size_t* sd, void* recv, const size_t* rb,
                                 const size_t* rd, Memory mem) {
  if (mem == Memory::kHost) return host_.alltoallv(send, sb, sd, recv, rb, rd);
  if (nccl_) return nccl_->alltoallv(send, sb, sd, recv, rb, rd);
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < size(); ++k) {
    stotal = std::max(stotal, sd[k] + sb[k]);
    rtotal = std::max(rtotal, rd[k] + rb[k]);
  }
  char* hs = stage_->send.get(stotal);
  char* hr = stage_->recv.get(rtotal);
  if (stotal) SHARDREC_CUDA_CHECK(cudaMemcpy(hs, send, stotal, cudaMemcpyDeviceToHost));
  host_.alltoallv(hs, sb, sd, hr, rb, rd);
  if (rtotal) SHARDREC_CUDA_CHECK(cudaMemcpy(recv, hr, rtotal, cudaMemcpyHostToDevice));
}

void CudaAwareComm::do_alltoall_u64(const uint64_t* send, uint64_t* recv) { host_.alltoall_u64(send, recv); }

namespace {
// An allreduce of n values of T on the device through a host buffer.
template <class T, class Fn>
void staged(T* data, size_t n, char* host, Fn&& reduce) {
  T* h = reinterpret_cast<T*>(host);
  SHARDREC_CUDA_CHECK(cudaMemcpy(h, data, n * sizeof(T), cudaMemcpyDeviceToHost));
  reduce(h);
  SHARDREC_CUDA_CHECK(cudaMemcpy(data, h, n * sizeof(T), cudaMemcpyHostToDevice));
}
}  // namespace

void CudaAwareComm::do_allreduce_sum(int64_t* data, size_t n, Memory mem) {
  if (mem == Memory::kHost) return host_.allreduce_sum(data, n);
  if (nccl_) return nccl_->allreduce_sum(data, n);
  staged(data, n, stage_->send.get(n * sizeof(int64_t)), [&](int64_t* h) { host_.allreduce_sum(h, n); });
}

void CudaAwareComm::do_allreduce_max(double* data, size_t n, Memory mem) {
  if (mem == Memory::kHost) return host_.allreduce_max(data, n);
  if (nccl_) return nccl_->allreduce_max(data, n);
  staged(data, n, stage_->send.get(n * sizeof(double)), [&](double* h) { host_.allreduce_max(h, n); });
}

void CudaAwareComm::do_allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes,
                                  Memory mem) {
  // Evaluation-sized traffic: device buffers are staged (NCCL's all-gather wants equal sizes).
  if (mem == Memory::kHost) return host_.allgatherv(send, send_bytes, recv, recv_bytes);
  size_t total = 0;
  for (int k = 0; k < size(); ++k) total += recv_bytes[k];
  char* hs = stage_->send.get(send_bytes);
  char* hr = stage_->recv.get(total);
  if (send_bytes) SHARDREC_CUDA_CHECK(cudaMemcpy(hs, send, send_bytes, cudaMemcpyDeviceToHost));
  host_.allgatherv(hs, send_bytes, hr, recv_bytes);
  if (total) SHARDREC_CUDA_CHECK(cudaMemcpy(recv, hr, total, cudaMemcpyHostToDevice));
}

void CudaAwareComm::do_allgather_u64(uint64_t value, uint64_t* recv) { host_.allgather_u64(value, recv); }

void CudaAwareComm::do_broadcast(void* data, size_t bytes, int root, Memory mem) {
  if (mem == Memory::kHost) return host_.broadcast(data, bytes, root);
  if (nccl_) return nccl_->broadcast(data, bytes, root);
  char* h = stage_->send.get(bytes);
  SHARDREC_CUDA_CHECK(cudaMemcpy(h, data, bytes, cudaMemcpyDeviceToHost));
  host_.broadcast(h, bytes, root);
  SHARDREC_CUDA_CHECK(cudaMemcpy(data, h, bytes, cudaMemcpyHostToDevice));
}

}  // namespace shardrec::dist
