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

void CudaAwareComm::alltoallv(const void* send, const size_t* sb, const size_t* sd, void* recv,
                              const size_t* rb, const size_t* rd) {
  const int n = size();
  size_t stotal = 0, rtotal = 0;
  for (int k = 0; k < n; ++k) {
    stotal = std::max(stotal, sd[k] + sb[k]);
    rtotal = std::max(rtotal, rd[k] + rb[k]);
    stats_.alltoallv_bytes_sent += sb[k];
  }
  ++stats_.alltoallv_calls;
  const bool dev = shardrec::cuda::is_device_pointer(send) || shardrec::cuda::is_device_pointer(recv);
  if (!dev) return host_.alltoallv(send, sb, sd, recv, rb, rd);
  if (nccl_) return nccl_->alltoallv(send, sb, sd, recv, rb, rd);
  char* hs = stage_->send.get(stotal);
  char* hr = stage_->recv.get(rtotal);
  if (stotal) SHARDREC_CUDA_CHECK(cudaMemcpy(hs, send, stotal, cudaMemcpyDeviceToHost));
  host_.alltoallv(hs, sb, sd, hr, rb, rd);
  if (rtotal) SHARDREC_CUDA_CHECK(cudaMemcpy(recv, hr, rtotal, cudaMemcpyHostToDevice));
}

void CudaAwareComm::alltoall_u64(const uint64_t* send, uint64_t* recv) {
  ++stats_.alltoall_calls;
  host_.alltoall_u64(send, recv);
}

void CudaAwareComm::allreduce_sum(int64_t* data, size_t n) {
  ++stats_.allreduce_calls;
  stats_.allreduce_bytes += n * sizeof(int64_t);
  if (!shardrec::cuda::is_device_pointer(data)) return host_.allreduce_sum(data, n);
  if (nccl_) return nccl_->allreduce_sum(data, n);
  int64_t* h = reinterpret_cast<int64_t*>(stage_->send.get(n * sizeof(int64_t)));
  SHARDREC_CUDA_CHECK(cudaMemcpy(h, data, n * sizeof(int64_t), cudaMemcpyDeviceToHost));
  host_.allreduce_sum(h, n);
  SHARDREC_CUDA_CHECK(cudaMemcpy(data, h, n * sizeof(int64_t), cudaMemcpyHostToDevice));
}

void CudaAwareComm::allreduce_max(double* data, size_t n) {
  ++stats_.allreduce_calls;
  stats_.allreduce_bytes += n * sizeof(double);
  if (!shardrec::cuda::is_device_pointer(data)) return host_.allreduce_max(data, n);
  if (nccl_) return nccl_->allreduce_max(data, n);
  double* h = reinterpret_cast<double*>(stage_->send.get(n * sizeof(double)));
  SHARDREC_CUDA_CHECK(cudaMemcpy(h, data, n * sizeof(double), cudaMemcpyDeviceToHost));
  host_.allreduce_max(h, n);
  SHARDREC_CUDA_CHECK(cudaMemcpy(data, h, n * sizeof(double), cudaMemcpyHostToDevice));
}

void CudaAwareComm::allgatherv(const void* send, size_t send_bytes, void* recv, const size_t* recv_bytes) {
  ++stats_.allgather_calls;
  // Evaluation-sized traffic: device buffers are staged (NCCL's all-gather wants equal sizes).
  const bool dev = shardrec::cuda::is_device_pointer(send) || shardrec::cuda::is_device_pointer(recv);
  if (!dev) return host_.allgatherv(send, send_bytes, recv, recv_bytes);
  size_t total = 0;
  for (int k = 0; k < size(); ++k) total += recv_bytes[k];
  char* hs = stage_->send.get(send_bytes);
  char* hr = stage_->recv.get(total);
  if (send_bytes) SHARDREC_CUDA_CHECK(cudaMemcpy(hs, send, send_bytes, cudaMemcpyDeviceToHost));
  host_.allgatherv(hs, send_bytes, hr, recv_bytes);
  if (total) SHARDREC_CUDA_CHECK(cudaMemcpy(recv, hr, total, cudaMemcpyHostToDevice));
}

void CudaAwareComm::allgather_u64(uint64_t value, uint64_t* recv) {
  ++stats_.allgather_calls;
  host_.allgather_u64(value, recv);
}

void CudaAwareComm::broadcast(void* data, size_t bytes, int root) {
  ++stats_.bcast_calls;
  if (!shardrec::cuda::is_device_pointer(data)) return host_.broadcast(data, bytes, root);
  if (nccl_) return nccl_->broadcast(data, bytes, root);
  char* h = stage_->send.get(bytes);
  SHARDREC_CUDA_CHECK(cudaMemcpy(h, data, bytes, cudaMemcpyDeviceToHost));
  host_.broadcast(h, bytes, root);
  SHARDREC_CUDA_CHECK(cudaMemcpy(data, h, bytes, cudaMemcpyHostToDevice));
}

}  // namespace shardrec::dist
