// The training loop. Every step is a global batch of `batch` samples drawn from a per-epoch
// permutation of all training rows (a seeded Feistel permutation, evaluated pointwise, so no rank
// needs the whole data). A sample is processed by the rank that owns its user, which holds the
// user's rows; negatives come from a counter RNG keyed by (seed, epoch, dataset row, k); gradient
// contributions are reduced at the owners in global sample order. Result: for a given config and
// seed, the final parameters are bitwise identical for any number of ranks.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/epoch_order.h"
#include "core/evaluator.h"
#include "core/gpu_backend.h"
#include "core/model.h"
#include "base/scratch.h"
#include "core/strategy.h"
#include "dist/comm.h"
#include "dist/exact_sum.h"
#include "io/dataset.h"

namespace shardrec {

struct EpochLog {
  int epoch = 0;
  double loss = 0;           // mean training loss per (positive, negative) term
  double seconds = 0;        // wall time of the epoch's training steps
  double samples_per_s = 0;  // positives per second, all ranks together
  double eta_seconds = 0;    // estimated time left at the current pace (max epochs)
  bool validated = false;
  EvalResult valid;
  bool improved = false;
};

// Where training stands between two steps, besides the parameters and optimizer state: what a
// checkpoint holds so that a resumed run continues bitwise like an uninterrupted one
// (io/checkpoint.h). Sampling is a pure function of (seed, epoch, step), so no RNG state is kept.
struct TrainProgress {
  int epoch = 1;             // the epoch in progress
  int64_t step = 0;          // its steps already done
  int epochs_done = 0;       // completed (and logged) epochs
  // Early stopping.
  double best = 0;           // best validation value so far (+-inf before the first)
  int since_best = 0;        // validations since it improved
  int best_epoch = 0;
  double best_valid = 0;
  bool has_best = false;     // best_* hold the best validated parameters (keep_best)
  ParamCopy best_params;     // this rank's part of the best validated parameters
  double elapsed = 0;        // seconds of the completed epochs (for the ETA only)
};

struct FitResult {
  std::vector<EpochLog> epochs;  // the epochs run by this call (a resumed run: those after the resume)
  int best_epoch = 0;  // epoch whose parameters the model holds at the end (0 = initial)
  double best_valid = 0;
  bool stopped_early = false;
  bool interrupted = false;  // the step hook asked to stop (e.g. checkpoint before a time limit)
};

// The epoch loop both trainers run (Trainer, PointwiseTrainer): from p.epoch to cfg.epochs, train
// an epoch and time it (slowest rank), stop when the step hook asked, validate every eval_every
// epochs with early stopping (its state lives in p, so checkpoints carry it), log, and at the end
// restore the kept best parameters. The hooks are the trainer's own parts.
struct FitHooks {
  std::function<double(int)> train_epoch;  // one epoch; the host parameters are current after it
  std::function<bool()> stopped;           // the step hook stopped training during the epoch
  std::function<EvalResult()> validate;    // metrics of the valid split, identical on every rank
  std::function<void()> keep_best;         // copy this rank's parameters into p's best_*
  std::function<void()> restore_best;      // and back
};
bool higher_is_better(const std::string& metric);
FitResult run_fit(const TrainConfig& cfg, TrainProgress& p, dist::Comm& comm, int64_t num_train, const FitHooks& hooks,
                  const std::function<void(const EpochLog&)>& on_epoch);

class Trainer {
 public:
  Trainer(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm);
  // Runs the epochs; on_epoch is called on every rank after each epoch.
  FitResult fit(const std::function<void(const EpochLog&)>& on_epoch = {});
  // One epoch of training steps; returns the mean loss.
  double train_epoch(int epoch);
  // The mean training loss at the current parameters, without changing them: every training row
  // once, in dataset order, with a fixed set of negatives (those of "epoch 0"). For loss
  // landscapes and sharpness (core/landscape.h).
  double training_loss();
  // Replaces the strategy built from the config (tests use this to compare step algebra).
  void set_strategy(std::unique_ptr<Strategy> s) { strategy_ = std::move(s); }
  MFModel& model() { return model_; }
  const MFModel& model() const { return model_; }
  const TrainConfig& config() const { return cfg_; }
  const io::DatasetInfo& data_info() const { return data_.info; }
  int64_t steps_per_epoch() const;
  // Progress for checkpoints; the epoch's loss sum so far is this rank's part (see ExactSums).
  TrainProgress& progress() { return prog_; }
  dist::ExactSums& epoch_loss() { return epoch_loss_; }
  // Steps done since the start of training: (epoch - 1) * steps_per_epoch + step.
  int64_t global_step() const { return (prog_.epoch - 1) * steps_per_epoch() + prog_.step; }
  // Called on every rank after every training step (progress() already counts it); returning
  // true on all ranks (the hook must agree across ranks) ends fit() with interrupted set.
  void set_step_hook(std::function<bool(Trainer&)> hook) { step_hook_ = std::move(hook); }
  // The k-th negative of dataset row `global_row` in `epoch`: uniform over the items not in
  // `seen` (the user's sorted training items); a pure function of its arguments and the seed.
  int64_t sample_negative(int epoch, int64_t global_row, int k, std::span<const int32_t> seen) const;
  // The GPU this trainer runs on ("" on the CPU backend).
  std::string device_name() const;
  // The GPU backend trains on the device's copy of the state; checkpoints read and restore the
  // host tables. These copy the whole state (rows, optimizer state, step counters) down to the
  // host tables and back up; no-ops on the CPU backend. io/checkpoint.cc calls them.
  void sync_state_to_host();
  void sync_state_to_device();

 private:
  void train_step(int epoch, int64_t step, const LocalSample* s, size_t n, int64_t global_n,
                  dist::ExactSums& loss_sum);
  // The end of an epoch on either backend: progress to the next epoch, the mean loss (collective).
  double finish_epoch(int epoch);

  TrainConfig cfg_;
  const io::DataShard& data_;
  dist::Comm& comm_;
  MFModel model_;
  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<GpuBackend> gpu_;  // set with --device cuda; the host rows follow after each epoch
  int64_t num_train_ = 0;
  // Per-step buffers, reused.
  std::vector<int64_t> uid_, iid_;
  std::vector<uint64_t> ukey_, ikey_;
  Scratch<float> U_, I_, gU_, gI_, F_, Q_, gQ_;
  std::unique_ptr<dist::ExactGradientSum> gW_sum_, gb_sum_;  // VBPR's projection
  TrainProgress prog_;
  dist::ExactSums epoch_loss_{1, 24};
  std::function<bool(Trainer&)> step_hook_;
  bool stop_requested_ = false;
  mutable int neg_epoch_ = -1;  // cached key of the negative sampler's epoch
  mutable uint64_t neg_base_ = 0;
};

}  // namespace shardrec
