// The embedding models. score(u, i) = <p_u, q_i>, where q_i is the item's scoring vector:
//   mf:   q_i = e_i (d floats); p_u has d floats.
//   vbpr: q_i = [e_i, W f_i + b] (2d floats), f_i = the item's feature rows (the dataset's
//         modalities, concatenated), W (d x F) and b (d) a projection replicated on every rank
//         (data-parallel; its gradient is summed exactly, dist/dense_allreduce.h); p_u has 2d.
// The user table follows the data partition (range), so a rank's samples look their users up
// locally; the item table and the item feature rows share the item sharding (mod by default),
// so one routing serves both.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/scratch.h"
#include "core/config.h"
#include "core/model.h"
#include "core/model_state.h"
#include "dist/dense_allreduce.h"
#include "dist/sharded_embedding.h"
#include "kernels/embedding_ops.h"
#include "kernels/row_optimizer.h"

namespace shardrec {

// VBPR's projection gradients sum exactly at 2^-44 (any backend, any number of ranks).
constexpr int kVbprFracBits = 44;

class MFModel final : public Model {
 public:
  // dataset: the dataset file, read for VBPR's feature rows (this rank's items only).
  MFModel(const TrainConfig& cfg, const dist::Sharding& user_sharding, int64_t num_items, int rank,
          const std::string& dataset = "");
  static float score(const float* u, const float* q, int dim) { return kernels::dot(u, q, dim); }

  // VBPR only: frozen feature rows sharded like the items, and the replicated projection.
  std::unique_ptr<dist::ShardedEmbedding> features;
  std::vector<float> W, b;  // W row-major [d][F]
  std::vector<std::pair<std::string, int>> modalities;  // name and width, in column order

  bool vbpr() const { return features != nullptr; }
  int dim() const { return user.dim(); }       // the scoring dimension (user vector width)
  int item_dim() const { return item.dim(); }  // embedding row width
  int feat_dim() const { return features ? features->dim() : 0; }
  // q for n items from their embedding rows (item_dim wide) and feature rows (feat_dim wide).
  void item_vectors(const float* e, const float* f, size_t n, float* q) const;
  // q of this rank's items, in local order.
  std::vector<float> local_item_vectors() const;
  // One optimizer step on W and b from exactly summed gradients (identical on every rank).
  void apply_dense(dist::Comm& comm, dist::ExactGradientSum& gW, dist::ExactGradientSum& gb);

  // core/model.h. The loss: BPR over (positive, negative) pairs or BCE over the positive and the
  // negatives, with L2 on the embedding rows; VBPR's projection gradient sums exactly.
  dist::ShardedEmbedding* item_features() override { return features.get(); }
  std::vector<std::pair<std::string, int>> feature_modalities() const override { return modalities; }
  DrawKind draw_kind() const override { return DrawKind::kNegative; }
  int draws(const TrainConfig& cfg, bool) const override { return cfg.negatives; }
  double terms_per_sample(const TrainConfig& cfg) const override {
    return cfg.loss == "bpr" ? cfg.negatives : 1 + cfg.negatives;
  }
  uint64_t order_salt() const override { return 0xe90c; }
  void pass(const StepBatch& b, const PassArgs& a) override;
  void apply_dense(dist::Comm& comm) override {
    if (vbpr()) apply_dense(comm, *gW_sum_, *gb_sum_);
  }
  EvalResult evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) override;
  std::vector<io::DenseParam> exported_dense() override;
  std::vector<std::pair<std::string, std::string>> export_attrs(const TrainConfig& cfg) const override {
    return {{"model", cfg.model}, {"features", cfg.features}};
  }
  std::unique_ptr<StepEngine> cuda_engine(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm,
                                          const uint8_t* labels) override;
  // The user rows and the items' scoring vectors q (vbpr: [e, W f + b], 2d wide).
  RetrievalVectors retrieval_vectors() const override;

  // The tables and VBPR's projection (W: d x F, b: d; b's optimizer state is one row of d).
  ModelState state() override {
    ModelState s{{&user, &item}, {}};
    if (vbpr())
      s.dense = {{"W", "W", item_dim(), feat_dim(), &W, opt_W_.get()}, {"b", "b", item_dim(), 0, &b, opt_b_.get()}};
    return s;
  }
  // VBPR's optimizers of W and b (null for MF), for checkpoints.
  RowOptimizer* optimizer_W() { return opt_W_.get(); }
  RowOptimizer* optimizer_b() { return opt_b_.get(); }

 private:
  std::unique_ptr<RowOptimizer> opt_W_, opt_b_;
  std::vector<float> gW_, gb_;
  // The step's loss settings, and its buffers (reused).
  bool bpr_ = true;
  int negs_ = 1;
  float l2_ = 0;
  std::unique_ptr<dist::ExactGradientSum> gW_sum_, gb_sum_;
  Scratch<float> Q_, gQ_;
};

}  // namespace shardrec
