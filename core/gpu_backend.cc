#include "core/gpu_backend.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "dist/cuda_comm.h"
#include "dist/device_embedding.h"
#include "dist/nccl_comm.h"
#include "kernels/cuda_util.h"
#include "kernels/sparse_ops.h"

namespace shardrec {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string resolve_device(const std::string& requested) {
  if (requested == "cpu") return "cpu";
  if (requested == "auto") return cuda_device_count() > 0 ? "cuda" : "cpu";
  if (requested == "cuda") {
    if (cuda_device_count() == 0) {
      int n = 0;
      const cudaError_t e = cudaGetDeviceCount(&n);
      fail(std::string("option --device cuda: no GPU is visible to this process (") +
           (e == cudaSuccess ? "0 devices" : cudaGetErrorString(e)) + "); use --device cpu or auto");
    }
    return "cuda";
  }
  fail("option --device: '" + requested + "' (expected cpu, cuda or auto)");
}

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}
}  // namespace

int local_device_index(int rank) {
  const int n = cuda_device_count();
  if (n == 0) return 0;
  int local = env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("SLURM_LOCALID", env_int("MPI_LOCALRANKID", rank)));
  return local % n;
}

namespace {

namespace kc = shardrec::kernels::cuda;
using shardrec::cuda::DeviceBuffer;

class CudaBackend final : public GpuBackend {
 public:
  CudaBackend(const TrainConfig& cfg, MFModel& model, dist::Comm& host)
      : cfg_(cfg), device_(local_device_index(host.rank())) {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    stream_ = std::make_unique<shardrec::cuda::Stream>();
    // NCCL wants one GPU per rank. Ranks that share a GPU (the tests' thread ranks, or more ranks
    // than GPUs on a node) stage device buffers through the host communicator instead.
    const int local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("SLURM_NTASKS_PER_NODE", 0));
    bool nccl = false;
    if (cfg.gpu_comm == "nccl") nccl = true;
    else if (cfg.gpu_comm == "auto") nccl = host.size() > 1 && local_size > 0 && local_size <= cuda_device_count();
    if (nccl) nccl_ = std::make_unique<dist::NcclComm>(host, device_);
    comm_ = std::make_unique<dist::CudaAwareComm>(host, nccl_.get());
    user_ = std::make_unique<dist::DeviceEmbedding>(model.user, stream_->get());
    item_ = std::make_unique<dist::DeviceEmbedding>(model.item, stream_->get());
    cudaDeviceProp prop{};
    SHARDREC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = "cuda:" + std::to_string(device_) + " (" + prop.name + "), " +
            (nccl_ ? "nccl " + std::to_string(dist::NcclComm::version()) : std::string("host-staged exchange"));
  }

  void step(Strategy& strategy, int64_t step, const Batch& b, const LossFn& losses) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    cudaStream_t st = stream_->get();
    const int negs = cfg_.negatives, per = 1 + negs, d = user_->dim();
    const size_t n = b.n, ni = n * per, n1 = std::max<size_t>(n, 1), ni1 = std::max<size_t>(ni, 1);
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(uid_.get(n1), b.uid, n * sizeof(int64_t), cudaMemcpyHostToDevice, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(iid_.get(ni1), b.iid, ni * sizeof(int64_t), cudaMemcpyHostToDevice, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(ukey_.get(n1), b.ukey, n * sizeof(uint64_t), cudaMemcpyHostToDevice, st));
    SHARDREC_CUDA_CHECK(cudaMemcpyAsync(ikey_.get(ni1), b.ikey, ni * sizeof(uint64_t), cudaMemcpyHostToDevice, st));
    // A sample runs on its user's owner: user rows never travel.
    user_->route(*comm_, uid_.data(), n, /*local_only=*/true, ur_);
    item_->route(*comm_, iid_.data(), ni, /*local_only=*/false, ir_);
    float* U = U_.get(n1 * d);
    float* I = I_.get(ni1 * d);
    float* gU = gU_.get(n1 * d);
    float* gI = gI_.get(ni1 * d);
    double* loss = loss_.get(n1);
    double* loss_h = loss_h_.get(n1);
    const bool bpr = cfg_.loss == "bpr";

    struct Ops final : StepOps {
      std::function<void(float, bool)> fb;
      std::function<void()> ap;
      void forward_backward(float scale, bool record) override { fb(scale, record); }
      void apply() override { ap(); }
    } ops;
    ops.fb = [&](float scale, bool record) {
      user_->gather(*comm_, ur_, U);
      item_->gather(*comm_, ir_, I);
      kc::MfParams p;
      p.dim = d;
      p.per = per;
      p.negs = negs;
      p.bpr = bpr;
      // The same floats as the CPU step (Trainer::train_step).
      p.inv = scale / static_cast<float>(b.global_n * (bpr ? negs : per));
      p.reg = scale * cfg_.l2 / static_cast<float>(b.global_n);
      p.l2 = cfg_.l2;
      kc::mf_forward_backward(U, I, n, p, gU, gI, loss, st);
      SHARDREC_CUDA_CHECK(cudaMemcpyAsync(loss_h, loss, n * sizeof(double), cudaMemcpyDeviceToHost, st));
      SHARDREC_CUDA_CHECK(cudaStreamSynchronize(st));
      losses(loss_h, record);
    };
    ops.ap = [&] {
      user_->apply(*comm_, ur_, ukey_.data(), gU);
      item_->apply(*comm_, ir_, ikey_.data(), gI);
    };
    strategy.step(step, ops);
  }

  void download(MFModel& model) override {
    SHARDREC_CUDA_CHECK(cudaSetDevice(device_));
    user_->download(model.user);
    item_->download(model.item);
  }

  std::string describe() const override { return name_; }

 private:
  TrainConfig cfg_;
  int device_;
  std::string name_;
  std::unique_ptr<shardrec::cuda::Stream> stream_;
  std::unique_ptr<dist::NcclComm> nccl_;
  std::unique_ptr<dist::CudaAwareComm> comm_;
  std::unique_ptr<dist::DeviceEmbedding> user_, item_;
  dist::DeviceRouting ur_, ir_;
  DeviceBuffer<int64_t> uid_, iid_;
  DeviceBuffer<uint64_t> ukey_, ikey_;
  DeviceBuffer<float> U_, I_, gU_, gI_;
  DeviceBuffer<double> loss_;
  shardrec::cuda::PinnedBuffer<double> loss_h_;
};

}  // namespace

std::unique_ptr<GpuBackend> GpuBackend::create(const TrainConfig& cfg, MFModel& model, dist::Comm& comm) {
  resolve_device("cuda");
  if (model.vbpr())
    fail("option --device cuda: model vbpr is not on the GPU backend yet (its projection needs the dense "
         "kernels); use --device cpu");
  return std::make_unique<CudaBackend>(cfg, model, comm);
}

}  // namespace shardrec
