#include "core/ncf_model.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/thread_pool.h"
#include "core/gpu_pointwise.h"
#include "core/idl_loss.h"
#include "core/labeled_metrics.h"
#include "core/model_kind.h"
#include "core/planner.h"
#include "kernels/embedding_ops.h"

namespace shardrec {

namespace {
constexpr double kFixed = 17592186044416.0;  // 2^44
// Round-to-nearest of x (|x| < 2^51) as an int64: adding 1.5 * 2^52 leaves the integer in the
// low mantissa bits. Cheaper than llround and vectorisable.
constexpr double kMagic = 6755399441055744.0;
inline int64_t fixed(double x) {
  return std::bit_cast<int64_t>(x + kMagic) - std::bit_cast<int64_t>(kMagic);
}
// Values this large would leave the exact range (2^50 / 2^44): a diverged run.
constexpr double kMaxAbs = 64.0;
[[noreturn]] void too_large() {
  fail("training diverged: a dense gradient contribution is not finite or exceeds " +
       std::to_string(kMaxAbs) + " (lower the learning rate?)");
}
float max_abs(const float* v, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(v[i]));
  return m;
}

dist::InitSpec embedding_init() {
  dist::InitSpec s;
  s.kind = dist::InitSpec::Kind::kNormal;
  s.scale = 0.01;
  return s;
}
int mlp_width(const TrainConfig& cfg) {
  return cfg.model == "neumf" ? cfg.dim * (1 << (cfg.mlp_layers - 1)) : 0;
}
}  // namespace

void DenseGradAccum::add(size_t off, const float* v, int n) {
  const float m = max_abs(v, n);
  if (!(m < kMaxAbs)) too_large();
  int64_t* a = acc_.data() + off;
  for (int i = 0; i < n; ++i) a[i] += fixed(static_cast<double>(v[i]) * kFixed);
}

void DenseGradAccum::add_outer(size_t off, const float* a, int na, const float* x, int nx) {
  const float ma = max_abs(a, na), mx = max_abs(x, nx);
  if (!(static_cast<double>(ma) * mx < kMaxAbs)) too_large();
  for (int r = 0; r < na; ++r) {
    if (a[r] == 0.0f) continue;  // ReLU zeros: nothing to add
    const double ar = static_cast<double>(a[r]) * kFixed;
    int64_t* row = acc_.data() + off + static_cast<size_t>(r) * nx;
    // The product a[r] * x[c] is formed in double: exact for two floats, so the only rounding is
    // the one to fixed point.
    for (int c = 0; c < nx; ++c) row[c] += fixed(ar * static_cast<double>(x[c]));
  }
}

void DenseGradAccum::allreduce(dist::Comm& comm, float* out) {
  comm.allreduce_sum(acc_.data(), acc_.size());
  for (size_t i = 0; i < acc_.size(); ++i) out[i] = static_cast<float>(static_cast<double>(acc_[i]) / kFixed);
}

