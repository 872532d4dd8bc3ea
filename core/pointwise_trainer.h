// Training of pointwise models (gmf, neumf) on labeled rows, with the Inverse Learning losses and
// strategies (WSDM 2024).
//
// Rows. Every training row of a labeled dataset is a labeled row (user, item, label = rating >
// threshold). Each epoch, every labeled row draws cfg.il_unlabeled unlabeled rows: items uniform
// over all items, rejecting the user's training items, from a counter RNG keyed by (seed, epoch,
// dataset row, k), so the draws do not depend on the number of ranks.
//
// Steps. A global batch is `batch` labeled rows (from a seeded per-epoch permutation) together with
// their unlabeled draws; a row is processed by the rank that owns its user (as in core/trainer.h).
// Table gradients reduce at the rows' owners in global sample order (order keys); dense gradients
// (MLP, prediction layer) sum exactly in fixed point (core/ncf_model.h). Hence bitwise world-size
// invariance. The loss is a mean over the batch's rows:
//   loss bce:                 labeled rows only (no draws)
//   loss idl, strategy plain: labeled rows (BCE) and unlabeled rows (dual loss), one mean over both
//   loss bce-neg:             labeled rows and unlabeled rows as negatives (the usual NCF negative
//                             sampling), one mean over both: a second baseline
// Strategy ig (Inverse Gradient): see core/inverse_gradient.h for the meta-step; the labeled rows
// are split once, by a seeded permutation, into training-train (ig_train_ratio) and training-test.
// Each epoch trains on training-train with BCE (plain steps), then takes one meta-step per
// training-test batch.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/epoch_order.h"
#include "core/evaluator.h"
#include "core/gpu_pointwise.h"
#include "core/labeled_metrics.h"
#include "core/ncf_model.h"
#include "core/strategy.h"
#include "base/scratch.h"
#include "core/trainer.h"
#include "dist/comm.h"
#include "dist/exact_sum.h"
#include "io/dataset.h"

namespace shardrec {

// What the meta-steps decided, for logs and tests. Identical on every rank.
struct IgStats {
  int64_t forward = 0, inverse = 0, mid = 0;
  std::vector<uint8_t> decisions;  // 0 mid, 1 forward, 2 inverse, in step order (all epochs)
};

// Where a pointwise training stands between two steps (besides parameters, optimizer state and
// IgStats): what a checkpoint holds for a bitwise resume. The position is (epoch, phase, step
// within the phase); an IG epoch has two phases (0 training-train, 1 meta), others one.
struct PointwiseProgress : TrainProgress {
  int phase = 0;
  dist::ExactSums phase_loss{2, 24};  // the phase's loss sums so far: this rank's part
  double epoch_sum = 0;               // the finished phases' recorded losses and terms
  int64_t epoch_terms = 0;
};

class PointwiseTrainer {
 public:
  PointwiseTrainer(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm);
  ~PointwiseTrainer();
  FitResult fit(const std::function<void(const EpochLog&)>& on_epoch = {});
  // One epoch (from progress(), when a resume left it inside this epoch); returns the mean
  // recorded training loss (per labeled row for bce and ig's training-train part; per row for
  // idl), or 0 when the step hook stopped training.
  double train_epoch(int epoch);
  // "cuda:0 (...)" with --device cuda, else empty.
  std::string device_name() const { return gpu_ ? gpu_->describe() : ""; }
  // Labeled-protocol metrics of split 1 (valid) or 2 (test), identical on every rank.
  EvalResult evaluate(int split);
  NcfModel& model() { return model_; }
  const TrainConfig& config() const { return cfg_; }
  const io::DatasetInfo& data_info() const { return data_.info; }
  const IgStats& ig_stats() const { return ig_; }
  IgStats& ig_stats() { return ig_; }
  // Checkpoints (io/checkpoint.h), as for Trainer: the progress, steps per epoch (all phases) and
  // per phase, steps done since the start, and a hook called on every rank after every step
  // (progress() already counts it); returning true on all ranks ends fit() with interrupted set.
  PointwiseProgress& progress() { return prog_; }
  int64_t steps_per_epoch() const { return phase_steps(0) + phase_steps(1); }
  int64_t phase_steps(int phase) const;
  int num_phases() const { return cfg_.strategy == "ig" ? 2 : 1; }
  int64_t global_step() const;
  void set_step_hook(std::function<bool(PointwiseTrainer&)> hook) { step_hook_ = std::move(hook); }
  // The GPU backend trains on the device's copy of the tables; these copy their whole state down
  // to the host tables and back up; no-ops on the CPU backend.
  void sync_state_to_host();
  void sync_state_to_device();
  // Tests: take a plain BCE step where the meta-step would run (the reference for "IG with a zero
  // sample rate equals plain training").
  void set_meta_disabled(bool v) { meta_.set_disabled(v); }
  int64_t sample_unlabeled(int epoch, int64_t global_row, int k, std::span<const int32_t> seen) const;
  // The label of a split's row (local index), from the rating.
  bool label(int split, int64_t local_row) const { return labels_[split][local_row] != 0; }

