// One rank's GPU and its communicator for device buffers, as every GPU trainer sets them up: the
// node-local rank picks the device; exchanges go over NCCL when each rank of the node has a GPU of
// its own, and are staged through the host communicator when ranks share one (the tests' thread
// ranks, or more ranks than GPUs). CUDA builds only.
#pragma once
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "core/config.h"
#include "dist/comm.h"
#include "dist/cuda_comm.h"
#include "dist/nccl_comm.h"
#include "base/cuda_util.h"

namespace shardrec {

class GpuContext {
 public:
  // gpu_comm: "auto", "nccl" or "host" (TrainConfig::gpu_comm). A collective over host when NCCL is used.
  GpuContext(const std::string& gpu_comm, dist::Comm& host);
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_->get(); }
  void sync() const { stream_->sync(); }
  dist::Comm& comm() { return *comm_; }  // device and host buffers
  dist::Comm& host() { return host_; }
  // "cuda:0 (NVIDIA H100 80GB HBM3), nccl 22703" and the like.
  const std::string& describe() const { return name_; }

 private:
  int device_;
  dist::Comm& host_;
  std::unique_ptr<shardrec::cuda::Stream> stream_;
  std::unique_ptr<dist::NcclComm> nccl_;
  std::unique_ptr<dist::CudaAwareComm> comm_;
  std::string name_;
};

}  // namespace shardrec
