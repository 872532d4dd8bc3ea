// Where a phase's steps run. The trainer (core/trainer.h) decides what a phase is (its rows, its
// order's key, its draws, its strategy); an engine turns each step into a batch, routes it, and
// lets the strategy drive passes over it through StepOps (or MetaStepOps for Inverse Gradient).
// The CPU engine (core/cpu_engine.h) works for every model through core/model.h; a model's CUDA
// engine (Model::cuda_engine) keeps its rows on the GPU and the host tables in step with it on
// request. Both see the same batches: orders, draws and keys are pure functions of the seed.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/strategy.h"
#include "dist/exact_sum.h"

namespace shardrec {

struct PhaseRun {
  int epoch = 1;
  int phase = 0;
  int64_t rows = 0;    // the phase's rows over all ranks (m)
  int64_t first = 0;   // steps already done (a resumed phase)
  int64_t batch = 1;
  // This rank's rows of the phase: indices into its training slice (rising), with their index
  // among the phase's m rows (the permutation's argument); with whole_split instead every local
  // row, with index row_lo + row.
  bool whole_split = true;
  std::span<const uint32_t> local;
  std::span<const int64_t> index;
  uint64_t order_key = 0;    // the permutation's key
  bool dataset_order = false;  // step s holds dataset rows [s*B, (s+1)*B) instead (loss landscapes)
  int draws = 0;             // draw slots per sample
  bool meta = false;         // Inverse Gradient's meta phase
  Strategy* strategy = nullptr;
  dist::ExactSums* loss = nullptr;  // the phase's loss sums (2 slots)
  std::function<void(int, const dist::ExactSums&)> on_decision;  // IG decisions, in step order
  std::function<bool(int64_t)> after_step;  // true (on every rank alike): stop after this step
};

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  // Steps [first, S) of the phase; false when after_step stopped it.
  virtual bool run_phase(const PhaseRun& r) = 0;
  // The host tables hold the trained rows (after an epoch: evaluation, keep-best, export).
  virtual void to_host() {}
  // The whole training state (rows, optimizer state, step counters) down to the host tables,
  // which checkpoints read, and back up after a checkpoint was loaded there.
  virtual void state_to_host() {}
  virtual void state_from_host() {}
  // Fresh optimizer state for the tables (the reference IG's re-created Adam).
  virtual void reset_table_optimizers() {}
  // "" on the CPU; "cuda:0 (NVIDIA H100 80GB HBM3), nccl 22703" and the like.
  virtual std::string describe() const { return ""; }
};

}  // namespace shardrec
