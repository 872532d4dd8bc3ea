#include "core/cpu_engine.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include <sched.h>

#include <thread>

#include "base/scratch.h"
#include "base/thread_pool.h"
#include "core/epoch_order.h"
#include "core/inverse_gradient.h"

namespace shardrec {

namespace {
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return *end == '\0' && x > 0 && x < (1 << 20) ? static_cast<int>(x) : 0;
}
}  // namespace

int auto_threads(int mask_cores, int online_cores, int local_ranks, int cpus_per_task) {
  int t = std::max(1, mask_cores);
  if (cpus_per_task > 0) t = std::min(t, cpus_per_task);
  // Ranks that share the node's cores (unbound, or bound to a socket) split them rather than
  // each taking them all.
  if (local_ranks > 1 && static_cast<int64_t>(local_ranks) * t > online_cores)
    t = std::min(t, std::max(1, online_cores / local_ranks));
  return t;
}

int cpu_threads(const TrainConfig& cfg) {
  if (cfg.threads > 0) return cfg.threads;
  cpu_set_t set;
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int mask = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : hw;
  // The ranks on this node, as the launcher tells them (Open MPI, PMIx, MPICH/Hydra).
  int local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!local) local = env_int("PMIX_LOCAL_SIZE");
  if (!local) local = env_int("MPI_LOCALNRANKS");
  return auto_threads(mask, hw, local, env_int("SLURM_CPUS_PER_TASK"));
}

namespace {

class CpuEngine final : public StepEngine, public MetaStepOps {
 public:
  CpuEngine(const TrainConfig& cfg, Model& m, const io::DataShard& data, dist::Comm& comm, const Sampler& sampler,
            const uint8_t* labels)
      : cfg_(cfg), m_(m), data_(data), comm_(comm), sampler_(sampler), labels_(labels), pool_(cpu_threads(cfg)) {
    m_.set_threads(&pool_);
  }
  ~CpuEngine() override { m_.set_threads(nullptr); }

  bool run_phase(const PhaseRun& r) override {
    const io::UserSlice& tr = data_.train();
    built_ahead_ = pending_ahead_ = routed_ahead_ = false;
    m_.item.cancel_ahead();
    return run_steps_ahead(r, tr, [&](const StepView& v, const StepView* next) {
      if (built_ahead_)
        std::swap(hb_, hb_next_);  // vectors move with their buffers: hb_.b's pointers stay valid
      else
        hb_.build(r, v.step, v.samples, v.global_n, tr, labels_, &sampler_, m_.draw_kind(), comm_.rank(), &pool_);
      // A sample runs on its user's owner, so user rows never travel: no collective for them.
      if (built_ahead_)
        std::swap(ur_, ur_next_);  // planned with the batch, a step ahead
      else
        m_.user.plan(comm_, hb_.uid, /*local_only=*/true, ur_);
      if (routed_ahead_) {
        // The counts came with the previous step's rows and the ids (as a rule) with its
        // gradients: no exchange here.
        std::swap(ir_, ir_next_);  // (the buffers go round, not allocated each step)
        m_.item.exchange(comm_, ir_, ahead_in_.data());
      } else {
        m_.item.plan(comm_, hb_.iid, false, ir_);
        m_.item.exchange(comm_, ir_);
      }
      built_ahead_ = pending_ahead_ = routed_ahead_ = false;
      if (next) {
        // The next batch now, and what it will ask of each owner, to travel with this step's
        // first gather (every rank alike: all run the same steps and passes).
        hb_next_.build(r, next->step, next->samples, next->global_n, tr, labels_, &sampler_, m_.draw_kind(),
                       comm_.rank(), &pool_);
        // The two tables' plans are independent (each its own scratch, no collective): one
        // thread each.
        pool_.run(2, [&](size_t lo, size_t hi, int) {
          for (size_t k = lo; k < hi; ++k)
            if (k == 0)
              m_.user.plan(comm_, hb_next_.uid, /*local_only=*/true, ur_next_);
            else
              m_.item.plan(comm_, hb_next_.iid, false, ir_next_);
        }, 1);
        ahead_out_ = m_.item.exchange_counts(comm_, ir_next_);
        ahead_in_.assign(ahead_out_.size(), 0);
        built_ahead_ = pending_ahead_ = true;
      }
      const int R = m_.user.dim();
      nu_ = hb_.b.n * R;
      ni_ = hb_.b.n * hb_.b.per * m_.item.dim();
      features_here_ = false;
      loss_ = r.loss;
      on_decision = r.on_decision;
      r.strategy->step(v.step, *this);
    }, &pool_);
  }