 private:
  enum class Kind { kPlain, kMeta };
  // Runs the steps of one phase: the local rows in `rows` with their phase index in `index`,
  // m rows in the phase globally.
  // Adds its recorded loss and its rows to prog_.epoch_sum / epoch_terms; resumes at prog_.step
  // when prog_ is inside this phase. False when the step hook stopped training.
  bool run_phase(int epoch, int phase, int64_t m, const std::vector<uint32_t>& rows,
                 const std::vector<int64_t>& index, Kind kind, bool use_unlabeled);
  // Rows of a phase, globally: training-train and training-test for ig, all rows otherwise.
  int64_t phase_rows(int phase) const;
  void build_batch(int epoch, int64_t step, const LocalSample* s, size_t n, int per);
  // Loss terms of this rank's rows at rows U, I (n x R, n*per x R) and dense w. Labeled rows add
  // BCE scaled by c_lab (skipped when 0), unlabeled rows add the dual loss scaled by c_unl; the
  // unscaled losses go to *loss_lab / *loss_unl (exactly summable doubles). Gradients of the scaled
  // loss go to gU, gI, gd when gU is not null.
  void pass(size_t n, int per, const float* U, const float* I, const float* w, double c_lab,
            double c_unl, dist::ExactSums* loss, int slot_lab, int slot_unl, float* gU, float* gI,
            DenseGradAccum* gd);
  // One step of the phase's strategy over the batch build_batch made: n local rows with per item
  // slots each; lab_global / unl_global: the step's labeled and unlabeled rows over all ranks.
  void run_step(Kind kind, int64_t step, size_t n, int per, int64_t lab_global, int64_t unl_global,
                dist::ExactSums& loss);
  void apply_main(const float* gU, const float* gI, DenseGradAccum& gd);
  // IG bookkeeping of one meta-step: the decision, and the chosen point's labeled BCE as the loss.
  void record_decision(int decision, const dist::ExactSums& L, dist::ExactSums& loss);
  void reset_main_optimizer();

  TrainConfig cfg_;
  const io::DataShard& data_;
  dist::Comm& comm_;
  NcfModel model_;
  double threshold_ = 2.0;
  std::vector<uint8_t> labels_[3];
  int64_t num_train_ = 0;
  bool unlabeled_negative_ = false;  // loss bce-neg: unlabeled draws count as negatives
  IgStats ig_;
  PointwiseProgress prog_;
  std::function<bool(PointwiseTrainer&)> step_hook_;
  bool stop_requested_ = false;
  int64_t n_tt_ = 0;  // ig: training-train rows
  // Per-step state and buffers.
  std::vector<int64_t> uid_, iid_;
  std::vector<uint64_t> ukey_, ikey_;
  std::vector<uint8_t> lab_;
  std::vector<int64_t> grow_;   // GPU: the rows' dataset indices and local users (for its draws)
  std::vector<int32_t> ulocal_;
  dist::Routing ur_, ir_;
  Scratch<float> U_, I_, gU_, gI_, gU2_, gI2_, DU_, DI_, act_;
  std::vector<float> gdense_, gdense_idl_, dense_delta_;
  DenseGradAccum gd_, gd2_;
  // The phases' strategies: plain steps (training-train, or every step without ig) and the
  // Inverse Gradient meta-step, and the CPU backend's moves they drive (pointwise_trainer.cc).
  PlainStrategy plain_;
  InverseGradientStrategy meta_;
  class CpuOps;
  std::unique_ptr<CpuOps> cpu_ops_;
  // --device cuda: the steps run there (core/gpu_pointwise.h); the host tables follow each epoch.
  std::unique_ptr<GpuPointwise> gpu_;
  double train_epoch_steps(int epoch);
};

}  // namespace shardrec
