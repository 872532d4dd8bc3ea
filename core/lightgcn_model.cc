#include "core/lightgcn_model.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "core/model_kind.h"
#include "core/planner.h"

namespace shardrec {

namespace {
// The scoring rows live in an MF model of the same shape whose tables keep no optimizer state
// and no L2 (the L2 term is on the layer-0 rows, added at their owners).
TrainConfig scoring_config(const TrainConfig& cfg) {
  TrainConfig c = cfg;
  c.model = "mf";
  c.l2 = 0.0f;
  c.opt.kind = OptimizerConfig::Kind::kSgd;
  return c;
}

// Whole shards (size_t lengths; kernels::add takes a row's int width).
void add_into(float* y, const float* x, size_t n) {
  for (size_t k = 0; k < n; ++k) y[k] += x[k];
}
void scale_into(float* y, float c, size_t n) {
  for (size_t k = 0; k < n; ++k) y[k] *= c;
}
}  // namespace

LightGcnModel::LightGcnModel(const TrainConfig& cfg, const io::DataShard& data, int rank)
    : Model(dist::ShardedEmbedding("user", 0, data.users.rows(), cfg.dim, data.users, rank, cfg.seed, cfg.init,
                                   cfg.opt),
            dist::ShardedEmbedding("item", 1, data.info.num_items, cfg.dim,
                                   dist::Sharding::parse(cfg.item_sharding, data.info.num_items, data.users.world()),
                                   rank, cfg.seed, cfg.init, cfg.opt)),
      layers_(cfg.graph_layers),
      l2_(cfg.l2) {
  const io::UserSlice& tr = data.train();
  ptr_ = tr.ptr;
  edges_ = tr.item;
  scoring_ = std::make_unique<MFModel>(scoring_config(cfg), data.users, data.info.num_items, rank);
}

dist::BipartiteGraph& LightGcnModel::graph(dist::Comm& comm) {
  if (!graph_) graph_ = std::make_unique<dist::BipartiteGraph>(comm, user.sharding(), item.sharding(), ptr_, edges_);
  return *graph_;
}

void LightGcnModel::set_threads(ThreadPool* pool) {
  Model::set_threads(pool);
  scoring_->set_threads(pool);
  pool_ = pool;
}

void LightGcnModel::propagate(dist::Comm& comm) {
  dist::BipartiteGraph& g = graph(comm);
  const int d = user.dim();
  const size_t nu = user.local_data().size(), ni = item.local_data().size();
  float* Eu = scoring_->user.local_data().data();
  float* Ei = scoring_->item.local_data().data();
  std::memcpy(Eu, user.local_data().data(), nu * sizeof(float));
  std::memcpy(Ei, item.local_data().data(), ni * sizeof(float));
  if (layers_ == 0) return;
  cur_u_.resize(nu);
  cur_i_.resize(ni);
  nxt_u_.resize(nu);
  nxt_i_.resize(ni);
  // E^(1) from the tables themselves, then each layer from the last; the sum in layer order.
  g.multiply(comm, user.local_data().data(), item.local_data().data(), cur_u_.data(), cur_i_.data(), d, pool_);
  add_into(Eu, cur_u_.data(), nu);
  add_into(Ei, cur_i_.data(), ni);
  for (int k = 2; k <= layers_; ++k) {
    g.multiply(comm, cur_u_.data(), cur_i_.data(), nxt_u_.data(), nxt_i_.data(), d, pool_);
    add_into(Eu, nxt_u_.data(), nu);
    add_into(Ei, nxt_i_.data(), ni);
    cur_u_.swap(nxt_u_);
    cur_i_.swap(nxt_i_);
  }
  const float w = 1.0f / static_cast<float>(layers_ + 1);
  scale_into(Eu, w, nu);
  scale_into(Ei, w, ni);
}

void LightGcnModel::backward(dist::Comm& comm, float* gu, float* gi) {
  if (layers_ == 0) return;  // E = E^(0)
  dist::BipartiteGraph& g = graph(comm);
  const int d = user.dim();
  const size_t nu = user.local_data().size(), ni = item.local_data().size();
  // Horner: h = G; K times h = A h + G; dL/dE^(0) = h / (K+1), which is 1/(K+1) sum_k A^k G.
  cur_u_.assign(gu, gu + nu);
  cur_i_.assign(gi, gi + ni);
  nxt_u_.resize(nu);
  nxt_i_.resize(ni);
  for (int k = 0; k < layers_; ++k) {
    g.multiply(comm, cur_u_.data(), cur_i_.data(), nxt_u_.data(), nxt_i_.data(), d, pool_);
    add_into(nxt_u_.data(), gu, nu);
    add_into(nxt_i_.data(), gi, ni);
    cur_u_.swap(nxt_u_);
    cur_i_.swap(nxt_i_);
  }
  const float w = 1.0f / static_cast<float>(layers_ + 1);
  for (size_t k = 0; k < nu; ++k) gu[k] = cur_u_[k] * w;
  for (size_t k = 0; k < ni; ++k) gi[k] = cur_i_[k] * w;
}

void LightGcnModel::pass(const StepBatch& b, const PassArgs& a) {
  scoring_->pass(b, a);
  if (a.gU && a.grad == 0) reg_ = a.scale * l2_ / static_cast<float>(b.global_n);
}

void LightGcnModel::apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey,
                               const float* gU, const dist::Routing& ir, std::span<const uint64_t> ikey,
                               const float* gI) {
  const int d = user.dim();
  // dL/dE on the rows this rank owns, summed in key order (zero on the rows no sample scored).
  auto reduce = [&](dist::ShardedEmbedding& t, const dist::Routing& r, std::span<const uint64_t> keys,
                    const float* g, std::vector<float>& out, std::vector<uint32_t>& cnt) {
    out.assign(t.local_data().size(), 0.0f);
    cnt.assign(static_cast<size_t>(t.local_rows()), 0);
    t.reduce_counted(comm, r, keys, g, [&](int64_t row, const float* sum, uint32_t c) {
      std::memcpy(&out[static_cast<size_t>(row) * d], sum, d * sizeof(float));
      cnt[row] = c;
    });
  };
  reduce(user, ur, ukey, gU, gu_, cnt_u_);
  reduce(item, ir, ikey, gI, gi_, cnt_i_);
  backward(comm, gu_.data(), gi_.data());
  // L2 on the samples' layer-0 rows (once per occurrence), then the optimizer on every row that
  // has a gradient (dense optimizers: every row), as ShardedEmbedding::apply does.
  auto update = [&](dist::ShardedEmbedding& t, std::vector<float>& grad, const std::vector<uint32_t>& cnt) {
    RowOptimizer& opt = t.optimizer();
    opt.begin_step();
    const bool dense = opt.config().dense();
    parallel(pool_, static_cast<size_t>(t.local_rows()), [&](size_t lo, size_t hi, int) {
      for (size_t l = lo; l < hi; ++l) {
        float* g = &grad[l * d];
        float* w = t.local_row(static_cast<int64_t>(l));
        if (cnt[l] > 0 && reg_ != 0.0f) {
          const float c = reg_ * static_cast<float>(cnt[l]);
          for (int k = 0; k < d; ++k) g[k] += c * w[k];
        }
        bool touched = cnt[l] > 0;
        for (int k = 0; k < d && !touched; ++k) touched = g[k] != 0.0f;
        if (touched || dense) opt.update(static_cast<int64_t>(l), w, touched ? g : nullptr);
      }
    });
  };
  update(user, gu_, cnt_u_);
  update(item, gi_, cnt_i_);
}