 private:
  // StepOps: a pass over the batch's rows as they are now, and the optimizer step.
  void forward_backward(float scale, bool record) override {
    gather();
    main_pass(nullptr, scale, Terms::kAll, record ? loss_ : nullptr, 0, 1);
  }
  void apply() override {
    m_.apply_rows(comm_, ur_, hb_.ukey, gU_, ir_, hb_.ikey, gI_);
    m_.apply_dense(comm_);
  }

  // MetaStepOps (core/strategy.h): the moves touch the batch's rows at their owners and the dense
  // vector; the candidates are formed from the rows this rank holds.
  void labeled_gradient(dist::ExactSums& L) override {
    gather();
    main_pass(nullptr, 1.0f, Terms::kOwn, &L, 2, 2);
  }

  void propose() override {
    const bool ref = cfg_.il_reference;
    const ig::CandidateStep cand{cfg_.ig_sample_lr, ref, cfg_.opt.beta1, cfg_.opt.beta2, cfg_.opt.eps};
    std::vector<float>& w = dense();
    gU2_ = gU2s_.get(nu_);
    gI2_ = gI2s_.get(ni_);
    DU_ = DUs_.get(nu_);
    DI_ = DIs_.get(ni_);
    PassArgs a = args(nullptr, 1.0f, Terms::kDraws);
    a.gU = gU2_;
    a.gI = gI2_;
    a.grad = 1;
    m_.pass(hb_.b, a);
    g_dual_.resize(w.size());
    m_.reduce_dense_grad(1, comm_, g_dual_.data());
    dense_delta_.resize(w.size());
    cand.delta(g_dual_.data(), dense_delta_.data(), static_cast<int>(dense_delta_.size()));
    tu_.prepare(comm_, m_.user, ur_, hb_.ukey, gU2_, cand, DU_);
    ti_.prepare(comm_, m_.item, ir_, hb_.ikey, gI2_, cand, DI_);
  }

  void candidate_losses(dist::ExactSums& L) override {
    // Both candidates from local rows: theta + d into slot 0, theta - d into slot 1.
    const std::vector<float>& w = dense();
    const size_t nd = w.size();
    wf_.resize(nd);
    wi_.resize(nd);
    for (size_t k = 0; k < nd; ++k) {
      wf_[k] = w[k] + dense_delta_[k];
      wi_[k] = w[k] - dense_delta_[k];
    }
    float* Uf = Ufs_.get(nu_);
    float* Ui = Uis_.get(nu_);
    float* If = Ifs_.get(ni_);
    float* Ii = Iis_.get(ni_);
    for (size_t k = 0; k < nu_; ++k) {
      Uf[k] = U_[k] + DU_[k];
      Ui[k] = U_[k] - DU_[k];
    }
    for (size_t k = 0; k < ni_; ++k) {
      If[k] = I_[k] + DI_[k];
      Ii[k] = I_[k] - DI_[k];
    }
    PassArgs a = args(wf_.data(), 1.0f, Terms::kOwn);
    a.U = Uf;
    a.I = If;
    a.loss = &L;
    a.slot_own = 0;
    m_.pass(hb_.b, a);
    a.U = Ui;
    a.I = Ii;
    a.w = wi_.data();
    a.slot_own = 1;
    m_.pass(hb_.b, a);
  }

  void allreduce(dist::ExactSums& L) override { L.allreduce(comm_); }

  void commit(int sign, bool add_dual) override {
    std::vector<float>& w = dense();
    // The touched rows at their owners, the dense parameters everywhere ...
    tu_.commit(m_.user, sign);
    ti_.commit(m_.item, sign);
    for (size_t k = 0; k < w.size(); ++k) w[k] = sign > 0 ? w[k] + dense_delta_[k] : w[k] - dense_delta_[k];
    // ... and the labeled gradient there, from the candidate's rows (held locally).
    for (size_t k = 0; k < nu_; ++k) U_[k] = sign > 0 ? U_[k] + DU_[k] : U_[k] - DU_[k];
    for (size_t k = 0; k < ni_; ++k) I_[k] = sign > 0 ? I_[k] + DI_[k] : I_[k] - DI_[k];
    main_pass(nullptr, 1.0f, Terms::kOwn, nullptr, 0, 0);
    if (!add_dual) return;
    for (size_t k = 0; k < nu_; ++k) gU_[k] += static_cast<float>(sign) * gU2_[k];
    for (size_t k = 0; k < ni_; ++k) gI_[k] += static_cast<float>(sign) * gI2_[k];
  }

