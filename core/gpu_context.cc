#include "core/gpu_context.h"

#include "core/gpu_backend.h"

namespace shardrec {

GpuContext::GpuContext(const std::string& gpu_comm, dist::Comm& host)
    : device_(local_device_index(host.rank())), host_(host) {
  SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
  stream_ = std::make_unique<shardrec::cuda::Stream>();
  // NCCL wants one GPU per rank.
  const int local_size = local_rank_count();
  bool nccl = false;
  if (gpu_comm == "nccl") nccl = true;
  else if (gpu_comm == "auto") nccl = host.size() > 1 && local_size > 0 && local_size <= cuda_device_count();
  if (nccl) nccl_ = std::make_unique<dist::NcclComm>(host, device_);
  comm_ = std::make_unique<dist::CudaAwareComm>(host, nccl_.get());
  cudaDeviceProp prop{};
  SHARDREC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  name_ = "cuda:" + std::to_string(device_) + " (" + prop.name + "), " +
          (nccl_ ? "nccl " + std::to_string(dist::NcclComm::version()) : std::string("host-staged exchange"));
}

}  // namespace shardrec
