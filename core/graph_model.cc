#include "core/graph_model.h"

#include <cstring>

#include "base/error.h"

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
}  // namespace

GraphModel::GraphModel(const TrainConfig& cfg, const io::DataShard& data, int rank)
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

dist::BipartiteGraph& GraphModel::graph(dist::Comm& comm) {
  if (!graph_) graph_ = std::make_unique<dist::BipartiteGraph>(comm, user.sharding(), item.sharding(), ptr_, edges_);
  return *graph_;
}

void GraphModel::set_threads(ThreadPool* pool) {
  Model::set_threads(pool);
  scoring_->set_threads(pool);
  pool_ = pool;
}

void GraphModel::pass(const StepBatch& b, const PassArgs& a) {
  scoring_->pass(b, a);
  if (a.gU && a.grad == 0) reg_ = a.scale * l2_ / static_cast<float>(b.global_n);
}

void GraphModel::apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey,
                            const float* gU, const dist::Routing& ir, std::span<const uint64_t> ikey,
                            const float* gI) {
  // dL/dE on the rows this rank owns, then back through the propagation, then the rows' step
  // (core/model.h).
  reduce_row_grads(comm, user, ur, ukey, gU, gu_, cnt_u_);
  reduce_row_grads(comm, item, ir, ikey, gI, gi_, cnt_i_);
  backward_rows(comm, ir);
  update_rows(user, gu_, cnt_u_, reg_, pool_);
  update_rows(item, gi_, cnt_i_, reg_, pool_);
}

void GraphModel::mean_forward(dist::Comm& comm, dist::BipartiteGraph& g, bool from_layer1, const LayerHook& layer) {
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
  if (layer) layer(1, cur_u_.data(), cur_i_.data());
  if (from_layer1) {
    std::memcpy(Eu, cur_u_.data(), nu * sizeof(float));
    std::memcpy(Ei, cur_i_.data(), ni * sizeof(float));
  } else {
    add_into(Eu, cur_u_.data(), nu);
    add_into(Ei, cur_i_.data(), ni);
  }
  for (int k = 2; k <= layers_; ++k) {
    g.multiply(comm, cur_u_.data(), cur_i_.data(), nxt_u_.data(), nxt_i_.data(), d, pool_);
    if (layer) layer(k, nxt_u_.data(), nxt_i_.data());
    add_into(Eu, nxt_u_.data(), nu);
    add_into(Ei, nxt_i_.data(), ni);
    cur_u_.swap(nxt_u_);
    cur_i_.swap(nxt_i_);
  }
  const float w = 1.0f / static_cast<float>(from_layer1 ? layers_ : layers_ + 1);
  for (size_t k = 0; k < nu; ++k) Eu[k] *= w;
  for (size_t k = 0; k < ni; ++k) Ei[k] *= w;
}

void GraphModel::mean_backward(dist::Comm& comm, dist::BipartiteGraph& g, float* gu, float* gi) {
  if (layers_ == 0) return;  // E = E^(0)
  const int d = user.dim();
  const size_t nu = user.local_data().size(), ni = item.local_data().size();
  // Horner: h = G; K times h = A h + G; dL/dE^(0) = h / (K+1), which is 1/(K+1) sum_k A^k G (A is
  // symmetric).
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

EvalResult GraphModel::evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) {
  propagate_eval(comm);
  return scoring_->evaluate(data, split, cfg, comm);
}

std::vector<const dist::ShardedEmbedding*> GraphModel::exported_tables(dist::Comm& comm) {
  propagate_eval(comm);
  return {&scoring_->user, &scoring_->item};
}

std::vector<std::pair<std::string, std::string>> GraphModel::export_attrs(const TrainConfig& cfg) const {
  // The modalities of a model with item features (FREEDOM; LightGCN and XSimGCL have none).
  const std::string features = feature_modalities().empty() ? "" : cfg.features;
  return {{"model", cfg.model}, {"features", features}, {"graph_layers", std::to_string(layers_)}};
}

std::unique_ptr<StepEngine> GraphModel::cuda_engine(const TrainConfig& cfg, const io::DataShard&, dist::Comm&,
                                                    const uint8_t*) {
  fail("model " + cfg.model + " has no CUDA engine yet (its graph propagation runs on the CPU backend): use --device cpu");
}

}  // namespace shardrec
