// The GPU backend of MF and VBPR. Everything of a training step runs on this rank's
// GPU: the epoch order and the negatives (the CPU trainer's pure functions of the seed, so both
// backends see identical batches), routing, row exchange, forward/backward (VBPR's projection on
// cuBLAS; W and b stay host masters), gradient exchange and the fused optimizer update. The
// strategy (plain, Mirror Gradient) drives it through the same StepOps as on the CPU, so a second
// pass reuses the step's routing here too.
// Builds without CUDA get a backend whose create() fails with a clear message.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/mf_model.h"
#include "core/step_engine.h"
#include "core/strategy.h"
#include "dist/comm.h"
#include "dist/exact_sum.h"
#include "io/dataset.h"

namespace shardrec {

// "cpu", "cuda" or "auto" -> "cpu" or "cuda" (auto: cuda when this build has it and a GPU is visible).
std::string resolve_device(const std::string& requested);
// GPUs visible to this process (0 without a CUDA build).
int cuda_device_count();
// The GPU this rank uses: its node-local rank (from the launcher) modulo the visible GPUs.
int local_device_index(int rank);
// Ranks on this node according to the launcher (OpenMPI or SLURM), 0 when it does not say.
int local_rank_count();

// Evaluation's local step on this rank's GPU: for each of nu users (nu x dim, host), the top k of
// the ni items (ni x dim, host; global ids `ids`) by (score desc, id asc), skipping each user's
// excluded ids (CSR over the users, sorted within a user). Scores are bit-identical to
// kernels::dot, so the ranking equals the CPU's. Outputs nu x k; missing entries get id -1.
void gpu_score_topk(const float* users, size_t nu, const float* items, const int64_t* ids, size_t ni, int dim,
                    const std::vector<int64_t>& exclude_ptr, const std::vector<int64_t>& exclude_ids, int k,
                    float* top_score, int64_t* top_id);

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  // data: this rank's shard (its training rows go to the GPU once).
  static std::unique_ptr<GpuBackend> create(const TrainConfig& cfg, MFModel& model, const io::DataShard& data,
                                            dist::Comm& comm);
  // One epoch, entirely on the device: the epoch's order of this rank's rows (the seeded
  // permutation, sorted), then per step the batch (users, positives, rejection-sampled
  // negatives, order keys), and the strategy's passes over it. Sample losses are added to
  // loss_sum in sample order (the first pass of each step); a non-finite loss stops training
  // with the epoch, step, dataset row and rank named.
  // Steps before `first` are skipped (a resumed epoch: batches are pure functions of the seed,
  // epoch and step). after_step(s) runs on every rank after step s; when it returns true (on
  // every rank alike) the epoch stops there and train_epoch returns false.
  virtual bool train_epoch(int epoch, int64_t first, Strategy& strategy, dist::ExactSums& loss_sum,
                           const std::function<bool(int64_t)>& after_step) = 0;
  // Copies the trained rows back into the host tables (evaluation, export, early stopping).
  virtual void download(MFModel& model) = 0;
  // The whole training state (rows, optimizer state and step counters) down into the host
  // tables, which checkpoints read, and up from them after a checkpoint was loaded there.
  virtual void download_state(MFModel& model) = 0;
  virtual void upload_state(const MFModel& model) = 0;
  // "cuda:0 (NVIDIA H100 80GB HBM3), nccl 22703" and the like.
  virtual std::string describe() const = 0;
};

// MF/VBPR's CUDA step engine (core/step_engine.h) over GpuBackend; core/cuda_engines.cc.
std::unique_ptr<StepEngine> make_mf_cuda_engine(const TrainConfig& cfg, MFModel& model, const io::DataShard& data,
                                                dist::Comm& comm);

}  // namespace shardrec
