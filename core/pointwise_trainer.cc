#include "core/pointwise_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "core/gpu_backend.h"
#include "core/idl_loss.h"
#include "core/inverse_gradient.h"
#include "base/rng.h"
#include "base/sampling.h"

namespace shardrec {

PointwiseTrainer::PointwiseTrainer(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm)
    : cfg_(cfg),
      data_(data),
      comm_(comm),
      model_(cfg, data.users, data.info.num_items, comm.rank()),
      meta_(cfg.il_reference),
      cpu_ops_(std::make_unique<CpuOps>(*this)) {
  cfg_.validate();
  if (std::isfinite(data.info.label_threshold)) {
    threshold_ = data.info.label_threshold;
  } else {
    threshold_ = cfg_.label_threshold;
  }
  for (int s = 0; s < 3; ++s) {
    const io::UserSlice& sl = data.split[s];
    if (data.info.rows[s] > 0 && !data.info.has_rating[s])
      fail("dataset " + data.info.path + ": the " + io::kSplitNames[s] +
           " split has no ratings, but model " + cfg_.model +
           " trains on labeled rows (label = rating > threshold); prepare the data with "
           "shardrec prep --label-threshold and a rating column");
    labels_[s].resize(sl.rows());
    for (int64_t r = 0; r < sl.rows(); ++r) labels_[s][r] = sl.rating[r] > threshold_ ? 1 : 0;
  }
  num_train_ = data.info.rows[0];
  unlabeled_negative_ = cfg_.loss == "bce-neg";
  if (data.train().rows() >= (int64_t{1} << 32)) fail("a rank holds more than 2^32 training rows; use more ranks");
  gd_.resize(model_.dense.size());
  gd2_.resize(model_.dense.size());
  gdense_.resize(model_.dense.size());
  if (resolve_device(cfg_.device) == "cuda") gpu_ = GpuPointwise::create(cfg_, model_, data_, comm_);
  n_tt_ = static_cast<int64_t>(std::floor(static_cast<double>(num_train_) * cfg_.ig_train_ratio));
  prog_.best = higher_is_better(cfg_.valid_metric) ? -INFINITY : INFINITY;
}

int64_t PointwiseTrainer::phase_rows(int phase) const {
  if (cfg_.strategy != "ig") return phase == 0 ? num_train_ : 0;
  return phase == 0 ? n_tt_ : num_train_ - n_tt_;
}

int64_t PointwiseTrainer::phase_steps(int phase) const { return (phase_rows(phase) + cfg_.batch - 1) / cfg_.batch; }

int64_t PointwiseTrainer::global_step() const {
  return (prog_.epoch - 1) * steps_per_epoch() + (prog_.phase == 1 ? phase_steps(0) : 0) + prog_.step;
}

void PointwiseTrainer::sync_state_to_host() {
  if (gpu_) gpu_->download_state(model_);
}

void PointwiseTrainer::sync_state_to_device() {
  if (gpu_) gpu_->upload_state(model_);
}

int64_t PointwiseTrainer::sample_unlabeled(int epoch, int64_t global_row, int k,
                                           std::span<const int32_t> seen) const {
  bool failed = false;
  const int64_t j = sampling::unlabeled(cfg_.seed, static_cast<uint64_t>(epoch), global_row, k, seen.data(),
                                        static_cast<int64_t>(seen.size()), data_.info.num_items, &failed);
  if (failed)
    fail("dataset " + data_.info.path + ": the user of training row " + std::to_string(global_row) +
         " rated every item, so no unlabeled item exists");
  return j;
}

void PointwiseTrainer::build_batch(int epoch, int64_t step, const LocalSample* s, size_t n, int per) {
  const io::UserSlice& tr = data_.train();
  const uint64_t pos0 = static_cast<uint64_t>(step) * static_cast<uint64_t>(cfg_.batch);
  uid_.resize(n);
  ukey_.resize(n);
  iid_.resize(n * per);
  ikey_.resize(n * per);
  lab_.resize(n);
  if (gpu_) {
    grow_.resize(n);
    ulocal_.resize(n);
  }
  for (size_t i = 0; i < n; ++i) {
    const int64_t user = tr.user_lo + s[i].user;
    const uint64_t pos = pos0 + s[i].off;
    uid_[i] = user;
    ukey_[i] = pos;
    lab_[i] = labels_[0][s[i].row];
    iid_[i * per] = tr.item[s[i].row];
    if (gpu_) {  // the device draws the unlabeled items
      grow_[i] = tr.row_lo + s[i].row;
      ulocal_[i] = static_cast<int32_t>(s[i].user);
    } else {
      auto seen = tr.items_of(user);
      for (int k = 1; k < per; ++k) iid_[i * per + k] = sample_unlabeled(epoch, tr.row_lo + s[i].row, k - 1, seen);
    }
    for (int k = 0; k < per; ++k) ikey_[i * per + k] = pos * per + k;
  }
  if (gpu_) {
    gpu_->begin_step(epoch, uid_, ukey_, iid_, ikey_, lab_, grow_, ulocal_, per);
    return;
  }
  ur_ = model_.user.route(comm_, uid_, /*local_only=*/true);
  ir_ = model_.item.route(comm_, iid_);
}

void PointwiseTrainer::pass(size_t n, int per, const float* U, const float* I, const float* w,
                            double c_lab, double c_unl, dist::ExactSums* loss, int slot_lab,
                            int slot_unl, float* gU, float* gI, DenseGradAccum* gd) {
  const int R = model_.row_dim();
  float* act = act_.get(model_.act_size());
  for (size_t i = 0; i < n; ++i) {
    const float* u = U + i * R;
    for (int k = 0; k < per; ++k) {
      const bool labeled = k == 0;
      const double c = labeled ? c_lab : c_unl;
      if (c == 0) continue;
      const size_t o = i * per + k;
      const float* it = I + o * R;
      const float y = model_.forward(u, it, w, act);
      double dy = 0;
      const double l = labeled ? idl::bce(y, lab_[i], &dy)
                               : (unlabeled_negative_ ? idl::bce(y, 0.0, &dy) : idl::dual(y, &dy));
      if (!std::isfinite(l))
        fail("training diverged: a loss term is " + std::to_string(l) + " on rank " +
             std::to_string(comm_.rank()) + " (lower the learning rate?)");
      if (loss) loss->add(labeled ? slot_lab : slot_unl, l);
      if (gU) model_.backward(static_cast<float>(dy * c), u, it, w, act, gU + i * R, gI + o * R, *gd);
    }
  }
}

void PointwiseTrainer::apply_main(const float* gU, const float* gI, DenseGradAccum& gd) {
  model_.user.apply(comm_, ur_, ukey_, gU);
  model_.item.apply(comm_, ir_, ikey_, gI);
  gd.allreduce(comm_, gdense_.data());
  model_.apply_dense(gdense_.data());
}

void PointwiseTrainer::reset_main_optimizer() {
  model_.user.reset_optimizer();
  model_.item.reset_optimizer();
  if (gpu_) gpu_->reset_table_optimizers();
  model_.reset_dense_optimizer();
}

void PointwiseTrainer::record_decision(int decision, const dist::ExactSums& L, dist::ExactSums& loss) {
  ig_.decisions.push_back(static_cast<uint8_t>(decision));
  (decision == 1 ? ig_.forward : decision == 2 ? ig_.inverse : ig_.mid) += 1;
  if (comm_.rank() == 0) loss.add(0, L.value(decision == 1 ? 0 : decision == 2 ? 1 : 2));
}

// The CPU backend's moves over the batch that build_batch routed: the labeled rows' terms weigh
// c_lab and the unlabeled rows' c_unl (0 skips them); forward_backward's losses go to slots 0/1.
class PointwiseTrainer::CpuOps final : public MetaStepOps {
 public:
  explicit CpuOps(PointwiseTrainer& t) : t_(t) {}
  void begin(size_t n, int per, double c_lab, double c_unl, dist::ExactSums* loss) {
    n_ = n;
    per_ = per;
    c_lab_ = c_lab;
    c_unl_ = c_unl;
    loss_ = loss;
    const int R = t_.model_.row_dim();
    nu_ = n * R;
    ni_ = n * per * R;
  }