  void fresh_apply(int sign) override {
    std::vector<float>& w = dense();
    const ig::CandidateStep main{cfg_.opt.lr, true, cfg_.opt.beta1, cfg_.opt.beta2, cfg_.opt.eps};
    ig::fresh_step(comm_, m_.user, ur_, hb_.ukey, gU_, main);
    ig::fresh_step(comm_, m_.item, ir_, hb_.ikey, gI_, main);
    g_.resize(w.size());
    m_.reduce_dense_grad(0, comm_, g_.data());
    if (sign != 0)
      for (size_t k = 0; k < g_.size(); ++k) g_[k] += static_cast<float>(sign) * g_dual_[k];
    main.step(g_.data(), w.data(), static_cast<int>(g_.size()));
  }

  std::vector<float>& dense() {
    std::vector<float>* w = m_.flat_dense();
    if (!w) fail("strategy ig: model " + cfg_.model + " has no dense parameters to move");
    return *w;
  }

  void gather() {
    U_ = Us_.get(nu_);
    I_ = Is_.get(ni_);
    m_.refresh_rows(comm_, hb_.b);
    m_.rows_user().gather(comm_, ur_, U_);
    if (pending_ahead_) {
      m_.rows_item().gather(comm_, ir_, I_, ahead_out_.data(), ahead_in_.data());
      m_.item.send_ahead(comm_, ir_next_, ahead_in_);  // with the step's first gradient exchange
      pending_ahead_ = false;
      routed_ahead_ = true;
    } else {
      m_.rows_item().gather(comm_, ir_, I_);
    }
    // Feature rows never change: one transfer per step, through the item routing.
    if (dist::ShardedEmbedding* f = m_.item_features(); f && !features_here_) {
      F_ = Fs_.get(hb_.b.n * hb_.b.per * f->dim());
      f->gather(comm_, ir_, F_);
      features_here_ = true;
    }
  }

  PassArgs args(const float* w, float scale, Terms terms) const {
    PassArgs a;
    a.U = U_;
    a.I = I_;
    a.F = m_.item_features() ? F_ : nullptr;
    a.w = w;
    a.scale = scale;
    a.terms = terms;
    a.pool = &pool_;
    return a;
  }

  // The main gradient (gU_, gI_, the model's accumulator 0) at rows U_, I_.
  void main_pass(const float* w, float scale, Terms terms, dist::ExactSums* loss, int slot_own, int slot_draw) {
    gU_ = gUs_.get(nu_);
    gI_ = gIs_.get(ni_);
    PassArgs a = args(w, scale, terms);
    a.loss = loss;
    a.slot_own = slot_own;
    a.slot_draw = slot_draw;
    a.gU = gU_;
    a.gI = gI_;
    m_.pass(hb_.b, a);
  }

  const TrainConfig& cfg_;
  Model& m_;
  const io::DataShard& data_;
  dist::Comm& comm_;
  const Sampler& sampler_;
  const uint8_t* labels_;
  mutable ThreadPool pool_;
  // The step in progress.
  HostBatch hb_;
  dist::Routing ur_, ir_;
  // The next step, routed ahead: its batch (built_ahead_), its item routing's first half, and its
  // per-owner counts, sent with this step's first gather (pending_ahead_) and received there
  // (routed_ahead_). A step that gathers nothing leaves the next to route in full.
  HostBatch hb_next_;
  dist::Routing ir_next_, ur_next_;
  std::vector<uint64_t> ahead_out_, ahead_in_;
  bool built_ahead_ = false, pending_ahead_ = false, routed_ahead_ = false;
  size_t nu_ = 0, ni_ = 0;
  bool features_here_ = false;
  dist::ExactSums* loss_ = nullptr;
  float *U_ = nullptr, *I_ = nullptr, *F_ = nullptr, *gU_ = nullptr, *gI_ = nullptr;
  float *gU2_ = nullptr, *gI2_ = nullptr, *DU_ = nullptr, *DI_ = nullptr;
  ig::TentativeRows tu_, ti_;
  std::vector<float> g_, g_dual_, dense_delta_, wf_, wi_;
  // Buffers reused across steps (no allocation, no zero-fill).
  Scratch<float> Us_, Is_, Fs_, gUs_, gIs_, gU2s_, gI2s_, DUs_, DIs_, Ufs_, Uis_, Ifs_, Iis_;
};

}  // namespace

std::unique_ptr<StepEngine> make_cpu_engine(const TrainConfig& cfg, Model& model, const io::DataShard& data,
                                            dist::Comm& comm, const Sampler& sampler, const uint8_t* labels) {
  return std::make_unique<CpuEngine>(cfg, model, data, comm, sampler, labels);
}

}  // namespace shardrec
