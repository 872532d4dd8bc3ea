#include "core/freedom.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "base/error.h"
#include "base/math.h"
#include "base/rng.h"
#include "base/thread_pool.h"
#include "core/model_kind.h"
#include "core/planner.h"
#include "io/features.h"
#include "io/hdf5_util.h"
#include "kernels/embedding_ops.h"

namespace shardrec {

namespace {
constexpr uint64_t kPruneSalt = 0xf7eed0;
constexpr int kFracBits = 44;  // W's gradient sums, as VBPR's projection

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) v.push_back(t);
  return v;
}
}  // namespace

double freedom_prune_key(uint64_t seed, int epoch, int64_t user, int64_t item, double w) {
  const uint64_t h = hash64(seed, kPruneSalt, static_cast<uint64_t>(epoch), static_cast<uint64_t>(user),
                            static_cast<uint64_t>(item));
  const double r = static_cast<double>((h >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  return -std::log(r) / w;
}

KeptEdges freedom_prune_edges(dist::Comm& comm, const dist::Sharding& users, int64_t num_items,
                              std::span<const int64_t> ptr, std::span<const int32_t> item, double prune,
                              uint64_t seed, int epoch) {
  const int me = comm.rank();
  const int64_t L = static_cast<int64_t>(ptr.size()) - 1;
  // The distinct edges of each local user, ascending; the items' degrees over all ranks.
  std::vector<int64_t> dptr(static_cast<size_t>(L) + 1, 0);
  std::vector<int32_t> dit;
  std::vector<int64_t> deg(static_cast<size_t>(num_items), 0);
  for (int64_t l = 0; l < L; ++l) {
    std::vector<int32_t> r(item.begin() + ptr[l], item.begin() + ptr[l + 1]);
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    for (int32_t i : r) ++deg[i];
    dit.insert(dit.end(), r.begin(), r.end());
    dptr[l + 1] = static_cast<int64_t>(dit.size());
  }
  comm.allreduce_sum(deg.data(), deg.size());
  int64_t M = static_cast<int64_t>(dit.size());
  comm.allreduce_sum(&M, 1);
  KeptEdges out;
  out.edges_total = M;
  const int64_t keep = static_cast<int64_t>(static_cast<double>(M) * (1.0 - prune));  // MMRec's int(nnz * (1 - dropout))
  out.kept_total = keep;
  // Keys as their bit patterns (positive doubles order as their bits).
  std::vector<uint64_t> bits(dit.size());
  for (int64_t l = 0; l < L; ++l) {
    const int64_t u = users.global_id(me, l);
    const double du = static_cast<double>(dptr[l + 1] - dptr[l]);
    for (int64_t e = dptr[l]; e < dptr[l + 1]; ++e) {
      const double w = 1.0 / std::sqrt(du * static_cast<double>(deg[dit[e]]));
      const double k = freedom_prune_key(seed, epoch, u, dit[e], w);
      std::memcpy(&bits[e], &k, sizeof k);
    }
  }
  auto count = [&](auto pred) {
    int64_t c = 0;
    for (uint64_t b : bits) c += pred(b) ? 1 : 0;
    comm.allreduce_sum(&c, 1);
    return c;
  };
  std::vector<char> kept(dit.size(), 0);
  if (keep >= M) {
    std::fill(kept.begin(), kept.end(), 1);
  } else if (keep > 0) {
    // v: the keep-th smallest key over all ranks (the least v with count(<= v) >= keep).
    uint64_t lo = 0, hi = ~uint64_t{0};
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (count([&](uint64_t b) { return b <= mid; }) >= keep) hi = mid;
      else lo = mid + 1;
    }
    const uint64_t v = lo;
    const int64_t below = count([&](uint64_t b) { return b < v; });
    // Keys equal to v (almost always one edge): the first keep - below by (user, item).
    std::vector<int64_t> tied;
    for (int64_t l = 0; l < L; ++l)
      for (int64_t e = dptr[l]; e < dptr[l + 1]; ++e) {
        if (bits[e] < v) kept[e] = 1;
        if (bits[e] == v) {
          tied.push_back(users.global_id(me, l));
          tied.push_back(dit[e]);
        }
      }
    std::vector<std::pair<int64_t, int64_t>> all;
    for (const auto& r : dist::allgather(comm, tied))
      for (size_t k = 0; k + 1 < r.size(); k += 2) all.emplace_back(r[k], r[k + 1]);
    std::sort(all.begin(), all.end());
    all.resize(static_cast<size_t>(keep - below));
    for (int64_t l = 0; l < L; ++l)
      for (int64_t e = dptr[l]; e < dptr[l + 1]; ++e)
        if (bits[e] == v &&
            std::binary_search(all.begin(), all.end(), std::pair<int64_t, int64_t>{users.global_id(me, l), dit[e]}))
          kept[e] = 1;
  }
  out.ptr.assign(static_cast<size_t>(L) + 1, 0);
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t e = dptr[l]; e < dptr[l + 1]; ++e)
      if (kept[e]) out.item.push_back(dit[e]);
    out.ptr[l + 1] = static_cast<int64_t>(out.item.size());
  }
  return out;
}