  void forward_backward(float scale, bool record) override {
    gather();
    main_pass(t_.model_.dense.data(), c_lab_ * scale, c_unl_ * scale, record ? loss_ : nullptr, 0, 1);
  }
  void apply() override { t_.apply_main(gU_, gI_, t_.gd_); }

  void labeled_gradient(dist::ExactSums& L) override {
    gather();
    main_pass(t_.model_.dense.data(), c_lab_, 0.0, &L, 2, 2);
  }

  void propose() override {
    NcfModel& m = t_.model_;
    const TrainConfig& cfg = t_.cfg_;
    const bool ref = cfg.il_reference;
    const ig::CandidateStep cand{cfg.ig_sample_lr, ref, cfg.opt.beta1, cfg.opt.beta2, cfg.opt.eps};
    gU2_ = t_.gU2_.get(nu_);
    gI2_ = t_.gI2_.get(ni_);
    DU_ = t_.DU_.get(nu_);
    DI_ = t_.DI_.get(ni_);
    std::fill(gU2_, gU2_ + nu_, 0.0f);
    std::fill(gI2_, gI2_ + ni_, 0.0f);
    t_.gd2_.clear();
    t_.pass(n_, per_, U_, I_, m.dense.data(), 0.0, c_unl_, nullptr, 0, 0, gU2_, gI2_, &t_.gd2_);
    t_.gdense_idl_.resize(m.dense.size());
    t_.gd2_.allreduce(t_.comm_, t_.gdense_idl_.data());
    t_.dense_delta_.resize(m.dense.size());
    cand.delta(t_.gdense_idl_.data(), t_.dense_delta_.data(), static_cast<int>(t_.dense_delta_.size()));
    tu_.prepare(t_.comm_, m.user, t_.ur_, t_.ukey_, gU2_, cand, DU_);
    ti_.prepare(t_.comm_, m.item, t_.ir_, t_.ikey_, gI2_, cand, DI_);
  }

