// The trainer: one fit loop for every model (core/model.h) on either device (core/step_engine.h).
//
// Data order. An epoch is one or two phases; each phase is a pass over its rows in a seeded
// per-epoch permutation (core/epoch_order.h, evaluated pointwise, so no rank needs the whole data),
// in global batches of `batch` rows. A row is processed by the rank that owns its user, which holds
// the user's rows. Each row gets the model's draw slots (negatives or unlabeled items) from a
// counter RNG keyed by (seed, epoch, dataset row, k). Gradient contributions reduce at the rows'
// owners in global sample order (order keys), dense gradients sum exactly in fixed point. Hence,
// for a given config and seed, the parameters are bitwise identical for any number of ranks.
//
// Phases. Without Inverse Gradient an epoch is one phase over all training rows with the
// configured strategy (plain, Mirror Gradient). With strategy ig (WSDM 2024) the labeled rows are
// split once, by a seeded permutation, into training-train (ig_train_ratio) and training-test;
// each epoch trains on training-train with plain steps, then takes one meta-step
// (core/inverse_gradient.h) per training-test batch.
//
// The loop around the phases: validation every eval_every epochs with early stopping, keeping the
// best parameters, the epoch log, and a step hook (checkpoints) after every step; its state lives
// in TrainProgress, so a checkpoint resumes bitwise like an uninterrupted run.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/evaluator.h"
#include "core/model.h"
#include "core/model_state.h"
#include "core/sampler.h"
#include "core/step_engine.h"
#include "core/strategy.h"
#include "dist/comm.h"
#include "dist/exact_sum.h"
#include "io/dataset.h"

namespace shardrec {

struct EpochLog {
  int epoch = 0;
  double loss = 0;           // mean recorded training loss (per loss term of the model)
  double seconds = 0;        // wall time of the epoch's training steps
  double samples_per_s = 0;  // training rows per second, all ranks together
  double eta_seconds = 0;    // estimated time left at the current pace (max epochs)
  bool validated = false;
  EvalResult valid;
  bool improved = false;
};

// What the Inverse Gradient meta-steps decided, for logs and tests. Identical on every rank.
struct IgStats {
  int64_t forward = 0, inverse = 0, mid = 0;
  std::vector<uint8_t> decisions;  // 0 mid, 1 forward, 2 inverse, in step order (all epochs)
};

// Where training stands between two steps, besides the parameters and optimizer state: what a
// checkpoint holds so that a resumed run continues bitwise like an uninterrupted one. Sampling is
// a pure function of (seed, epoch, step), so no RNG state is kept.
struct TrainProgress {
  int epoch = 1;        // the epoch in progress
  int phase = 0;        // its phase in progress (1: Inverse Gradient's meta phase)
  int64_t step = 0;     // the phase's steps already done
  int epochs_done = 0;  // completed (and logged) epochs
  dist::ExactSums phase_loss{2, 24};  // the phase's loss sums so far: this rank's part
  double epoch_sum = 0;               // the finished phases' recorded losses and rows
  int64_t epoch_terms = 0;
  // Early stopping.
  double best = 0;  // best validation value so far (+-inf before the first)
  int since_best = 0;
  int best_epoch = 0;
  double best_valid = 0;
  bool has_best = false;  // best_params holds the best validated parameters (keep_best)
  ParamCopy best_params;  // this rank's part of them
  double elapsed = 0;     // seconds of the completed epochs (for the ETA only)
};

// Where an epoch stands, for progress lines between the epoch lines (set_progress).
struct StepProgress {
  int epoch = 0;
  int phase = 0;
  int64_t step = 0, steps = 0;  // the phase's steps done, of steps
  double seconds = 0;           // since the phase (or its resumed part) began
  double samples_per_s = 0;     // rows of all ranks per second in it
  double eta_seconds = 0;       // the phase's time left at that pace
};

struct FitResult {
  std::vector<EpochLog> epochs;  // the epochs run by this call (a resumed run: those after the resume)
  int best_epoch = 0;  // epoch whose parameters the model holds at the end (0 = initial)
  double best_valid = 0;
  bool stopped_early = false;
  bool interrupted = false;  // the step hook asked to stop (e.g. checkpoint before a time limit)
};

bool higher_is_better(const std::string& metric);

class Trainer {
 public:
  Trainer(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm);
  ~Trainer();
  // Runs the epochs; on_epoch is called on every rank after each epoch.
  FitResult fit(const std::function<void(const EpochLog&)>& on_epoch = {});
  // One epoch (from progress(), when a resume left it inside this epoch); returns the mean
  // recorded loss, or 0 when the step hook stopped training. The host tables are current after it.
  double train_epoch(int epoch);
  // The mean training loss at the current parameters, without changing them: every training row
  // once, in dataset order, with the draws of "epoch 0". For loss landscapes (core/landscape.h).
  double training_loss();
  // Metrics of split 1 (valid) or 2 (test), identical on every rank.
  EvalResult evaluate(int split) { return model_->evaluate(data_, split, cfg_, comm_); }
  // Where evaluate's full ranking reports its blocks (base/log.h; null: nowhere).
  void set_eval_progress(Progress* p) { cfg_.eval.progress = p; }