NcfModel::NcfModel(const TrainConfig& cfg, const dist::Sharding& user_sharding, int64_t num_items,
                   int rank)
    : Model(dist::ShardedEmbedding("user", 0, user_sharding.rows(), cfg.dim + mlp_width(cfg), user_sharding, rank,
                                   cfg.seed, embedding_init(), cfg.opt),
            dist::ShardedEmbedding("item", 1, num_items, cfg.dim + mlp_width(cfg),
                                   dist::Sharding::parse(cfg.item_sharding, num_items, user_sharding.world()), rank,
                                   cfg.seed, embedding_init(), cfg.opt)),
      neumf_(cfg.model == "neumf"),
      gmf_dim_(cfg.dim),
      mlp_dim_(mlp_width(cfg)),
      opt_cfg_(cfg.opt) {
  size_t off = 0;
  CounterRng rng(cfg.seed, 0x4e43, 0x46);
  auto uniform = [&](size_t at, size_t n, double bound) {
    for (size_t k = 0; k < n; ++k) dense[at + k] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  };
  act_size_ = gmf_dim_;
  if (neumf_) {
    act_size_ += 2 * mlp_dim_;
    for (int in = 2 * mlp_dim_, l = 0; l < cfg.mlp_layers; ++l, in /= 2) {
      mlp_.push_back({in, in / 2, off, off + static_cast<size_t>(in) * (in / 2)});
      off += static_cast<size_t>(in) * (in / 2) + in / 2;
      act_size_ += in / 2;
    }
  }
  const int pin = gmf_dim_ + (neumf_ ? mlp_.back().out : 0);
  pred_ = {pin, 1, off, off + pin};
  off += pin + 1;
  dense.assign(off, 0.0f);  // biases stay 0
  for (const Layer& L : mlp_)  // Xavier-uniform
    uniform(L.w, static_cast<size_t>(L.in) * L.out, std::sqrt(6.0 / (L.in + L.out)));
  uniform(pred_.w, pin, std::sqrt(3.0 / pin));  // Kaiming-uniform, a = 1
  reset_dense_optimizer();
  draws_negative_ = cfg.loss == "bce-neg";
  for (auto& g : gd_) g.resize(dense.size());
  gdense_.resize(dense.size());
}

std::pair<double, double> NcfModel::weights(const StepBatch& b) {
  // Plain steps weigh every row alike; the meta-step's labeled and unlabeled means are separate.
  const int per = b.per;
  const int64_t lab = b.global_n, unl = b.global_n * (per - 1);
  const double c_lab = 1.0 / static_cast<double>(b.meta ? lab : lab + unl);
  return {c_lab, per == 1 ? 0.0 : b.meta ? 1.0 / static_cast<double>(lab * (per - 1)) : c_lab};
}

void NcfModel::pass(const StepBatch& b, const PassArgs& a) {
  const int R = row_dim(), per = b.per;
  const size_t n = b.n;
  auto [c_lab, c_unl] = weights(b);
  if (a.terms == Terms::kDraws) c_lab = 0;
  if (a.terms == Terms::kOwn) c_unl = 0;
  c_lab *= a.scale;
  c_unl *= a.scale;
  const float* w = a.w ? a.w : dense.data();
  if (a.gU) {
    std::fill(a.gU, a.gU + n * R, 0.0f);
    std::fill(a.gI, a.gI + n * per * R, 0.0f);
    gd_[a.grad].clear();
  }
  // Rows are independent; their losses and dense gradients sum exactly, so threads may split them.
  auto rows = [&](size_t lo, size_t hi, float* act, dist::ExactSums* loss, DenseGradAccum& gd) {
    for (size_t i = lo; i < hi; ++i) {
      const float* u = a.U + i * R;
      for (int k = 0; k < per; ++k) {
        const bool own = k == 0;
        const double c = own ? c_lab : c_unl;
        if (c == 0) continue;
        const size_t o = i * per + k;
        const float* it = a.I + o * R;
        const float y = forward(u, it, w, act);
        double dy = 0;
        const double l =
            own ? idl::bce(y, b.label[i], &dy) : (draws_negative_ ? idl::bce(y, 0.0, &dy) : idl::dual(y, &dy));
        if (a.gU && !std::isfinite(l))
          fail("training diverged: a loss term is " + std::to_string(l) + " on rank " + std::to_string(b.rank) +
               " (lower the learning rate?)");
        if (loss) loss->add(own ? a.slot_own : a.slot_draw, l);
        if (a.gU) backward(static_cast<float>(dy * c), u, it, w, act, a.gU + i * R, a.gI + o * R, gd);
      }
    }
  };
  const int T = a.pool ? a.pool->size() : 1;
  if (T == 1) {
    rows(0, n, act_.get(act_size_), a.loss, gd_[a.grad]);
    return;
  }
  float* acts = act_.get(static_cast<size_t>(act_size_) * T);
  std::vector<dist::ExactSums> part(a.loss ? T : 0, a.loss ? *a.loss : dist::ExactSums(0));
  for (auto& p : part) p.clear();
  if (a.gU) {
    gd_part_.resize(T);
    for (auto& g : gd_part_) g.resize(dense.size());
  }
  a.pool->run(n, [&](size_t lo, size_t hi, int t) {
    rows(lo, hi, acts + static_cast<size_t>(t) * act_size_, a.loss ? &part[t] : nullptr, a.gU ? gd_part_[t] : gd_[a.grad]);
  });
  for (const auto& p : part) a.loss->merge(p);
  if (a.gU)
    for (const auto& g : gd_part_) gd_[a.grad].add_from(g);
}