  void candidate_losses(dist::ExactSums& L) override {
    // Both candidates in one pass over the labeled rows, from local rows: theta + d, theta - d.
    NcfModel& m = t_.model_;
    const int R = m.row_dim();
    const size_t nd = m.dense.size();
    const std::vector<float>& dd = t_.dense_delta_;
    std::vector<float> wf(nd), wi(nd);
    for (size_t k = 0; k < nd; ++k) {
      wf[k] = m.dense[k] + dd[k];
      wi[k] = m.dense[k] - dd[k];
    }
    std::vector<float> uf(R), ui(R), itf(R), iti(R);
    float* act = t_.act_.get(m.act_size());
    for (size_t i = 0; i < n_; ++i) {
      const float* u = U_ + i * R;
      const float* du = DU_ + i * R;
      const float* it = I_ + i * per_ * R;
      const float* di = DI_ + i * per_ * R;
      for (int j = 0; j < R; ++j) {
        uf[j] = u[j] + du[j];
        ui[j] = u[j] - du[j];
        itf[j] = it[j] + di[j];
        iti[j] = it[j] - di[j];
      }
      L.add(0, idl::bce(m.forward(uf.data(), itf.data(), wf.data(), act), t_.lab_[i], nullptr));
      L.add(1, idl::bce(m.forward(ui.data(), iti.data(), wi.data(), act), t_.lab_[i], nullptr));
    }
  }

  void allreduce(dist::ExactSums& L) override { L.allreduce(t_.comm_); }

