#include "core/mf_model.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "base/math.h"
#include "base/rng.h"
#include "base/thread_pool.h"
#include "core/evaluator.h"
#include "core/gpu_backend.h"
#include "core/model_kind.h"
#include "core/planner.h"
#include "io/features.h"
#include "io/hdf5_util.h"

namespace shardrec {

namespace {
int user_width(const TrainConfig& cfg) { return cfg.model == "vbpr" ? 2 * cfg.dim : cfg.dim; }
}  // namespace

MFModel::MFModel(const TrainConfig& cfg, const dist::Sharding& user_sharding, int64_t num_items,
                 int rank, const std::string& dataset)
    : Model(dist::ShardedEmbedding("user", 0, user_sharding.rows(), user_width(cfg), user_sharding, rank, cfg.seed,
                                   cfg.init, cfg.opt),
            dist::ShardedEmbedding("item", 1, num_items, cfg.dim,
                                   dist::Sharding::parse(cfg.item_sharding, num_items, user_sharding.world()), rank,
                                   cfg.seed, cfg.init, cfg.opt)),
      bpr_(cfg.loss == "bpr"),
      negs_(cfg.negatives),
      l2_(cfg.l2) {
  if (cfg.model != "vbpr") return;
  if (cfg.features.empty()) fail("option --features: vbpr needs at least one item modality of the dataset");
  if (dataset.empty()) fail("vbpr: no dataset file to read the item features from");
  // This rank's feature rows of every modality, concatenated column-wise.
  auto f = io::H5File::open_read(dataset);
  std::vector<std::vector<float>> parts;
  std::vector<int64_t> dims;
  std::stringstream names(cfg.features);
  std::string name;
  int64_t F = 0;
  while (std::getline(names, name, ',')) {
    int64_t dim = 0;
    if (!f.exists("/features/" + name))
      fail(dataset + ": no modality '" + name + "' (make it with shardrec prep --features " + name + "=...)");
    parts.push_back(io::load_modality_rows(f, name, item.sharding(), rank, &dim));
    dims.push_back(dim);
    modalities.push_back({name, static_cast<int>(dim)});
    F += dim;
  }
  OptimizerConfig frozen;
  frozen.kind = OptimizerConfig::Kind::kSgd;  // never stepped; SGD keeps no state
  features = std::make_unique<dist::ShardedEmbedding>("item_features", 2, num_items, static_cast<int>(F),
                                                      item.sharding(), rank, cfg.seed, dist::InitSpec{}, frozen);
  const int64_t L = item.local_rows();
  for (int64_t l = 0; l < L; ++l) {
    float* row = features->local_row(l);
    for (size_t p = 0; p < parts.size(); ++p) {
      std::memcpy(row, &parts[p][l * dims[p]], dims[p] * sizeof(float));
      row += dims[p];
    }
  }
  // PyTorch's default Linear initialisation, U(-1/sqrt(F), 1/sqrt(F)), from the seed alone.
  const int d = cfg.dim;
  const double bound = 1.0 / std::sqrt(static_cast<double>(F));
  CounterRng rng(cfg.seed, 0x3b9a);
  W.resize(static_cast<size_t>(d) * F);
  b.resize(d);
  for (auto& w : W) w = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  for (auto& x : b) x = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  OptimizerConfig dense = cfg.opt;
  if (dense.kind == OptimizerConfig::Kind::kAdam) dense.kind = OptimizerConfig::Kind::kAdamDense;
  opt_W_ = std::make_unique<RowOptimizer>(dense, d, static_cast<int>(F));
  opt_b_ = std::make_unique<RowOptimizer>(dense, 1, d);
  gW_.resize(W.size());
  gb_.resize(d);
  gW_sum_ = std::make_unique<dist::ExactGradientSum>(W.size(), kVbprFracBits, "vbpr.W");
  gb_sum_ = std::make_unique<dist::ExactGradientSum>(b.size(), kVbprFracBits, "vbpr.b");
}

void MFModel::pass(const StepBatch& bt, const PassArgs& a) {
  const size_t n = bt.n;
  const int per = bt.per, negs = per - 1;
  const int dq = dim();       // scoring width: the user row, and an item's q vector
  const int de = item_dim();  // item embedding row
  const bool vb = vbpr();
  const int F = feat_dim();
  const float* U = a.U;
  // q = [e, W f + b] for VBPR, the embedding row itself for MF.
  const float* Qp = a.I;
  float* gI = a.gI;
  float* gQ = vb ? gQ_.get(n * per * dq) : gI;
  if (vb) {
    float* Q = Q_.get(n * per * dq);
    item_vectors(a.I, a.F, n * per, Q);
    Qp = Q;
    // Like the table gradients, the projection's gradient is this pass's alone.
    gW_sum_->clear();
    gb_sum_->clear();
  }
  // scale multiplies the gradients only; with scale 1 every value is bit-identical to an
  // unscaled pass.
  const float scale = a.scale;
  const float inv = scale / static_cast<float>(bt.global_n * (bpr_ ? negs : per));
  const float reg = scale * l2_ / static_cast<float>(bt.global_n);
  // The samples are independent (their gradient rows are their own, their losses sum exactly), so
  // threads may split them (VBPR's q vectors before and projection sums after stay on one).
  auto samples = [&](size_t lo, size_t hi, dist::ExactSums* loss_sum) {
    float scratch[1];
    for (size_t i = lo; i < hi; ++i) {
      double loss = 0;  // this sample's terms; samples are summed exactly (any grouping)
      const float* u = &U[i * dq];
      const float* ip = &Qp[i * per * dq];
      float* gu = a.gU ? &a.gU[i * dq] : scratch;
      float* gip = a.gU ? &gQ[i * per * dq] : scratch;
      if (a.gU) {
        std::fill(gu, gu + dq, 0.0f);
        std::fill(gip, gip + per * dq, 0.0f);
      }
      const float sp = MFModel::score(u, ip, dq);
      if (bpr_) {
        for (int k = 0; k < negs; ++k) {
          const float* jn = ip + (1 + k) * dq;
          const float x = sp - MFModel::score(u, jn, dq);
          loss += hd::softplus(-static_cast<double>(x));
          if (!a.gU) continue;
          const float c = -hd::sigmoid(-x) * inv;  // d loss / d x, averaged over the batch
          kernels::bpr_backward(c, u, ip, jn, gu, gip, gip + (1 + k) * dq, dq);
        }
      } else {
        for (int k = 0; k < per; ++k) {
          const float* it = ip + k * dq;
          const float y = k == 0 ? sp : MFModel::score(u, it, dq);
          const float t = k == 0 ? 1.0f : 0.0f;
          loss += hd::softplus(static_cast<double>(y)) - t * y;
          if (!a.gU) continue;
          const float c = (hd::sigmoid(y) - t) * inv;
          kernels::axpy(c, it, gu, dq);
          kernels::axpy(c, u, gip + k * dq, dq);
        }
      }
      if (l2_ > 0) {  // on the embedding rows (the first de floats of each q)
        double r = kernels::sum_squares(u, dq);
        for (int k = 0; k < per; ++k) r += kernels::sum_squares(ip + k * dq, de);
        loss += 0.5 * l2_ * r * (bpr_ ? negs : per);  // per loss term, like the data loss
        if (a.gU) {
          kernels::axpy(reg, u, gu, dq);
          for (int k = 0; k < per; ++k) kernels::axpy(reg, ip + k * dq, gip + k * dq, de);
        }
      }
      if (!std::isfinite(loss))
        fail("training diverged: the loss of dataset row " + std::to_string(bt.row[i]) + " is " +
             std::to_string(loss) + " at epoch " + std::to_string(bt.epoch) + " step " + std::to_string(bt.step) +
             " on rank " + std::to_string(bt.rank) + " (lower the learning rate?)");
      if (loss_sum) loss_sum->add(a.slot_own, loss);
    }
  };
  // A NaN or Inf gradient would spread through the optimizer state silently: each range checks
  // the gradients it wrote (they are still in cache), and the first bad value in sample order is
  // reported below, with the tensor named.
  const int T = a.pool && a.pool->size() > 1 ? a.pool->size() : 1;
  std::vector<size_t> bad_u(T, SIZE_MAX), bad_i(T, SIZE_MAX);
  auto checked = [&](size_t lo, size_t hi, int t, dist::ExactSums* loss_sum) {
    samples(lo, hi, loss_sum);
    if (!a.gU || hi == lo) return;
    const size_t at_u = kernels::first_nonfinite(a.gU + lo * dq, (hi - lo) * dq);
    if (at_u != (hi - lo) * dq) bad_u[t] = lo * dq + at_u;
    if (vb) return;  // VBPR's q gradients are checked whole below, after the projection
    const size_t w = static_cast<size_t>(per) * dq, at_i = kernels::first_nonfinite(gI + lo * w, (hi - lo) * w);
    if (at_i != (hi - lo) * w) bad_i[t] = lo * w + at_i;
  };
  if (T > 1) {
    std::vector<dist::ExactSums> part(a.loss ? T : 0, a.loss ? *a.loss : dist::ExactSums(0));
    for (auto& p : part) p.clear();
    a.pool->run(n, [&](size_t lo, size_t hi, int t) { checked(lo, hi, t, a.loss ? &part[t] : nullptr); });
    for (const auto& p : part) a.loss->merge(p);
  } else {
    checked(0, n, 0, a.loss);
  }
  if (!a.gU) return;
  if (vb) {
    // q = [e, W f + b]: the first half of dL/dq goes to the embedding row, the second to the
    // projection, whose per-occurrence products are summed exactly (any grouping, any N).
    const float* Fb = a.F;
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
  auto check = [&](const float* g, size_t at, size_t per_sample, const char* tensor) {
    if (at == SIZE_MAX) return;
    fail(std::string("training diverged: the gradient of ") + tensor + " is " + (std::isnan(g[at]) ? "NaN" : "Inf") +
         " at epoch " + std::to_string(bt.epoch) + " step " + std::to_string(bt.step) + " on rank " +
         std::to_string(bt.rank) + " (dataset row " + std::to_string(bt.row[at / per_sample]) +
         "; lower the learning rate?)");
  };
  // Ranges are contiguous and in order: the first thread with a bad value has the first one.
  auto first = [](const std::vector<size_t>& v) {
    for (size_t at : v)
      if (at != SIZE_MAX) return at;
    return SIZE_MAX;
  };
  check(a.gU, first(bad_u), dq, "user.embedding");
  if (vb) {
    const size_t count = n * per * dq, at = kernels::first_nonfinite(gQ, count);
    check(gQ, at == count ? SIZE_MAX : at, per * dq, "item.q (item.embedding, vbpr.W, vbpr.b)");
  } else {
    check(gI, first(bad_i), per * dq, "item.embedding");
  }
}

std::unique_ptr<StepEngine> MFModel::cuda_engine(const TrainConfig& cfg, const io::DataShard& data,
                                                 dist::Comm& comm, const uint8_t*) {
  return make_mf_cuda_engine(cfg, *this, data, comm);
}

EvalResult MFModel::evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) {
  return shardrec::evaluate(*this, data, split, cfg.eval, comm);
}

std::vector<io::DenseParam> MFModel::exported_dense() {
  if (!vbpr()) return {};
  return {{"W", item_dim(), feat_dim(), &W}, {"b", item_dim(), 0, &b}};
}

void MFModel::item_vectors(const float* e, const float* f, size_t n, float* q) const {
  const int d = item_dim();
  if (!vbpr()) {
    std::memcpy(q, e, n * d * sizeof(float));
    return;
  }
  const int F = feat_dim();
  for (size_t i = 0; i < n; ++i) {
    float* qi = q + i * 2 * d;
    std::memcpy(qi, e + i * d, d * sizeof(float));
    const float* fi = f + i * F;
    for (int r = 0; r < d; ++r) qi[d + r] = kernels::dot(&W[static_cast<size_t>(r) * F], fi, F) + b[r];
  }
}

std::vector<float> MFModel::local_item_vectors() const {
  std::vector<float> q(item.local_rows() * static_cast<size_t>(dim()));
  item_vectors(item.local_data().data(), vbpr() ? features->local_data().data() : nullptr,
               item.local_rows(), q.data());
  return q;
}

RetrievalVectors MFModel::retrieval_vectors() const {
  RetrievalVectors v;
  v.dim = dim();
  v.user = user.local_data();
  v.item = local_item_vectors();
  if (vbpr()) v.note = "vbpr: the 2d scoring vectors, score = user . item";
  return v;
}

void MFModel::apply_dense(dist::Comm& comm, dist::ExactGradientSum& gW, dist::ExactGradientSum& gb) {
  gW.allreduce(comm, gW_.data());
  gb.allreduce(comm, gb_.data());
  const int d = item_dim(), F = feat_dim();
  opt_W_->begin_step();
  for (int r = 0; r < d; ++r) opt_W_->update(r, &W[static_cast<size_t>(r) * F], &gW_[static_cast<size_t>(r) * F]);
  opt_b_->begin_step();
  opt_b_->update(0, b.data(), gb_.data());
  gW.clear();
  gb.clear();
}

ModelKind mf_kind() {
  ModelKind k;
  k.name = "mf";
  k.summary = "matrix factorisation: score <p_u, e_i>";
  k.losses = {"bpr", "bce"};
  k.strategies = {"plain", "mirror"};
  k.validate = [](const TrainConfig&, const Need&) {};
  k.make = [](const TrainConfig& c, const io::DataShard& data, int rank) -> std::unique_ptr<Model> {
    return std::make_unique<MFModel>(c, data.users, data.info.num_items, rank, data.info.path);
  };
  k.shape = [](const PlanInput& in) {
    const double d = in.dim;
    return ModelShape{d, d, 0, 1.0 + in.negatives, 0};
  };
  return k;
}

ModelKind vbpr_kind() {
  ModelKind k = mf_kind();
  k.name = "vbpr";
  k.summary = "VBPR: score <p_u, [e_i, W f_i + b]> with the dataset's item features f";
  k.item_features = true;
  k.validate = [](const TrainConfig& c, const Need& need) {
    need(!c.features.empty(), "features", "vbpr needs item modalities (e.g. --features genre)");
  };
  k.shape = [](const PlanInput& in) {
    if (in.feature_dim < 1) fail("plan: model vbpr needs --feature-dim (the item features' width)");
    const double d = in.dim;
    return ModelShape{2 * d, d, static_cast<double>(in.feature_dim), 1.0 + in.negatives, d * in.feature_dim + d};
  };
  return k;
}

}  // namespace shardrec
