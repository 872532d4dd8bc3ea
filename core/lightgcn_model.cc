#include "core/lightgcn_model.h"

#include <memory>

#include "core/model_kind.h"
#include "core/planner.h"

namespace shardrec {

LightGcnModel::LightGcnModel(const TrainConfig& cfg, const io::DataShard& data, int rank, GraphVariant v)
    : GraphModel(cfg, data, rank), v_(v), seed_(cfg.seed) {
  terms_ = scoring_->terms_per_sample(cfg);
}

void LightGcnModel::propagate(dist::Comm& comm, const NoiseKey* noise) {
  const int d = user.dim();
  const bool contrast = noise && v_.cl_layer > 0;
  // A layer's rows after the product: the training noise, and a copy of layer l*'s.
  auto finish = [&](int k, float* xu, float* xi) {
    if (noise && v_.eps > 0.0f) {
      add_layer_noise(*noise, k, 0, user.sharding(), user.rank(), v_.eps, xu, user.local_rows(), d, pool_);
      add_layer_noise(*noise, k, 1, item.sharding(), item.rank(), v_.eps, xi, item.local_rows(), d, pool_);
    }
    if (contrast && k == v_.cl_layer) {
      lay_u_.assign(xu, xu + user.local_data().size());
      lay_i_.assign(xi, xi + item.local_data().size());
    }
  };
  mean_forward(comm, graph(comm), v_.from_layer1, finish);
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
  if (!v_.from_layer1) return mean_backward(comm, g, gu, gi);
  const int d = user.dim();
  const size_t nu = user.local_data().size(), ni = item.local_data().size();
  nxt_u_.resize(nu);
  nxt_i_.resize(ni);
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
  GraphModel::pass(b, a);
  if (a.gU && a.grad == 0) {
    scale_ = a.scale;
    loss_ = a.loss;
    loss_slot_ = a.slot_own;
    per_ = b.per;
    global_n_ = b.global_n;
  }
}

void LightGcnModel::backward_rows(dist::Comm& comm, const dist::Routing& ir) {
  if (v_.cl_layer > 0) {
    contrast(comm, ir);
    backward(comm, gu_.data(), gi_.data(), glu_.data(), gli_.data());
  } else {
    backward(comm, gu_.data(), gi_.data());
  }
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