  void commit(int sign, bool add_dual) override {
    NcfModel& m = t_.model_;
    const std::vector<float>& dd = t_.dense_delta_;
    // The touched rows at their owners, the dense parameters everywhere ...
    tu_.commit(m.user, sign);
    ti_.commit(m.item, sign);
    for (size_t k = 0; k < m.dense.size(); ++k) m.dense[k] = sign > 0 ? m.dense[k] + dd[k] : m.dense[k] - dd[k];
    // ... and the BCE gradient there, from the candidate's rows (held locally).
    for (size_t k = 0; k < nu_; ++k) U_[k] = sign > 0 ? U_[k] + DU_[k] : U_[k] - DU_[k];
    for (size_t k = 0; k < ni_; ++k) I_[k] = sign > 0 ? I_[k] + DI_[k] : I_[k] - DI_[k];
    main_pass(m.dense.data(), c_lab_, 0.0, nullptr, 0, 0);
    if (!add_dual) return;
    for (size_t k = 0; k < nu_; ++k) gU_[k] += static_cast<float>(sign) * gU2_[k];
    for (size_t k = 0; k < ni_; ++k) gI_[k] += static_cast<float>(sign) * gI2_[k];
  }

  void fresh_apply(int sign) override {
    const TrainConfig& cfg = t_.cfg_;
    NcfModel& m = t_.model_;
    const ig::CandidateStep main{cfg.opt.lr, true, cfg.opt.beta1, cfg.opt.beta2, cfg.opt.eps};
    ig::fresh_step(t_.comm_, m.user, t_.ur_, t_.ukey_, gU_, main);
    ig::fresh_step(t_.comm_, m.item, t_.ir_, t_.ikey_, gI_, main);
    std::vector<float>& g = t_.gdense_;
    t_.gd_.allreduce(t_.comm_, g.data());
    if (sign != 0)
      for (size_t k = 0; k < g.size(); ++k) g[k] += static_cast<float>(sign) * t_.gdense_idl_[k];
    main.step(g.data(), m.dense.data(), static_cast<int>(g.size()));
  }

 private:
  void gather() {
    U_ = t_.U_.get(nu_);
    I_ = t_.I_.get(ni_);
    t_.model_.user.gather(t_.comm_, t_.ur_, U_);
    t_.model_.item.gather(t_.comm_, t_.ir_, I_);
  }
  // The main gradient (gU_, gI_, gd_) of the terms weighed c_lab / c_unl at rows U_, I_ and dense w.
  void main_pass(const float* w, double c_lab, double c_unl, dist::ExactSums* loss, int slot_lab, int slot_unl) {
    gU_ = t_.gU_.get(nu_);
    gI_ = t_.gI_.get(ni_);
    std::fill(gU_, gU_ + nu_, 0.0f);
    std::fill(gI_, gI_ + ni_, 0.0f);
    t_.gd_.clear();
    t_.pass(n_, per_, U_, I_, w, c_lab, c_unl, loss, slot_lab, slot_unl, gU_, gI_, &t_.gd_);
  }

