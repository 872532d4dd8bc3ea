#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/math.h"
#include "base/rng.h"
#include "base/sampling.h"
#include "core/epoch_order.h"
#include "dist/exact_sum.h"

namespace shardrec {

namespace {
using hd::sigmoid;
using hd::softplus;
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Index of the first NaN or Inf among n floats, or n.
size_t first_nonfinite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}
}  // namespace

Trainer::Trainer(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm)
    : cfg_(cfg),
      data_(data),
      comm_(comm),
      model_(cfg, data.users, data.info.num_items, comm.rank(), data.info.path),
      strategy_(make_strategy(cfg)) {
  cfg_.validate();
  if (resolve_device(cfg_.device) == "cuda") gpu_ = GpuBackend::create(cfg_, model_, data_, comm_);
  if (model_.vbpr()) {
    gW_sum_ = std::make_unique<dist::ExactGradientSum>(model_.W.size(), kVbprFracBits, "vbpr.W");
    gb_sum_ = std::make_unique<dist::ExactGradientSum>(model_.b.size(), kVbprFracBits, "vbpr.b");
  }
  num_train_ = data.info.rows[0];
  const io::UserSlice& tr = data.train();
  if (tr.rows() >= (int64_t{1} << 32)) fail("a rank holds more than 2^32 training rows; use more ranks");
  if (cfg_.batch >= (int64_t{1} << 32)) fail("option --batch: must be below 2^32");
  prog_.best = higher_is_better(cfg_.valid_metric) ? -INFINITY : INFINITY;
}

std::string Trainer::device_name() const { return gpu_ ? gpu_->describe() : ""; }

void Trainer::sync_state_to_host() {
  if (gpu_) gpu_->download_state(model_);
}

void Trainer::sync_state_to_device() {
  if (gpu_) gpu_->upload_state(model_);
}

int64_t Trainer::steps_per_epoch() const { return (num_train_ + cfg_.batch - 1) / cfg_.batch; }

int64_t Trainer::sample_negative(int epoch, int64_t global_row, int k,
                                 std::span<const int32_t> seen) const {
  if (epoch != neg_epoch_) {
    neg_epoch_ = epoch;
    neg_base_ = sampling::negative_base(cfg_.seed, epoch);
  }
  bool failed = false;
  const int64_t j = sampling::negative(neg_base_, global_row, k, seen.data(), static_cast<int64_t>(seen.size()),
                                       data_.info.num_items, &failed);
  if (failed)
    fail("dataset " + data_.info.path + ": a user of training row " + std::to_string(global_row) +
         " interacted with every item, so no negative item exists");
  return j;
}