  Model& model() { return *model_; }
  template <class M>
  M& model_as() {
    return dynamic_cast<M&>(*model_);
  }
  const TrainConfig& config() const { return cfg_; }
  const io::DatasetInfo& data_info() const { return data_.info; }
  const IgStats& ig_stats() const { return ig_; }
  IgStats& ig_stats() { return ig_; }
  // The device the steps run on ("" on the CPU).
  std::string device_name() const { return engine_->describe(); }

  // Replaces the epoch's strategy built from the config (tests compare step algebra with it).
  void set_strategy(std::unique_ptr<Strategy> s) { strategy_ = std::move(s); }
  // Tests: take a plain step where the meta-step would run (the reference for "IG with a zero
  // sample rate equals plain training").
  void set_meta_disabled(bool v) { meta_.set_disabled(v); }

  // Checkpoints (core/checkpoint_state.h): the progress, steps per epoch (all phases) and per
  // phase, steps done since the start, and a hook called on every rank after every step
  // (progress() already counts it); returning true on all ranks ends fit() with interrupted set.
  TrainProgress& progress() { return prog_; }
  int num_phases() const { return cfg_.strategy == "ig" ? 2 : 1; }
  int64_t phase_steps(int phase) const { return (phase_rows(phase) + cfg_.batch - 1) / cfg_.batch; }
  int64_t steps_per_epoch() const { return phase_steps(0) + phase_steps(1); }
  int64_t global_step() const {
    return (prog_.epoch - 1) * steps_per_epoch() + (prog_.phase == 1 ? phase_steps(0) : 0) + prog_.step;
  }
  void set_step_hook(std::function<bool(Trainer&)> hook) { step_hook_ = std::move(hook); }
  const std::function<bool(Trainer&)>& step_hook() const { return step_hook_; }
  // Called on every rank at a step boundary once `every` seconds have passed since the phase
  // began or the last call (0: never); no collective, so what it prints is its rank's view.
  void set_progress(std::function<void(const StepProgress&)> fn, double every) {
    progress_ = std::move(fn);
    progress_every_ = every;
  }
  // The device engine trains on its own copy of the state; checkpoints read and restore the host
  // tables. These copy the whole state down and back up (no-ops on the CPU).
  void sync_state_to_host() { engine_->state_to_host(); }
  void sync_state_to_device() { engine_->state_from_host(); }

  // The draws the batches use (core/sampler.h).
  const Sampler& sampler() const { return sampler_; }

 private:
  // Rows of a phase, globally: training-train and training-test for ig, all rows otherwise.
  int64_t phase_rows(int phase) const;
  bool run_phase(int epoch, int phase, std::span<const uint32_t> rows, std::span<const int64_t> index, bool whole);
  void record_decision(int decision, const dist::ExactSums& L);

  TrainConfig cfg_;
  const io::DataShard& data_;
  dist::Comm& comm_;
  std::unique_ptr<Model> model_;
  Sampler sampler_;
  std::vector<uint8_t> train_labels_;  // labeled models: rating > threshold, per local training row
  int64_t num_train_ = 0;
  int64_t n_tt_ = 0;  // ig: training-train rows
  std::unique_ptr<Strategy> strategy_;  // the epoch's (phase 0's) steps
  PlainStrategy plain_;                 // ig's training-train steps
  InverseGradientStrategy meta_;        // ig's meta-steps
  std::unique_ptr<StepEngine> engine_;
  TrainProgress prog_;
  IgStats ig_;
  std::function<bool(Trainer&)> step_hook_;
  std::function<void(const StepProgress&)> progress_;
  double progress_every_ = 0;
  bool stop_requested_ = false;
};

}  // namespace shardrec
