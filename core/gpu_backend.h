// The GPU backend of the trainer. The host still draws the batch (the epoch permutation and the
// negatives are pure functions of the seed, shared with the CPU backend); everything after that
// (routing, row exchange, forward/backward, gradient exchange, the fused optimizer update) runs on
// this rank's GPU. The strategy (plain, Mirror Gradient) drives it through the same StepOps as on
// the CPU, so a second pass reuses the step's routing here too.
// Builds without CUDA get a backend whose create() fails with a clear message.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/model.h"
#include "core/strategy.h"
#include "dist/comm.h"

namespace shardrec {

// "cpu", "cuda" or "auto" -> "cpu" or "cuda" (auto: cuda when this build has it and a GPU is visible).
std::string resolve_device(const std::string& requested);
// GPUs visible to this process (0 without a CUDA build).
int cuda_device_count();
// The GPU this rank uses: its node-local rank (from the launcher) modulo the visible GPUs.
int local_device_index(int rank);

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  static std::unique_ptr<GpuBackend> create(const TrainConfig& cfg, MFModel& model, dist::Comm& comm);

  struct Batch {
    const int64_t* uid = nullptr;   // n users (this rank's samples)
    const int64_t* iid = nullptr;   // n x (1 + negatives) items, positive first
    const uint64_t* ukey = nullptr;  // order keys, as the CPU step's
    const uint64_t* ikey = nullptr;
    size_t n = 0;
    int64_t global_n = 0;           // samples in the global batch
  };
  // losses(per-sample losses of one pass, record): called after every forward pass, on the host.
  using LossFn = std::function<void(const double* losses, bool record)>;
  virtual void step(Strategy& strategy, int64_t step, const Batch& batch, const LossFn& losses) = 0;
  // Copies the trained rows back into the host tables (evaluation, export, early stopping).
  virtual void download(MFModel& model) = 0;
  // "cuda:0 (NVIDIA H100 80GB HBM3), nccl" and the like.
  virtual std::string describe() const = 0;
};

}  // namespace shardrec
