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

LightGcnModel::LightGcnModel(const TrainConfig& cfg, const io::DataShard& data, int rank, GraphVariant v)
    : Model(dist::ShardedEmbedding("user", 0, data.users.rows(), cfg.dim, data.users, rank, cfg.seed, cfg.init,
                                   cfg.opt),
            dist::ShardedEmbedding("item", 1, data.info.num_items, cfg.dim,
                                   dist::Sharding::parse(cfg.item_sharding, data.info.num_items, data.users.world()),
                                   rank, cfg.seed, cfg.init, cfg.opt)),
      layers_(cfg.graph_layers),
      l2_(cfg.l2),
      v_(v),
      seed_(cfg.seed) {
  const io::UserSlice& tr = data.train();
  ptr_ = tr.ptr;
  edges_ = tr.item;
  scoring_ = std::make_unique<MFModel>(scoring_config(cfg), data.users, data.info.num_items, rank);
  terms_ = scoring_->terms_per_sample(cfg);
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

void LightGcnModel::propagate(dist::Comm& comm, const NoiseKey* noise) {
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
  const bool contrast = noise && v_.cl_layer > 0;
  // A layer's rows after the product: the training noise, and a copy of layer l*'s.
  auto finish = [&](int k, float* xu, float* xi) {
    if (noise && v_.eps > 0.0f) {
      add_layer_noise(*noise, k, 0, user.sharding(), user.rank(), v_.eps, xu, user.local_rows(), d, pool_);
      add_layer_noise(*noise, k, 1, item.sharding(), item.rank(), v_.eps, xi, item.local_rows(), d, pool_);
    }
    if (contrast && k == v_.cl_layer) {
      lay_u_.assign(xu, xu + nu);
      lay_i_.assign(xi, xi + ni);
    }
  };
  // E^(1) from the tables themselves, then each layer from the last; the sum in layer order.
  g.multiply(comm, user.local_data().data(), item.local_data().data(), cur_u_.data(), cur_i_.data(), d, pool_);
  finish(1, cur_u_.data(), cur_i_.data());
  if (v_.from_layer1) {
    std::memcpy(Eu, cur_u_.data(), nu * sizeof(float));
    std::memcpy(Ei, cur_i_.data(), ni * sizeof(float));
  } else {
    add_into(Eu, cur_u_.data(), nu);
    add_into(Ei, cur_i_.data(), ni);
  }
  for (int k = 2; k <= layers_; ++k) {
    g.multiply(comm, cur_u_.data(), cur_i_.data(), nxt_u_.data(), nxt_i_.data(), d, pool_);
    finish(k, nxt_u_.data(), nxt_i_.data());
    add_into(Eu, nxt_u_.data(), nu);
    add_into(Ei, nxt_i_.data(), ni);
    cur_u_.swap(nxt_u_);
    cur_i_.swap(nxt_i_);
  }
  const float w = 1.0f / static_cast<float>(v_.from_layer1 ? layers_ : layers_ + 1);
  scale_into(Eu, w, nu);
  scale_into(Ei, w, ni);
}

void LightGcnModel::refresh_rows(dist::Comm& comm, const StepBatch& b) {
  if (v_.eps == 0.0f && v_.cl_layer == 0) return propagate(comm);
  // Each training propagation of a step draws its own noise (Mirror Gradient's second pass too).
  if (key_.epoch == b.epoch && key_.step == b.step) {
    ++key_.pass;
  } else {
    key_ = NoiseKey{seed_, b.epoch, b.step, 0};
  }
  propagate(comm, &key_);
}

void LightGcnModel::backward(dist::Comm& comm, float* gu, float* gi, const float* lu, const float* li) {
  if (layers_ == 0) return;  // E = E^(0)
  dist::BipartiteGraph& g = graph(comm);
  const int d = user.dim();
  const size_t nu = user.local_data().size(), ni = item.local_data().size();
  nxt_u_.resize(nu);
  nxt_i_.resize(ni);
  if (!v_.from_layer1) {
    // Horner: h = G; K times h = A h + G; dL/dE^(0) = h / (K+1), which is 1/(K+1) sum_k A^k G.
    cur_u_.assign(gu, gu + nu);
    cur_i_.assign(gi, gi + ni);
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
    return;
  }
  // E = 1/K sum_{k=1..K} E^(k) (the noise is a constant of each layer): the gradient on layer k
  // is dk = G/K + [k = l*] Gl + A d(k+1), down to dL/dE^(0) = A d1.
  const float w = 1.0f / static_cast<float>(layers_);
  auto layer_grad = [&](int k, float* hu, float* hi, bool add_prev) {
    for (size_t j = 0; j < nu; ++j) hu[j] = (add_prev ? hu[j] : 0.0f) + gu[j] * w;
    for (size_t j = 0; j < ni; ++j) hi[j] = (add_prev ? hi[j] : 0.0f) + gi[j] * w;
    if (lu && k == v_.cl_layer) {
      add_into(hu, lu, nu);
      add_into(hi, li, ni);
    }
  };
  cur_u_.resize(nu);
  cur_i_.resize(ni);
  layer_grad(layers_, cur_u_.data(), cur_i_.data(), false);
  for (int k = layers_ - 1; k >= 1; --k) {
    g.multiply(comm, cur_u_.data(), cur_i_.data(), nxt_u_.data(), nxt_i_.data(), d, pool_);
    layer_grad(k, nxt_u_.data(), nxt_i_.data(), true);
    cur_u_.swap(nxt_u_);
    cur_i_.swap(nxt_i_);
  }
  g.multiply(comm, cur_u_.data(), cur_i_.data(), gu, gi, d, pool_);
}

void LightGcnModel::pass(const StepBatch& b, const PassArgs& a) {
  scoring_->pass(b, a);
  if (a.gU && a.grad == 0) {
    reg_ = a.scale * l2_ / static_cast<float>(b.global_n);
    scale_ = a.scale;
    loss_ = a.loss;
    loss_slot_ = a.slot_own;
    per_ = b.per;
    global_n_ = b.global_n;
  }
}

void LightGcnModel::apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey,
                               const float* gU, const dist::Routing& ir, std::span<const uint64_t> ikey,
                               const float* gI) {
  // dL/dE on the rows this rank owns, then back through the propagation, then the rows' step
  // (core/model.h).
  reduce_row_grads(comm, user, ur, ukey, gU, gu_, cnt_u_);
  reduce_row_grads(comm, item, ir, ikey, gI, gi_, cnt_i_);
  if (v_.cl_layer > 0) {
    contrast(comm, ir);
    backward(comm, gu_.data(), gi_.data(), glu_.data(), gli_.data());
  } else {
    backward(comm, gu_.data(), gi_.data());
  }
  update_rows(user, gu_, cnt_u_, reg_, pool_);
  update_rows(item, gi_, cnt_i_, reg_, pool_);
}