std::vector<double> freedom_modality_weights(const std::vector<std::string>& names, const std::string& given) {
  const size_t M = names.size();
  std::vector<double> w;
  if (!given.empty()) {
    for (const std::string& t : split_names(given)) {
      size_t used = 0;
      double x = 0;
      try {
        x = std::stod(t, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != t.size() || !std::isfinite(x) || x < 0)
        fail("option --freedom-weights: '" + t + "' is not a non-negative number");
      w.push_back(x);
    }
    if (w.size() != M)
      fail("option --freedom-weights: " + std::to_string(w.size()) + " weights for " + std::to_string(M) +
           " modalities (--features)");
    return w;
  }
  if (M == 2 && ((names[0] == "image" && names[1] == "text") || (names[0] == "text" && names[1] == "image")))
    return names[0] == "image" ? std::vector<double>{0.1, 0.9} : std::vector<double>{0.9, 0.1};
  return std::vector<double>(M, 1.0 / static_cast<double>(M));
}

FreedomModel::FreedomModel(const TrainConfig& cfg, const io::DataShard& data, int rank)
    : GraphModel(cfg, data, rank),
      item_layers_(cfg.freedom_item_layers),
      knn_(cfg.freedom_knn),
      feat_w_(cfg.freedom_feature_weight),
      prune_(cfg.freedom_prune),
      seed_(cfg.seed),
      num_items_(data.info.num_items) {
  if (cfg.features.empty())
    fail("option --features: freedom needs item modalities (make them with shardrec prep --features NAME=PATH, "
         "then train with --features NAME)");
  if (data.info.path.empty()) fail("freedom: no dataset file to read the item features from");
  // This rank's feature rows of every modality, concatenated column-wise (as VBPR's).
  auto f = io::H5File::open_read(data.info.path);
  std::vector<std::vector<float>> parts;
  std::vector<std::string> names = split_names(cfg.features);
  int64_t F = 0;
  for (const std::string& name : names) {
    int64_t dim = 0;
    if (!f.exists("/features/" + name))
      fail(data.info.path + ": no modality '" + name + "' (make it with shardrec prep --features " + name + "=...)");
    parts.push_back(io::load_modality_rows(f, name, item.sharding(), rank, &dim));
    offsets_.push_back(static_cast<int>(F));
    modalities_.push_back({name, static_cast<int>(dim)});
    F += dim;
  }
  mod_w_ = freedom_modality_weights(names, cfg.freedom_weights);
  OptimizerConfig frozen;
  frozen.kind = OptimizerConfig::Kind::kSgd;
  features_ = std::make_unique<dist::ShardedEmbedding>("item_features", 2, num_items_, static_cast<int>(F),
                                                       item.sharding(), rank, cfg.seed, dist::InitSpec{}, frozen);
  for (int64_t l = 0; l < item.local_rows(); ++l) {
    float* row = features_->local_row(l);
    for (size_t p = 0; p < parts.size(); ++p) {
      const int64_t w = modalities_[p].second;
      std::memcpy(row, &parts[p][l * w], w * sizeof(float));
      row += w;
    }
  }
  // Each projection as PyTorch's Linear initialises it, U(-1/sqrt(F_m), 1/sqrt(F_m)), from the seed.
  const int d = cfg.dim;
  OptimizerConfig dense = cfg.opt;
  if (dense.kind == OptimizerConfig::Kind::kAdam) dense.kind = OptimizerConfig::Kind::kAdamDense;
  for (size_t m = 0; m < modalities_.size(); ++m) {
    const int Fm = modalities_[m].second;
    const double bound = 1.0 / std::sqrt(static_cast<double>(Fm));
    CounterRng rng(cfg.seed, 0xf7ee, m);
    W_.emplace_back(static_cast<size_t>(d) * Fm);
    for (auto& w : W_.back()) w = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
    gW_.emplace_back(W_.back().size());
    opt_W_.push_back(std::make_unique<RowOptimizer>(dense, d, Fm));
    gW_sum_.push_back(
        std::make_unique<dist::ExactGradientSum>(W_.back().size(), kFracBits, "freedom.W_" + modalities_[m].first));
  }
}

ModelState FreedomModel::state() {
  ModelState s{{&user, &item}, {}};
  for (size_t m = 0; m < W_.size(); ++m)
    s.dense.push_back({"W_" + modalities_[m].first, "W_" + modalities_[m].first, user.dim(), modalities_[m].second,
                       &W_[m], opt_W_[m].get()});
  return s;
}

std::vector<io::DenseParam> FreedomModel::exported_dense() {
  std::vector<io::DenseParam> v;
  for (size_t m = 0; m < W_.size(); ++m) v.push_back({"W_" + modalities_[m].first, user.dim(), modalities_[m].second, &W_[m]});
  return v;
}

dist::ItemGraph& FreedomModel::item_graph(dist::Comm& comm) {
  if (item_graph_) return *item_graph_;
  if (knn_ > num_items_)
    fail("option --freedom-knn: " + std::to_string(knn_) + " neighbours for " + std::to_string(num_items_) + " items");
  const int64_t L = item.local_rows();
  const int Ft = features_->dim();
  dist::SparseRows rows(static_cast<size_t>(L));
  std::vector<float> cols;
  for (size_t m = 0; m < modalities_.size(); ++m) {
    const int Fm = modalities_[m].second;
    cols.resize(static_cast<size_t>(L) * Fm);
    for (int64_t l = 0; l < L; ++l)
      std::memcpy(&cols[l * Fm], features_->local_data().data() + l * Ft + offsets_[m], Fm * sizeof(float));
    const auto nn = dist::knn_items(comm, item.sharding(), cols.data(), Fm, knn_, pool_);
    const float w = static_cast<float>(mod_w_[m] / static_cast<double>(knn_));
    for (int64_t l = 0; l < L; ++l)
      for (int64_t j : nn[l]) rows[l].emplace_back(j, w);
  }
  item_graph_ = std::make_unique<dist::ItemGraph>(comm, item.sharding(), rows);
  return *item_graph_;
}

dist::BipartiteGraph& FreedomModel::train_graph(dist::Comm& comm, int epoch) {
  if (prune_ <= 0.0) return graph(comm);
  if (!pruned_ || pruned_epoch_ != epoch) {
    const KeptEdges k = freedom_prune_edges(comm, user.sharding(), num_items_, ptr_, edges_, prune_, seed_, epoch);
    pruned_ = std::make_unique<dist::BipartiteGraph>(comm, user.sharding(), item.sharding(), k.ptr, k.item);
    pruned_epoch_ = epoch;
  }
  return *pruned_;
}

void FreedomModel::propagate(dist::Comm& comm, dist::BipartiteGraph& g) {
  used_ = &g;
  mean_forward(comm, g, false);  // LightGCN's mean of layers 0..K
  // The item side: S^L E0 added to the items' rows.
  if (item_layers_ == 0) return;
  const int d = user.dim();
  const size_t ni = item.local_data().size();
  const float* E0i = item.local_data().data();
  dist::ItemGraph& S = item_graph(comm);
  h_.assign(E0i, E0i + ni);
  h2_.resize(ni);
  for (int k = 0; k < item_layers_; ++k) {
    S.multiply(comm, h_.data(), h2_.data(), d, pool_);
    h_.swap(h2_);
  }
  add_into(scoring_->item.local_data().data(), h_.data(), ni);
}

void FreedomModel::backward(dist::Comm& comm, float* gu, float* gi) {
  dist::BipartiteGraph& g = used_ ? *used_ : graph(comm);
  const int d = user.dim();
  const size_t ni = item.local_data().size();
  // The item side first: (S^T)^L G_i.
  if (item_layers_ > 0) {
    dist::ItemGraph& S = item_graph(comm);
    h_.assign(gi, gi + ni);
    h2_.resize(ni);
    for (int k = 0; k < item_layers_; ++k) {
      S.multiply_transposed(comm, h_.data(), h2_.data(), d, pool_);
      h_.swap(h2_);
    }
  }
  mean_backward(comm, g, gu, gi);  // LightGCN's
  if (item_layers_ > 0) add_into(gi, h_.data(), ni);
}

void FreedomModel::refresh_rows(dist::Comm& comm, const StepBatch& b) { propagate(comm, train_graph(comm, b.epoch)); }

void FreedomModel::pass(const StepBatch& bt, const PassArgs& a) {
  GraphModel::pass(bt, a);
  if (feat_w_ == 0.0f || W_.empty()) return;
  // The modalities' BPR terms: feat_w * softplus(-(<u, W f_pos> - <u, W f_neg>)) per pair.
  const size_t n = bt.n;
  const int per = bt.per, negs = per - 1, d = user.dim(), Ft = features_->dim();
  const float inv = a.scale * feat_w_ / static_cast<float>(bt.global_n * negs);
  if (a.gU)
    for (auto& s : gW_sum_) s->clear();
  std::vector<float> tp(d), tn(d), diff(Ft);
  for (size_t i = 0; i < n; ++i) {
    double loss = 0;
    const float* u = a.U + i * d;
    const float* fp = a.F + (i * per) * Ft;
    for (size_t m = 0; m < W_.size(); ++m) {
      const int Fm = modalities_[m].second, o = offsets_[m];
      const float* Wm = W_[m].data();
      for (int r = 0; r < d; ++r) tp[r] = kernels::dot(Wm + static_cast<size_t>(r) * Fm, fp + o, Fm);
      for (int k = 0; k < negs; ++k) {
        const float* fn = a.F + (i * per + 1 + k) * Ft;
        for (int r = 0; r < d; ++r) tn[r] = kernels::dot(Wm + static_cast<size_t>(r) * Fm, fn + o, Fm);
        const float x = kernels::dot(u, tp.data(), d) - kernels::dot(u, tn.data(), d);
        loss += static_cast<double>(feat_w_) * hd::softplus(-static_cast<double>(x));
        if (!a.gU) continue;
        const float c = -hd::sigmoid(-x) * inv;
        float* gu = a.gU + i * d;
        for (int r = 0; r < d; ++r) gu[r] += c * (tp[r] - tn[r]);
        for (int q = 0; q < Fm; ++q) diff[q] = fp[o + q] - fn[o + q];
        for (int r = 0; r < d; ++r) {
          const float cu = c * u[r];
          if (cu == 0.0f) continue;
          for (int q = 0; q < Fm; ++q)
            if (diff[q] != 0.0f) gW_sum_[m]->add_at(static_cast<size_t>(r) * Fm + q, cu * diff[q]);
        }
      }
    }
    if (!std::isfinite(loss))
      fail("training diverged: freedom's feature loss of dataset row " + std::to_string(bt.row[i]) + " is " +
           std::to_string(loss) + " at epoch " + std::to_string(bt.epoch) + " (lower the learning rate?)");
    if (a.loss) a.loss->add(a.slot_own, loss);
  }
}

void FreedomModel::apply_dense(dist::Comm& comm) {
  const int d = user.dim();
  for (size_t m = 0; m < W_.size(); ++m) {
    const int Fm = modalities_[m].second;
    gW_sum_[m]->allreduce(comm, gW_[m].data());
    opt_W_[m]->begin_step();
    for (int r = 0; r < d; ++r)
      opt_W_[m]->update(r, &W_[m][static_cast<size_t>(r) * Fm], &gW_[m][static_cast<size_t>(r) * Fm]);
    gW_sum_[m]->clear();
  }
}

void FreedomModel::backward_rows(dist::Comm& comm, const dist::Routing&) { backward(comm, gu_.data(), gi_.data()); }

ModelKind freedom_kind() {
  ModelKind k = lightgcn_kind();
  k.name = "freedom";
  k.summary =
      "FREEDOM: LightGCN on a degree-pruned user-item graph plus frozen kNN item-item graphs of the item features";
  k.item_features = true;
  k.item_graph = true;
  k.losses = {"bpr"};
  k.validate = [gcn = k.validate](const TrainConfig& c, const Need& need) {
    need(!c.features.empty(), "features",
         "freedom needs item modalities (make them with shardrec prep --features NAME=PATH, then --features NAME)");
    gcn(c, need);
    need(c.freedom_prune >= 0 && c.freedom_prune < 1, "freedom-prune", "must be in [0, 1)");
    need(c.freedom_knn >= 1, "freedom-knn", "must be positive");
    need(c.freedom_item_layers >= 0 && c.freedom_item_layers <= 8, "freedom-item-layers", "must be in 0..8");
    need(c.freedom_feature_weight >= 0, "freedom-feature-weight", "must not be negative");
    // One weight per modality (it fails naming --freedom-weights).
    if (!c.freedom_weights.empty()) freedom_modality_weights(split_names(c.features), c.freedom_weights);
  };
  k.make = [](const TrainConfig& c, const io::DataShard& data, int rank) -> std::unique_ptr<Model> {
    return std::make_unique<FreedomModel>(c, data, rank);
  };
  k.shape = [](const PlanInput& in) {
    if (in.feature_dim < 1) fail("plan: model freedom needs --feature-dim (the item features' width)");
    const double d = in.dim;
    ModelShape sh{d, d, static_cast<double>(in.feature_dim), 1.0 + in.negatives, d * in.feature_dim};
    sh.graph_layers = in.graph_layers;
    return sh;
  };
  return k;
}

}  // namespace shardrec