void NcfModel::apply_dense(dist::Comm& comm) {
  gd_[0].allreduce(comm, gdense_.data());
  apply_dense(gdense_.data());
}

EvalResult NcfModel::evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) {
  const io::UserSlice& sl = data.split[split];
  const double threshold = label_threshold(cfg, data.info);
  const int R = row_dim();
  const int64_t n = sl.rows(), chunk = 8192;
  // route/gather are collectives: every rank runs as many chunks as the rank with the most rows.
  // The ranks' row counts also give the progress line the rows of all ranks done.
  std::vector<uint64_t> counts(comm.size());
  comm.allgather_u64(static_cast<uint64_t>(n), counts.data());
  int64_t chunks = 0, total = 0;
  for (const uint64_t v : counts) {
    chunks = std::max(chunks, (static_cast<int64_t>(v) + chunk - 1) / chunk);
    total += static_cast<int64_t>(v);
  }
  if (cfg.eval.progress) cfg.eval.progress->begin(total, "rows");
  metrics::LabeledRows mine;
  std::vector<int64_t> uid, iid;
  std::vector<float> U, I;
  std::vector<float> act(act_size());
  int64_t row = 0, u = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    uid.clear();
    iid.clear();
    const int64_t end = std::min(n, row + chunk);
    for (int64_t r = row; r < end; ++r) {
      while (r >= sl.ptr[u + 1]) ++u;
      uid.push_back(sl.user_lo + u);
      iid.push_back(sl.item[r]);
    }
    auto ur = user.route(comm, uid, true);
    auto ir = item.route(comm, iid);
    U.resize(uid.size() * R);
    I.resize(iid.size() * R);
    user.gather(comm, ur, U.data());
    item.gather(comm, ir, I.data());
    for (size_t k = 0; k < uid.size(); ++k) {
      mine.user.push_back(uid[k]);
      mine.item.push_back(iid[k]);
      mine.label.push_back(sl.rating[row + static_cast<int64_t>(k)] > threshold ? 1 : 0);
      mine.logit.push_back(forward(&U[k * R], &I[k * R], dense.data(), act.data()));
    }
    row = end;
    if (cfg.eval.progress) {
      int64_t done = 0;
      for (const uint64_t v : counts) done += std::min(static_cast<int64_t>(v), (c + 1) * chunk);
      cfg.eval.progress->update(done);
    }
  }
  // Every rank gets all rows in rank order, which is dataset order: the metrics do not depend on
  // the number of ranks.
  metrics::LabeledRows all;
  for (auto& v : dist::allgather(comm, mine.user)) all.user.insert(all.user.end(), v.begin(), v.end());
  for (auto& v : dist::allgather(comm, mine.item)) all.item.insert(all.item.end(), v.begin(), v.end());
  for (auto& v : dist::allgather(comm, mine.label)) all.label.insert(all.label.end(), v.begin(), v.end());
  for (auto& v : dist::allgather(comm, mine.logit)) all.logit.insert(all.logit.end(), v.begin(), v.end());
  EvalResult res;
  res.values = metrics::labeled_metrics(
      all, cfg.eval.ks,
      cfg.eval.gauc_impressions ? metrics::GaucWeight::kImpressions : metrics::GaucWeight::kUnweighted);
  res.users = static_cast<int64_t>(res.values["users"]);
  res.values.erase("users");
  return res;
}