void Trainer::train_step(int epoch, int64_t step, const LocalSample* s, size_t n,
                         int64_t global_n, dist::ExactSums& loss_sum) {
  const int negs = cfg_.negatives, per = 1 + negs;
  const io::UserSlice& tr = data_.train();
  const uint64_t pos0 = static_cast<uint64_t>(step) * static_cast<uint64_t>(cfg_.batch);
  // Per-step buffers are reused across steps (no allocation, no zero-fill).
  std::vector<int64_t>& uid = uid_;
  std::vector<int64_t>& iid = iid_;
  std::vector<uint64_t>& ukey = ukey_;
  std::vector<uint64_t>& ikey = ikey_;
  uid.resize(n);
  iid.resize(n * per);
  ukey.resize(n);
  ikey.resize(n * per);
  for (size_t i = 0; i < n; ++i) {
    const int64_t user = tr.user_lo + s[i].user;
    uid[i] = user;
    ukey[i] = pos0 + s[i].off;
    iid[i * per] = tr.item[s[i].row];
    auto seen = tr.items_of(user);
    for (int k = 0; k < negs; ++k)
      iid[i * per + 1 + k] = sample_negative(epoch, tr.row_lo + s[i].row, k, seen);
    for (int k = 0; k < per; ++k) ikey[i * per + k] = (pos0 + s[i].off) * per + k;
  }
  // A sample runs on its user's owner, so user rows never travel: no collective for them.
  auto ur = model_.user.route(comm_, uid, /*local_only=*/true);
  auto ir = model_.item.route(comm_, iid);
  const int dq = model_.dim();        // scoring width: the user row, and an item's q vector
  const int de = model_.item_dim();   // item embedding row
  const bool vb = model_.vbpr();
  const int F = model_.feat_dim();
  float* U = U_.get(n * dq);
  float* I = I_.get(n * per * de);
  float* gU = gU_.get(n * dq);
  float* gI = gI_.get(n * per * de);
  float* Fb = vb ? F_.get(n * per * F) : nullptr;
  float* Q = vb ? Q_.get(n * per * dq) : nullptr;
  float* gQ = vb ? gQ_.get(n * per * dq) : gI;
  bool features_here = false;
  const bool bpr = cfg_.loss == "bpr";

  // The strategy drives one or more passes over this batch through these two operations.
  FunctionOps ops;
  ops.fb = [&](float scale, bool record) {
    model_.user.gather(comm_, ur, U);
    model_.item.gather(comm_, ir, I);
    const float* Qp = I;
    if (vb) {
      // Like the table gradients, the projection's gradient is this pass's alone.
      gW_sum_->clear();
      gb_sum_->clear();
      // Feature rows never change: one transfer per step, through the item routing.
      if (!features_here) model_.features->gather(comm_, ir, Fb);
      features_here = true;
      model_.item_vectors(I, Fb, n * per, Q);
      Qp = Q;
    }
    // scale multiplies the gradients only; with scale 1 every value is bit-identical to an
    // unscaled pass.
    const float inv = scale / static_cast<float>(global_n * (bpr ? negs : per));
    const float reg = scale * cfg_.l2 / static_cast<float>(global_n);
    for (size_t i = 0; i < n; ++i) {
      double loss = 0;  // this sample's terms; samples are summed exactly (any grouping)
      const float* u = &U[i * dq];
      const float* ip = &Qp[i * per * dq];
      float* gu = &gU[i * dq];
      float* gip = &gQ[i * per * dq];
      std::fill(gu, gu + dq, 0.0f);
      std::fill(gip, gip + per * dq, 0.0f);
      const float sp = MFModel::score(u, ip, dq);
      if (bpr) {
        for (int k = 0; k < negs; ++k) {
          const float* jn = ip + (1 + k) * dq;
          float* gjn = gip + (1 + k) * dq;
          const float x = sp - MFModel::score(u, jn, dq);
          loss += softplus(-static_cast<double>(x));
          const float c = -sigmoid(-x) * inv;  // d loss / d x, averaged over the batch
          kernels::bpr_backward(c, u, ip, jn, gu, gip, gjn, dq);
        }
      } else {
        for (int k = 0; k < per; ++k) {
          const float* it = ip + k * dq;
          float* git = gip + k * dq;
          const float y = k == 0 ? sp : MFModel::score(u, it, dq);
          const float t = k == 0 ? 1.0f : 0.0f;
          loss += softplus(static_cast<double>(y)) - t * y;
          const float c = (sigmoid(y) - t) * inv;
          kernels::axpy(c, it, gu, dq);
          kernels::axpy(c, u, git, dq);
        }
      }
      if (cfg_.l2 > 0) {  // on the embedding rows (the first de floats of each q)
        double r = kernels::sum_squares(u, dq);
        for (int k = 0; k < per; ++k) r += kernels::sum_squares(ip + k * dq, de);
        loss += 0.5 * cfg_.l2 * r * (bpr ? negs : per);  // per loss term, like the data loss
        kernels::axpy(reg, u, gu, dq);
        for (int k = 0; k < per; ++k) kernels::axpy(reg, ip + k * dq, gip + k * dq, de);
      }
      if (!std::isfinite(loss))
        fail("training diverged: the loss of dataset row " + std::to_string(tr.row_lo + s[i].row) +
             " is " + std::to_string(loss) + " at epoch " + std::to_string(epoch) + " step " +
             std::to_string(step) + " on rank " + std::to_string(comm_.rank()) +
             " (lower the learning rate?)");
      if (record) loss_sum.add(0, loss);
    }
    if (vb) {
      // q = [e, W f + b]: the first half of dL/dq goes to the embedding row, the second to the
      // projection, whose per-occurrence products are summed exactly (any grouping, any N).
      for (size_t o = 0; o < n * per; ++o) {
        const float* gq = gQ + o * dq;
        std::memcpy(gI + o * de, gq, de * sizeof(float));
        const float* f = Fb + o * F;
        for (int r = 0; r < de; ++r) {
          const float gp = gq[de + r];
          if (gp == 0.0f) continue;
          gb_sum_->add_at(r, gp);
          for (int c = 0; c < F; ++c)
            if (f[c] != 0.0f) gW_sum_->add_at(static_cast<size_t>(r) * F + c, gp * f[c]);
        }
      }
    }
  };
  ops.ap = [&] {
    // A NaN or Inf gradient would spread through the optimizer state silently; stop here with
    // the tensor named (one pass over the step's gradients, cheap next to computing them).
    auto check = [&](const float* g, size_t count, size_t per_sample, const char* tensor) {
      const size_t at = first_nonfinite(g, count);
      if (at == count) return;
      fail(std::string("training diverged: the gradient of ") + tensor + " is " +
           (std::isnan(g[at]) ? "NaN" : "Inf") + " at epoch " + std::to_string(epoch) + " step " +
           std::to_string(step) + " on rank " + std::to_string(comm_.rank()) + " (dataset row " +
           std::to_string(tr.row_lo + s[at / per_sample].row) + "; lower the learning rate?)");
    };
    check(gU, n * dq, dq, "user.embedding");
    check(vb ? gQ : gI, n * per * dq, per * dq, vb ? "item.q (item.embedding, vbpr.W, vbpr.b)" : "item.embedding");
    model_.user.apply(comm_, ur, ukey, gU);
    model_.item.apply(comm_, ir, ikey, gI);
    if (vb) model_.apply_dense(comm_, *gW_sum_, *gb_sum_);
  };
  strategy_->step(step, ops);
}