  PointwiseTrainer& t_;
  size_t n_ = 0, nu_ = 0, ni_ = 0;
  int per_ = 1;
  double c_lab_ = 0, c_unl_ = 0;
  dist::ExactSums* loss_ = nullptr;
  float *U_ = nullptr, *I_ = nullptr, *gU_ = nullptr, *gI_ = nullptr;
  float *gU2_ = nullptr, *gI2_ = nullptr, *DU_ = nullptr, *DI_ = nullptr;
  ig::TentativeRows tu_, ti_;
};

PointwiseTrainer::~PointwiseTrainer() = default;

void PointwiseTrainer::run_step(Kind kind, int64_t step, size_t n, int per, int64_t lab_global, int64_t unl_global,
                                dist::ExactSums& loss) {
  // Plain steps weigh every row alike; the meta-step's labeled and unlabeled means are separate.
  const bool meta = kind == Kind::kMeta;
  const double c_lab = 1.0 / static_cast<double>(meta ? lab_global : lab_global + unl_global);
  const double c_unl = per == 1 ? 0.0 : meta ? 1.0 / static_cast<double>(lab_global * (per - 1)) : c_lab;
  MetaStepOps* ops = nullptr;
  if (gpu_) {
    ops = &gpu_->ops(c_lab, c_unl, &loss);
  } else {
    cpu_ops_->begin(n, per, c_lab, c_unl, &loss);
    ops = cpu_ops_.get();
  }
  ops->on_decision = [&](int decision, const dist::ExactSums& L) { record_decision(decision, L, loss); };
  (meta ? static_cast<Strategy&>(meta_) : plain_).step(step, *ops);
}

bool PointwiseTrainer::run_phase(int epoch, int phase, int64_t m, const std::vector<uint32_t>& rows,
                                 const std::vector<int64_t>& index, Kind kind, bool use_unlabeled) {
  PointwiseProgress& p = prog_;
  // A resumed phase starts at the checkpoint's step with its loss sums so far.
  if (p.phase != phase) {
    p.phase = phase;
    p.step = 0;
  }
  if (p.step == 0) p.phase_loss = dist::ExactSums(2, 24);
  if (m <= 0) return true;
  const int64_t B = cfg_.batch, S = (m + B - 1) / B;
  EpochOrder order(Permutation(static_cast<uint64_t>(m), hash64(cfg_.seed, 0x11e0 + phase, static_cast<uint64_t>(epoch))),
                   B, data_.train(), rows.size(), [&](size_t k) { return rows[k]; }, [&](size_t k) { return index[k]; });
  const int per = use_unlabeled ? 1 + cfg_.il_unlabeled : 1;
  dist::ExactSums& loss = p.phase_loss;
  for (int64_t s = std::min(p.step, S); s < S; ++s) {
    const auto samples = order.step(s);
    const int64_t global_n = std::min<int64_t>(B, m - s * B);
    build_batch(epoch, s, samples.data(), samples.size(), per);
    run_step(kind, s, samples.size(), per, global_n, use_unlabeled ? global_n * cfg_.il_unlabeled : 0, loss);
    p.step = s + 1;
    if (step_hook_ && step_hook_(*this)) {
      stop_requested_ = true;  // every rank agreed (the hook's contract): no collective below
      return false;
    }
  }
  loss.allreduce(comm_);
  p.epoch_terms += m;
  p.epoch_sum += loss.value(0);  // labeled rows' BCE (the dual loss of unlabeled rows is slot 1)
  return true;
}

double PointwiseTrainer::train_epoch(int epoch) {
  const double loss = train_epoch_steps(epoch);
  if (gpu_) gpu_->download(model_);  // evaluation, early stopping and export read the host tables
  return loss;
}

double PointwiseTrainer::train_epoch_steps(int epoch) {
  const io::UserSlice& tr = data_.train();
  const bool ig = cfg_.strategy == "ig";
  PointwiseProgress& p = prog_;
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
    if (ig && cfg_.il_reference && epoch > 1) reset_main_optimizer();
  }
  std::vector<uint32_t> rows[2];
  std::vector<int64_t> index[2];
  if (!ig) {
    rows[0].resize(tr.rows());
    index[0].resize(tr.rows());
    for (int64_t r = 0; r < tr.rows(); ++r) {
      rows[0][r] = static_cast<uint32_t>(r);
      index[0][r] = tr.row_lo + r;
    }
  } else {
    // Training-train / training-test: a fixed (epoch-independent) seeded split of the labeled rows.
    const Permutation split(static_cast<uint64_t>(num_train_), hash64(cfg_.seed, 0x5e1a));
    for (int64_t r = 0; r < tr.rows(); ++r) {
      const int64_t q = static_cast<int64_t>(split(static_cast<uint64_t>(tr.row_lo + r)));
      const int ph = q < n_tt_ ? 0 : 1;
      rows[ph].push_back(static_cast<uint32_t>(r));
      index[ph].push_back(ph == 0 ? q : q - n_tt_);
    }
  }
  for (int ph = p.phase; ph < num_phases(); ++ph) {
    const bool meta = ig && ph == 1;
    const bool unlabeled = ig ? meta : cfg_.loss != "bce";
    if (!run_phase(epoch, ph, phase_rows(ph), rows[ph], index[ph], meta ? Kind::kMeta : Kind::kPlain, unlabeled))
      return 0;
  }
  p.epoch = epoch + 1;
  p.phase = 0;
  p.step = 0;
  return p.epoch_sum / static_cast<double>(p.epoch_terms);
}

