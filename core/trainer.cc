#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "base/error.h"
#include "base/rng.h"
#include "core/cpu_engine.h"
#include "core/gpu_backend.h"

namespace shardrec {

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Trainer::Trainer(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm)
    : cfg_(cfg),
      data_(data),
      comm_(comm),
      model_(make_model(cfg, data, comm.rank())),
      sampler_(cfg.seed, data.info.num_items, data.info.path),
      meta_(cfg.il_reference) {
  cfg_.validate();
  num_train_ = data.info.rows[0];
  if (data.train().rows() >= (int64_t{1} << 32)) fail("a rank holds more than 2^32 training rows; use more ranks");
  if (cfg_.batch >= (int64_t{1} << 32)) fail("option --batch: must be below 2^32");
  if (model_->labeled()) {
    // Every split needs ratings (evaluation labels its rows too); training reads its labels here.
    for (int s = 0; s < 3; ++s)
      if (data.info.rows[s] > 0 && !data.info.has_rating[s])
        fail("dataset " + data.info.path + ": the " + io::kSplitNames[s] + " split has no ratings, but model " +
             cfg_.model + " trains on labeled rows (label = rating > threshold); prepare the data with "
             "shardrec prep --label-threshold and a rating column");
    const double threshold = label_threshold(cfg_, data.info);
    const io::UserSlice& tr = data.train();
    train_labels_.resize(tr.rows());
    for (int64_t r = 0; r < tr.rows(); ++r) train_labels_[r] = tr.rating[r] > threshold ? 1 : 0;
  }
  n_tt_ = static_cast<int64_t>(std::floor(static_cast<double>(num_train_) * cfg_.ig_train_ratio));
  strategy_ = cfg_.strategy == "ig" ? std::make_unique<PlainStrategy>() : make_strategy(cfg_);
  const uint8_t* labels = model_->labeled() ? train_labels_.data() : nullptr;
  engine_ = resolve_device(cfg_.device) == "cuda" ? model_->cuda_engine(cfg_, data_, comm_, labels)
                                                  : make_cpu_engine(cfg_, *model_, data_, comm_, sampler_, labels);
  prog_.best = higher_is_better(cfg_.valid_metric) ? -INFINITY : INFINITY;
}

Trainer::~Trainer() = default;

int64_t Trainer::phase_rows(int phase) const {
  if (cfg_.strategy != "ig") return phase == 0 ? num_train_ : 0;
  return phase == 0 ? n_tt_ : num_train_ - n_tt_;
}

void Trainer::record_decision(int decision, const dist::ExactSums& L) {
  ig_.decisions.push_back(static_cast<uint8_t>(decision));
  (decision == 1 ? ig_.forward : decision == 2 ? ig_.inverse : ig_.mid) += 1;
  // The chosen point's labeled loss is the step's recorded loss (counted once, by rank 0).
  if (comm_.rank() == 0) prog_.phase_loss.add(0, L.value(decision == 1 ? 0 : decision == 2 ? 1 : 2));
}

bool Trainer::run_phase(int epoch, int phase, std::span<const uint32_t> rows, std::span<const int64_t> index,
                        bool whole) {
  TrainProgress& p = prog_;
  // A resumed phase starts at the checkpoint's step with its loss sums so far.
  if (p.phase != phase) {
    p.phase = phase;
    p.step = 0;
  }
  if (p.step == 0) p.phase_loss = dist::ExactSums(2, 24);
  const int64_t m = phase_rows(phase);
  if (m <= 0) return true;
  const bool meta = cfg_.strategy == "ig" && phase == 1;
  PhaseRun r;
  r.epoch = epoch;
  r.phase = phase;
  r.rows = m;
  r.first = p.step;
  r.batch = cfg_.batch;
  r.whole_split = whole;
  r.local = rows;
  r.index = index;
  r.order_key = hash64(cfg_.seed, model_->order_salt() + phase, static_cast<uint64_t>(epoch));
  r.draws = model_->draws(cfg_, meta);
  r.meta = meta;
  r.strategy = meta ? static_cast<Strategy*>(&meta_) : strategy_.get();
  r.loss = &p.phase_loss;
  r.on_decision = [&](int decision, const dist::ExactSums& L) { record_decision(decision, L); };
  // Named by a collective that times out (dist::Comm::set_context).
  const std::string where = "epoch " + std::to_string(epoch) + (meta ? ", meta phase" : "");
  comm_.set_context(where, p.step + 1);
  const double t0 = now();
  double last = t0;
  const int64_t first = p.step, S = phase_steps(phase);
  r.after_step = [&](int64_t s) {
    p.step = s + 1;
    comm_.set_step(s + 2);
    if (progress_ && progress_every_ > 0 && p.step < S && now() - last >= progress_every_) {
      last = now();
      StepProgress sp;
      sp.epoch = epoch;
      sp.phase = phase;
      sp.step = p.step;
      sp.steps = S;
      sp.seconds = last - t0;
      const double done = static_cast<double>(p.step - first);
      sp.samples_per_s = done * static_cast<double>(cfg_.batch) / std::max(sp.seconds, 1e-9);
      sp.eta_seconds = sp.seconds / done * static_cast<double>(S - p.step);
      progress_(sp);
    }
    if (!step_hook_ || !step_hook_(*this)) return false;
    stop_requested_ = true;  // every rank agreed (the hook's contract): no collective below
    return true;
  };
  if (!engine_->run_phase(r)) return false;
  p.phase_loss.allreduce(comm_);
  p.epoch_terms += m;
  p.epoch_sum += p.phase_loss.value(0);  // the recorded loss (the draws' dual loss is slot 1)
  return true;
}

double Trainer::train_epoch(int epoch) {
  const io::UserSlice& tr = data_.train();
  const bool ig = cfg_.strategy == "ig";
  TrainProgress& p = prog_;
  if (p.epoch != epoch) {
    p.epoch = epoch;
    p.phase = 0;
    p.step = 0;
  }
  // A resumed epoch keeps the sums of its finished phases and what its optimizer state was.
  if (p.phase == 0 && p.step == 0) {
    p.epoch_sum = 0;
    p.epoch_terms = 0;
    // The reference re-creates its main Adam after every meta-iteration, so each later epoch's
    // training-train phase starts from fresh optimizer state.
    if (ig && cfg_.il_reference && epoch > 1) {
      model_->reset_optimizers();
      engine_->reset_table_optimizers();
    }
  }
  bool done = true;
  if (!ig) {
    done = run_phase(epoch, 0, {}, {}, true);
  } else {
    // Training-train / training-test: a fixed (epoch-independent) seeded split of the labeled rows.
    std::vector<uint32_t> rows[2];
    std::vector<int64_t> index[2];
    const Permutation split(static_cast<uint64_t>(num_train_), hash64(cfg_.seed, 0x5e1a));
    for (int64_t r = 0; r < tr.rows(); ++r) {
      const int64_t q = static_cast<int64_t>(split(static_cast<uint64_t>(tr.row_lo + r)));
      const int ph = q < n_tt_ ? 0 : 1;
      rows[ph].push_back(static_cast<uint32_t>(r));
      index[ph].push_back(ph == 0 ? q : q - n_tt_);
    }
    for (int ph = p.phase; ph < 2 && done; ++ph) done = run_phase(epoch, ph, rows[ph], index[ph], false);
  }
  // Evaluation, early stopping and export read the host tables.
  engine_->to_host();
  if (!done) return 0;
  p.epoch = epoch + 1;
  p.phase = 0;
  p.step = 0;
  return p.epoch_sum / (static_cast<double>(p.epoch_terms) * model_->terms_per_sample(cfg_));
}

namespace {
// Forward passes only: records the loss, never applies a step.
class LossOnly final : public Strategy {
 public:
  void step(int64_t, StepOps& ops) override { ops.forward_backward(1.0f, true); }
  std::string describe() const override { return "loss-only"; }
};
}  // namespace

double Trainer::training_loss() {
  LossOnly only;
  dist::ExactSums loss(2, 24);
  PhaseRun r;
  r.epoch = 0;
  r.rows = num_train_;
  r.batch = cfg_.batch;
  r.dataset_order = true;
  r.draws = model_->draws(cfg_, false);
  r.strategy = &only;
  r.loss = &loss;
  engine_->run_phase(r);
  loss.allreduce(comm_);
  return loss.value(0) / (static_cast<double>(num_train_) * model_->terms_per_sample(cfg_));
}

// Early stopping maximises every metric except log loss.
bool higher_is_better(const std::string& metric) { return metric != "logloss"; }

FitResult Trainer::fit(const std::function<void(const EpochLog&)>& on_epoch) {
  stop_requested_ = false;
  FitResult res;
  TrainProgress& p = prog_;
  const bool maximize = higher_is_better(cfg_.valid_metric);
  for (int epoch = p.epoch; epoch <= cfg_.epochs; ++epoch) {
    EpochLog log;
    log.epoch = epoch;
    const double t0 = now();
    log.loss = train_epoch(epoch);
    double secs = now() - t0;
    comm_.allreduce_max(&secs, 1);
    if (stop_requested_) {  // the step hook stopped training (a checkpoint was written)
      res.interrupted = true;
      return res;
    }
    log.seconds = secs;
    log.samples_per_s = static_cast<double>(num_train_) / std::max(secs, 1e-9);
    if (cfg_.eval_every > 0 && epoch % cfg_.eval_every == 0) {
      comm_.set_context("validation after epoch " + std::to_string(epoch));
      log.validated = true;
      log.valid = evaluate(1);
      const double v = log.valid.get(cfg_.valid_metric);
      if (maximize ? v > p.best : v < p.best) {
        p.best = v;
        p.since_best = 0;
        log.improved = true;
        p.best_epoch = epoch;
        p.best_valid = v;
        if (cfg_.keep_best) {
          p.has_best = true;
          p.best_params.take(model_->state());
        }
      } else {
        ++p.since_best;
      }
    }
    double total = now() - t0;
    comm_.allreduce_max(&total, 1);
    p.elapsed += total;
    p.epochs_done = epoch;
    log.eta_seconds = p.elapsed / epoch * (cfg_.epochs - epoch);
    res.epochs.push_back(log);
    if (on_epoch) on_epoch(log);
    if (log.validated && cfg_.patience > 0 && p.since_best >= cfg_.patience) {
      res.stopped_early = true;
      break;
    }
  }
  res.best_epoch = p.best_epoch;
  res.best_valid = p.best_valid;
  if (res.best_epoch == 0 || !cfg_.keep_best || cfg_.eval_every == 0) {
    res.best_epoch = p.epochs_done;
  } else if (res.best_epoch != p.epochs_done) {
    p.best_params.restore(model_->state());
  }
  return res;
}

}  // namespace shardrec
