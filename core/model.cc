#include "core/model.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "base/rng.h"
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
    : user("user", 0, user_sharding.rows(), user_width(cfg), user_sharding, rank, cfg.seed, cfg.init,
           cfg.opt),
      item("item", 1, num_items, cfg.dim,
           dist::Sharding::parse(cfg.item_sharding, num_items, user_sharding.world()), rank,
           cfg.seed, cfg.init, cfg.opt) {
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