EvalResult PointwiseTrainer::evaluate(int split) {
  const io::UserSlice& sl = data_.split[split];
  const int R = model_.row_dim();
  const int64_t n = sl.rows(), chunk = 8192;
  double chunks = static_cast<double>((n + chunk - 1) / chunk);
  comm_.allreduce_max(&chunks, 1);  // route/gather are collectives: every rank runs as many
  metrics::LabeledRows mine;
  std::vector<int64_t> uid, iid;
  std::vector<float> U, I;
  std::vector<float> act(model_.act_size());
  int64_t row = 0, user = 0;
  for (int64_t c = 0; c < static_cast<int64_t>(chunks); ++c) {
    uid.clear();
    iid.clear();
    const int64_t end = std::min(n, row + chunk);
    for (int64_t r = row; r < end; ++r) {
      while (r >= sl.ptr[user + 1]) ++user;
      uid.push_back(sl.user_lo + user);
      iid.push_back(sl.item[r]);
    }
    auto ur = model_.user.route(comm_, uid, true);
    auto ir = model_.item.route(comm_, iid);
    U.resize(uid.size() * R);
    I.resize(iid.size() * R);
    model_.user.gather(comm_, ur, U.data());
    model_.item.gather(comm_, ir, I.data());
    for (size_t k = 0; k < uid.size(); ++k) {
      mine.user.push_back(uid[k]);
      mine.item.push_back(iid[k]);
      mine.label.push_back(labels_[split][row + static_cast<int64_t>(k)]);
      mine.logit.push_back(model_.forward(&U[k * R], &I[k * R], model_.dense.data(), act.data()));
    }
    row = end;
  }
  // Every rank gets all rows in rank order, which is dataset order: the metrics do not depend on
  // the number of ranks.
  metrics::LabeledRows all;
  for (auto& v : dist::allgather(comm_, mine.user)) all.user.insert(all.user.end(), v.begin(), v.end());
  for (auto& v : dist::allgather(comm_, mine.item)) all.item.insert(all.item.end(), v.begin(), v.end());
  for (auto& v : dist::allgather(comm_, mine.label)) all.label.insert(all.label.end(), v.begin(), v.end());
  for (auto& v : dist::allgather(comm_, mine.logit)) all.logit.insert(all.logit.end(), v.begin(), v.end());
  EvalResult res;
  res.values = metrics::labeled_metrics(
      all, cfg_.eval.ks,
      cfg_.eval.gauc_impressions ? metrics::GaucWeight::kImpressions : metrics::GaucWeight::kUnweighted);
  res.users = static_cast<int64_t>(res.values["users"]);
  res.values.erase("users");
  return res;
}

FitResult PointwiseTrainer::fit(const std::function<void(const EpochLog&)>& on_epoch) {
  stop_requested_ = false;
  FitHooks h;
  h.train_epoch = [&](int epoch) { return train_epoch(epoch); };
  h.stopped = [&] { return stop_requested_; };
  h.validate = [&] { return evaluate(1); };
  h.keep_best = [&] { prog_.best_params.take(model_.state()); };
  h.restore_best = [&] { prog_.best_params.restore(model_.state()); };
  return run_fit(cfg_, prog_, comm_, num_train_, h, on_epoch);
}

}  // namespace shardrec