void LightGcnModel::contrast(dist::Comm& comm, const dist::Routing& ir) {
  const int d = user.dim();
  glu_.assign(user.local_data().size(), 0.0f);
  gli_.assign(item.local_data().size(), 0.0f);
  // The anchors: this rank's samples' users (every one local) and positive items (slot 0).
  ContrastSide us, is;
  us.sharding = &user.sharding();
  is.sharding = &item.sharding();
  for (int64_t l = 0; l < user.local_rows(); ++l)
    if (cnt_u_[l] > 0) us.ids.push_back(user.sharding().global_id(user.rank(), l));
  for (size_t k = 0; k < ir.num_ids; k += static_cast<size_t>(per_))
    is.ids.push_back(item.sharding().global_id(ir.owner[k], ir.local[k]));
  us.v1 = scoring_->user.local_data().data();
  is.v1 = scoring_->item.local_data().data();
  us.v2 = lay_u_.data();
  is.v2 = lay_i_.data();
  us.g1 = gu_.data();
  is.g1 = gi_.data();
  us.g2 = glu_.data();
  is.g2 = gli_.data();
  // The epoch's loss divides by samples x terms per sample: each step's contrast counts once per
  // sample term, so the logged loss is the mean of BPR + lambda * InfoNCE.
  const double loss_coef = static_cast<double>(v_.cl_lambda) * static_cast<double>(global_n_) * terms_;
  cross_layer_info_nce(comm, us, is, d, v_.cl_tau, scale_ * v_.cl_lambda, loss_coef, loss_, loss_slot_, pool_);
}

EvalResult LightGcnModel::evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) {
  propagate(comm);
  return scoring_->evaluate(data, split, cfg, comm);
}

std::vector<const dist::ShardedEmbedding*> LightGcnModel::exported_tables(dist::Comm& comm) {
  propagate(comm);
  return {&scoring_->user, &scoring_->item};
}

std::unique_ptr<StepEngine> LightGcnModel::cuda_engine(const TrainConfig& cfg, const io::DataShard&, dist::Comm&,
                                                       const uint8_t*) {
  fail("model " + cfg.model + " has no CUDA engine yet (its graph propagation runs on the CPU backend): use --device cpu");
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
    need(c.device != "cuda", "device", "model " + c.model + " has no CUDA engine yet: use --device cpu");
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