std::unique_ptr<StepEngine> NcfModel::cuda_engine(const TrainConfig& cfg, const io::DataShard& data,
                                                  dist::Comm& comm, const uint8_t* labels) {
  return make_ncf_cuda_engine(cfg, *this, data, comm, labels);
}

bool NcfModel::dot_form(std::string* why) const {
  if (neumf_ && why)
    *why = "the MLP over [a_u, c_i] does not factor into a user vector and an item vector";
  return !neumf_;
}

RetrievalVectors NcfModel::retrieval_vectors() const {
  std::string why;
  if (!dot_form(&why)) fail("neumf has no dot-product form: " + why);
  const int d = gmf_dim_;
  RetrievalVectors v;
  v.dim = d;
  v.user = user.local_data();
  v.item = item.local_data();
  const float* wp = dense.data() + pred_.w;
  for (size_t at = 0; at < v.item.size(); at += d)
    for (int k = 0; k < d; ++k) v.item[at + k] *= wp[k];
  v.offset = dense[pred_.b];
  char b[64];
  std::snprintf(b, sizeof b, "%.10g", static_cast<double>(v.offset));
  v.note = std::string("gmf: logit = user . item + ") + b;
  return v;
}

void NcfModel::score_block(const float* const* U, size_t nu, const float* I, size_t n, float* out) const {
  const int R = row_dim();
  std::vector<float> act(act_size_);
  for (size_t u = 0; u < nu; ++u)
    for (size_t l = 0; l < n; ++l) out[u * n + l] = forward(U[u], I + l * R, dense.data(), act.data());
}

void NcfModel::reset_dense_optimizer() {
  opt_ = std::make_unique<RowOptimizer>(opt_cfg_, 1, static_cast<int>(dense.size()));
}

void NcfModel::apply_dense(const float* grad) {
  opt_->begin_step();
  opt_->update(0, dense.data(), grad);
}

float NcfModel::forward(const float* u, const float* it, const float* w, float* act) const {
  const int g = gmf_dim_;
  float* p = act;
  for (int k = 0; k < g; ++k) p[k] = u[k] * it[k];
  float y = kernels::dot(w + pred_.w, p, g);
  if (neumf_) {
    float* x = act + g;
    std::memcpy(x, u + g, mlp_dim_ * sizeof(float));
    std::memcpy(x + mlp_dim_, it + g, mlp_dim_ * sizeof(float));
    for (const Layer& L : mlp_) {
      float* h = x + L.in;
      for (int o = 0; o < L.out; ++o) {
        const float z = w[L.b + o] + kernels::dot(w + L.w + static_cast<size_t>(o) * L.in, x, L.in);
        h[o] = z > 0.0f ? z : 0.0f;
      }
      x = h;
    }
    y += kernels::dot(w + pred_.w + g, x, mlp_.back().out);
  }
  return y + w[pred_.b];
}

void NcfModel::backward(float dy, const float* u, const float* it, const float* w, const float* act,
                        float* gu, float* gi, DenseGradAccum& gd) const {
  const int g = gmf_dim_;
  const float* p = act;
  const float* wp = w + pred_.w;
  for (int k = 0; k < g; ++k) {
    const float dp = dy * wp[k];
    gu[k] += dp * it[k];
    gi[k] += dp * u[k];
  }
  gd.add_outer(pred_.w, &dy, 1, p, g);
  gd.add(pred_.b, &dy, 1);
  if (!neumf_) return;
  // Walk the MLP backwards; x_l are the stored layer inputs.
  const int L = static_cast<int>(mlp_.size());
  std::vector<const float*> in(L);
  const float* x = act + g;
  for (int l = 0; l < L; ++l) {
    in[l] = x;
    x += mlp_[l].in;
  }
  const float* h_last = x;  // output of the last layer
  float buf_a[4096], buf_b[4096];
  float* dh = buf_a;
  const int out_last = mlp_.back().out;
  gd.add_outer(pred_.w + g, &dy, 1, h_last, out_last);
  for (int o = 0; o < out_last; ++o) dh[o] = dy * wp[g + o];
  const float* h = h_last;
  for (int l = L - 1; l >= 0; --l) {
    const Layer& Ly = mlp_[l];
    for (int o = 0; o < Ly.out; ++o)
      if (!(h[o] > 0.0f)) dh[o] = 0.0f;  // ReLU
    gd.add_outer(Ly.w, dh, Ly.out, in[l], Ly.in);
    gd.add(Ly.b, dh, Ly.out);
    float* dx = dh == buf_a ? buf_b : buf_a;
    std::fill(dx, dx + Ly.in, 0.0f);
    for (int o = 0; o < Ly.out; ++o)
      if (dh[o] != 0.0f) kernels::axpy(dh[o], w + Ly.w + static_cast<size_t>(o) * Ly.in, dx, Ly.in);
    dh = dx;
    h = in[l];
  }
  const int m = mlp_dim_;
  for (int k = 0; k < m; ++k) {
    gu[g + k] += dh[k];
    gi[g + k] += dh[m + k];
  }
}

