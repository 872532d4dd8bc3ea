#include "core/gpu_context.h"

#include <cstdlib>

#include "core/gpu_backend.h"

namespace shardrec {

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
}  // namespace

GpuContext::GpuContext(const std::string& gpu_comm, dist::Comm& host)
    : device_(local_device_index(host.rank())), host_(host) {
  SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
  stream_ = std::make_unique<shardrec::cuda::Stream>();
  // NCCL wants one GPU per rank.
  const int local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("SLURM_NTASKS_PER_NODE", 0));
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
