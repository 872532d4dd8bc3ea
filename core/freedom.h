// FREEDOM (Zhou and Shen, MM 2023; MMRec's src/models/freedom.py) on the sharded tables:
//   - per modality, a frozen cosine kNN item-item graph (k = --freedom-knn, the item itself
//     included) over the raw features, built once at the first propagation (dist/item_graph.h);
//     each row's k terms weigh 1/k (MMRec's D^-1/2 A D^-1/2 with row degrees, which is 1/k on a
//     kNN graph) times its modality's weight, and the modalities' graphs are summed into one S;
//   - the user-item graph of the training split pruned every epoch, degree-sensitively: of the M
//     distinct edges floor(M * (1 - prune)) are kept, drawn without replacement with probability
//     proportional to 1/sqrt(d_u d_i) (torch.multinomial in MMRec; here the Efraimidis-Spirakis
//     keys -log(r)/w, r a pure function of (seed, epoch, user, item), the smallest ones kept:
//     the same distribution), then normalised by the kept degrees;
//   - the scoring rows: users E_u = mean(A_e^k E0)_u over k = 0..K, items E_i = mean(A_e^k E0)_i
//     + (S^L E0_items)_i (L = --freedom-item-layers, MMRec's n_mm_layers = 1); evaluation and
//     params.h5 use the unpruned graph, as MMRec's full_sort_predict does;
//   - the loss: BPR on the scoring rows plus feature_weight * sum over modalities of BPR(E_u,
//     W_m f_pos, W_m f_neg) (MMRec's reg_weight; W_m a trainable feature dim -> embedding dim
//     projection, replicated, its gradient summed exactly). MMRec's Linear bias cancels in every
//     BPR difference and the projections do not enter scoring, so there is none. MMRec also lets
//     the raw feature rows train (nn.Embedding.from_pretrained(freeze=False)); here they stay
//     frozen. L2 on the samples' layer-0 rows with --l2 as LightGCN (the reference has none: 0).
// World-size invariance: the pruning is integer counting over keys every rank computes alike
// (the k-th smallest key by a binary search of allreduced counts, ties by (user, item)), the
// products sum in id order (dist/graph.h, dist/item_graph.h), and W's gradient sums exactly.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/graph_model.h"
#include "dist/dense_allreduce.h"
#include "dist/graph.h"
#include "dist/item_graph.h"
#include "kernels/row_optimizer.h"

namespace shardrec {

// The pruning's sampling key of edge (user, item) with weight w = 1/sqrt(d_u d_i): exponential
// with rate w from a uniform that is a pure function of (seed, epoch, user, item). The smallest
// keys are kept.
double freedom_prune_key(uint64_t seed, int epoch, int64_t user, int64_t item, double w);

// This rank's users' kept edges at `epoch` (CSR over local users, items ascending per user) of the
// distinct edges (ptr, item): floor(M * (1 - prune)) of the M distinct edges over all ranks, the
// smallest keys. Collective. kept_total/edges_total (optional): the global counts.
struct KeptEdges {
  std::vector<int64_t> ptr;
  std::vector<int32_t> item;
  int64_t kept_total = 0, edges_total = 0;
};
KeptEdges freedom_prune_edges(dist::Comm& comm, const dist::Sharding& users, int64_t num_items,
                              std::span<const int64_t> ptr, std::span<const int32_t> item, double prune,
                              uint64_t seed, int epoch);

// The modality weights: --freedom-weights when given (one per modality), else MMRec's
// mm_image_weight for a pair named image and text (0.1 image, 0.9 text), else equal (1/M).
std::vector<double> freedom_modality_weights(const std::vector<std::string>& names, const std::string& given);

class FreedomModel final : public GraphModel {
 public:
  FreedomModel(const TrainConfig& cfg, const io::DataShard& data, int rank);

  int item_layers() const { return item_layers_; }
  // The item-item graph S (built on first use: collective) and the training graph of `epoch`
  // (pruned; without pruning, the full graph()).
  dist::ItemGraph& item_graph(dist::Comm& comm);
  dist::BipartiteGraph& train_graph(dist::Comm& comm, int epoch);
  // The scoring rows from the tables over graph g (collective); backward() takes dL/d(scoring
  // rows) on this rank's rows to dL/dE0 (overwritten) through the graph of the last propagate.
  void propagate(dist::Comm& comm, dist::BipartiteGraph& g);
  void backward(dist::Comm& comm, float* gu, float* gi);
  const std::vector<double>& modality_weights() const { return mod_w_; }
  // W_m (d x F_m, row-major), in modality order.
  std::vector<std::vector<float>>& projections() { return W_; }

  ModelState state() override;
  dist::ShardedEmbedding* item_features() override { return features_.get(); }
  std::vector<std::pair<std::string, int>> feature_modalities() const override { return modalities_; }
  void pass(const StepBatch& b, const PassArgs& a) override;
  void apply_dense(dist::Comm& comm) override;
  void refresh_rows(dist::Comm& comm, const StepBatch& b) override;
  std::vector<io::DenseParam> exported_dense() override;

 private:
  void propagate_eval(dist::Comm& comm) override { propagate(comm, graph(comm)); }
  void backward_rows(dist::Comm&, const dist::Routing&) override;

  int item_layers_, knn_;
  float feat_w_;
  double prune_;
  uint64_t seed_;
  int64_t num_items_;
  std::unique_ptr<dist::BipartiteGraph> pruned_;
  int pruned_epoch_ = -1;
  dist::BipartiteGraph* used_ = nullptr;  // the graph of the last propagation
  std::unique_ptr<dist::ItemGraph> item_graph_;
  std::unique_ptr<dist::ShardedEmbedding> features_;
  std::vector<std::pair<std::string, int>> modalities_;
  std::vector<int> offsets_;  // each modality's first column in the feature rows
  std::vector<double> mod_w_;
  std::vector<std::vector<float>> W_, gW_;
  std::vector<std::unique_ptr<RowOptimizer>> opt_W_;
  std::vector<std::unique_ptr<dist::ExactGradientSum>> gW_sum_;
  std::vector<float> h_, h2_;
};

}  // namespace shardrec