EvalResult LightGcnModel::evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) {
  propagate(comm);
  return scoring_->evaluate(data, split, cfg, comm);
}

std::vector<const dist::ShardedEmbedding*> LightGcnModel::exported_tables(dist::Comm& comm) {
  propagate(comm);
  return {&scoring_->user, &scoring_->item};
}

std::unique_ptr<StepEngine> LightGcnModel::cuda_engine(const TrainConfig&, const io::DataShard&, dist::Comm&,
                                                       const uint8_t*) {
  fail("model lightgcn has no CUDA engine yet (its graph propagation runs on the CPU backend): use --device cpu");
}

ModelKind lightgcn_kind() {
  ModelKind k;
  k.name = "lightgcn";
  k.summary = "LightGCN: score <e_u, e_i>, E the mean of K propagations over the user-item graph";
  k.graph = true;
  k.losses = {"bpr", "bce"};
  k.strategies = {"plain", "mirror"};
  k.validate = [](const TrainConfig& c, const Need& need) {
    need(c.graph_layers >= 0 && c.graph_layers <= 16, "graph-layers", "must be in 0..16");
    need(c.device != "cuda", "device", "model lightgcn has no CUDA engine yet: use --device cpu");
  };
  k.make = [](const TrainConfig& c, const io::DataShard& data, int rank) -> std::unique_ptr<Model> {
    return std::make_unique<LightGcnModel>(c, data, rank);
  };
  k.shape = [](const PlanInput& in) {
    const double d = in.dim;
    ModelShape sh{d, d, 0, 1.0 + in.negatives, 0};
    sh.graph_layers = in.graph_layers;
    return sh;
  };
  return k;
}

}  // namespace shardrec