double Trainer::train_epoch(int epoch) {
  const int64_t S = steps_per_epoch();
  // A resumed epoch starts at the checkpoint's step with its loss sum so far (epoch_loss_).
  const int64_t first = epoch == prog_.epoch ? std::min(prog_.step, S) : 0;
  if (first == 0) epoch_loss_ = dist::ExactSums(1, 24);
  prog_.epoch = epoch;
  if (gpu_) {  // the same epoch, sampled and trained on the device, with the same step hook
    const bool done = gpu_->train_epoch(epoch, first, *strategy_, epoch_loss_, [&](int64_t s) {
      prog_.step = s + 1;
      return step_hook_ && step_hook_(*this);
    });
    if (!done) {
      stop_requested_ = true;  // every rank agreed (the hook's contract): no collective below
      return 0;
    }
    return finish_epoch(epoch);
  }
  const io::UserSlice& tr = data_.train();
  const int64_t B = cfg_.batch;
  EpochOrder order(Permutation(static_cast<uint64_t>(num_train_), hash64(cfg_.seed, 0xe90c, epoch)), B, tr,
                   static_cast<size_t>(tr.rows()), [](size_t k) { return static_cast<uint32_t>(k); },
                   [&](size_t k) { return tr.row_lo + static_cast<int64_t>(k); });
  dist::ExactSums& loss = epoch_loss_;
  for (int64_t s = first; s < S; ++s) {
    const auto samples = order.step(s);
    const int64_t global_n = std::min<int64_t>(B, num_train_ - s * B);
    train_step(epoch, s, samples.data(), samples.size(), global_n, loss);
    prog_.step = s + 1;
    if (step_hook_ && step_hook_(*this)) {
      stop_requested_ = true;  // every rank agreed (the hook's contract): no collective below
      return 0;
    }
  }
  return finish_epoch(epoch);
}