namespace {
// What GMF and NeuMF share: labeled rows, the Inverse Learning losses and strategies.
ModelKind pointwise_kind(const char* name, const char* summary, bool neumf) {
  ModelKind k;
  k.name = name;
  k.summary = summary;
  k.pointwise = true;
  k.losses = {"bce", "idl", "bce-neg"};
  k.strategies = {"plain", "ig"};
  k.validate = [neumf](const TrainConfig& c, const Need& need) {
    need(c.strategy != "ig" || c.loss == "idl", "loss",
         "strategy ig steps its candidates on the inverse dual loss: use --loss idl");
    need(c.mlp_layers >= 1 && c.mlp_layers <= 8, "mlp-layers", "must be in 1..8");
    need(!neumf || 2 * c.dim * (1 << (c.mlp_layers - 1)) <= 4096, "mlp-layers",
         "the MLP input (2 * dim * 2^(layers-1)) must be at most 4096 wide");
    need(std::isfinite(c.label_threshold), "label-threshold", "must be a finite number");
    need(c.il_unlabeled >= 1 && c.il_unlabeled <= 1000, "il-unlabeled", "must be in 1..1000");
    need(c.ig_sample_lr >= 0 && std::isfinite(c.ig_sample_lr), "ig-sample-lr", "must be a non-negative number");
    need(c.ig_train_ratio > 0 && c.ig_train_ratio < 1, "ig-train-ratio", "must be in (0, 1)");
  };
  k.make = [](const TrainConfig& c, const io::DataShard& data, int rank) -> std::unique_ptr<Model> {
    return std::make_unique<NcfModel>(c, data.users, data.info.num_items, rank);
  };
  k.shape = [name, neumf](const PlanInput& in) {
    if (!in.loss.empty() && in.loss != "bce" && in.loss != "idl" && in.loss != "bce-neg")
      fail("plan: --loss '" + in.loss + "': expected bce, idl or bce-neg for " + name);
    const double d = in.dim;
    const double per = in.loss == "idl" || in.loss == "bce-neg" ? 1.0 + in.unlabeled : 1.0;
    if (!neumf) return ModelShape{d, d, 0, per, d + 1};
    // The MLP input 2m, each layer halving it, then the prediction layer over [gmf, mlp out].
    const double m = d * std::ldexp(1.0, in.mlp_layers - 1);
    double dense = 0, width = 2 * m;
    for (int l = 0; l < in.mlp_layers; ++l, width /= 2) dense += width * (width / 2) + width / 2;
    dense += d + width + 1;
    return ModelShape{d + m, d + m, 0, per, dense};
  };
  return k;
}
}  // namespace

ModelKind gmf_kind() { return pointwise_kind("gmf", "GMF: y = w . (p_u * q_i) + b, on labeled rows", false); }
ModelKind neumf_kind() {
  return pointwise_kind("neumf", "NeuMF: GMF and an MLP over [a_u, c_i], on labeled rows", true);
}

}  // namespace shardrec