double Trainer::finish_epoch(int epoch) {
  prog_.epoch = epoch + 1;
  prog_.step = 0;
  epoch_loss_.allreduce(comm_);
  const double terms = static_cast<double>(num_train_) *
                       (cfg_.loss == "bpr" ? cfg_.negatives : 1 + cfg_.negatives);
  return epoch_loss_.value(0) / terms;
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
  // Landscapes perturb the host tables; the GPU backend trains its own copy.
  if (gpu_) fail("training_loss (loss landscapes) runs on the CPU backend only; use --device cpu");
  const io::UserSlice& tr = data_.train();
  const int64_t B = cfg_.batch, S = steps_per_epoch();
  // Dataset order: step s holds rows [s*B, (s+1)*B); this rank's rows are one contiguous range.
  std::vector<LocalSample> order(tr.rows());
  uint32_t user = 0;
  for (int64_t r = 0; r < tr.rows(); ++r) {
    while (r >= tr.ptr[user + 1]) ++user;
    const int64_t g = tr.row_lo + r;
    order[r] = {static_cast<uint32_t>(g % B), static_cast<uint32_t>(r), user};
  }
  auto saved = std::move(strategy_);
  strategy_ = std::make_unique<LossOnly>();
  dist::ExactSums loss(1, 24);
  size_t at = 0;
  for (int64_t s = 0; s < S; ++s) {
    const size_t begin = at;
    while (at < order.size() && (tr.row_lo + static_cast<int64_t>(at)) / B == s) ++at;
    const int64_t global_n = std::min<int64_t>(B, num_train_ - s * B);
    train_step(/*epoch=*/0, s, order.data() + begin, at - begin, global_n, loss);
  }
  strategy_ = std::move(saved);
  loss.allreduce(comm_);
  return loss.value(0) / (static_cast<double>(num_train_) *
                          (cfg_.loss == "bpr" ? cfg_.negatives : 1 + cfg_.negatives));
}

// Early stopping maximises every metric except log loss.
bool higher_is_better(const std::string& metric) { return metric != "logloss"; }

FitResult run_fit(const TrainConfig& cfg, TrainProgress& p, dist::Comm& comm, int64_t num_train, const FitHooks& h,
                  const std::function<void(const EpochLog&)>& on_epoch) {
  FitResult res;
  const bool maximize = higher_is_better(cfg.valid_metric);
  for (int epoch = p.epoch; epoch <= cfg.epochs; ++epoch) {
    EpochLog log;
    log.epoch = epoch;
    const double t0 = now();
    log.loss = h.train_epoch(epoch);
    double secs = now() - t0;
    comm.allreduce_max(&secs, 1);
    if (h.stopped()) {  // the step hook stopped training (a checkpoint was written)
      res.interrupted = true;
      return res;
    }
    log.seconds = secs;
    log.samples_per_s = static_cast<double>(num_train) / std::max(secs, 1e-9);
    if (cfg.eval_every > 0 && epoch % cfg.eval_every == 0) {
      log.validated = true;
      log.valid = h.validate();
      const double v = log.valid.get(cfg.valid_metric);
      if (maximize ? v > p.best : v < p.best) {
        p.best = v;
        p.since_best = 0;
        log.improved = true;
        p.best_epoch = epoch;
        p.best_valid = v;
        if (cfg.keep_best) {
          p.has_best = true;
          h.keep_best();
        }
      } else {
        ++p.since_best;
      }
    }
    double total = now() - t0;
    comm.allreduce_max(&total, 1);
    p.elapsed += total;
    p.epochs_done = epoch;
    log.eta_seconds = p.elapsed / epoch * (cfg.epochs - epoch);
    res.epochs.push_back(log);
    if (on_epoch) on_epoch(log);
    if (log.validated && cfg.patience > 0 && p.since_best >= cfg.patience) {
      res.stopped_early = true;
      break;
    }
  }
  res.best_epoch = p.best_epoch;
  res.best_valid = p.best_valid;
  if (res.best_epoch == 0 || !cfg.keep_best || cfg.eval_every == 0) {
    res.best_epoch = p.epochs_done;
  } else if (res.best_epoch != p.epochs_done) {
    h.restore_best();
  }
  return res;
}

FitResult Trainer::fit(const std::function<void(const EpochLog&)>& on_epoch) {
  stop_requested_ = false;
  FitHooks h;
  h.train_epoch = [&](int epoch) {
    const double loss = train_epoch(epoch);
    if (gpu_) gpu_->download(model_);  // evaluation, early stopping and export read the host tables
    return loss;
  };
  h.stopped = [&] { return stop_requested_; };
  h.validate = [&] { return evaluate(model_, data_, 1, cfg_.eval, comm_); };
  h.keep_best = [&] { prog_.best_params.take(model_.state()); };
  h.restore_best = [&] { prog_.best_params.restore(model_.state()); };
  return run_fit(cfg_, prog_, comm_, num_train_, h, on_epoch);
}

}  // namespace shardrec
