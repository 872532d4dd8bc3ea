// LightGCN (He et al., SIGIR 2020) over the sharded user-item graph of the training split:
//   E^(k+1) = A E^(k) (dist/graph.h), the scoring rows E = mean(E^(0..K)), score <e_u, e_i>,
// BPR (or BCE) with L2 on each sample's layer-0 rows, as the reference code. Like the reference
// it propagates the whole graph at every step (exact): K products forward to score the batch and
// K backward, dL/dE^(0) = 1/(K+1) sum_k A^k dL/dE (A is symmetric), applied by the tables'
// optimizers to every row that propagation reaches. The tables hold E^(0) (what checkpoints
// keep); params.h5 holds the propagated rows E, so eval, recommend and export read it as MF.
#pragma once
#include <memory>
#include <vector>

#include "core/config.h"
#include "core/mf_model.h"
#include "core/model.h"
#include "core/xsimgcl.h"
#include "dist/graph.h"

namespace shardrec {

// What the graph models on this propagation differ in (LightGCN: the defaults).
struct GraphVariant {
  bool from_layer1 = false;  // the scoring rows are the mean of layers 1..K (XSimGCL), not 0..K
  float eps = 0.0f;          // training propagations add noise of this size to each layer
  int cl_layer = 0;          // 1..K: the layer contrasted with the scoring rows (0: no contrast)
  float cl_lambda = 0.0f, cl_tau = 1.0f;
};

class LightGcnModel final : public Model {
 public:
  LightGcnModel(const TrainConfig& cfg, const io::DataShard& data, int rank, GraphVariant v = {});

  int layers() const { return layers_; }
  // The graph (built on first use: collective) and the propagation E = mean(E^(0..K)) of the
  // tables' rows into the scoring rows.
  dist::BipartiteGraph& graph(dist::Comm& comm);
  // noise: a training propagation's key (XSimGCL's noise; null: none, as in evaluation).
  void propagate(dist::Comm& comm, const NoiseKey* noise = nullptr);
  // dL/dE^(0) from dL/dE on this rank's rows (overwritten with the result; collective); lu, li
  // (or null): dL/d(layer cl_layer's rows), which the contrast adds.
  void backward(dist::Comm& comm, float* gu, float* gi, const float* lu = nullptr, const float* li = nullptr);
  // Layer cl_layer's rows of the last training propagation (table 0: users, 1: items; local order).
  const std::vector<float>& layer_rows(int table) const { return table == 0 ? lay_u_ : lay_i_; }

  ModelState state() override { return {{&user, &item}, {}}; }
  DrawKind draw_kind() const override { return DrawKind::kNegative; }
  int draws(const TrainConfig& cfg, bool) const override { return cfg.negatives; }
  double terms_per_sample(const TrainConfig& cfg) const override { return scoring_->terms_per_sample(cfg); }
  // MF's: with K = 0 the steps are those of MF (a test holds it to that).
  uint64_t order_salt() const override { return 0xe90c; }
  void pass(const StepBatch& b, const PassArgs& a) override;
  void apply_dense(dist::Comm&) override {}
  void refresh_rows(dist::Comm& comm, const StepBatch& b) override;
  const dist::ShardedEmbedding& rows_user() const override { return scoring_->user; }
  const dist::ShardedEmbedding& rows_item() const override { return scoring_->item; }
  void apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey, const float* gU,
                  const dist::Routing& ir, std::span<const uint64_t> ikey, const float* gI) override;
  void set_threads(ThreadPool* pool) override;
  EvalResult evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) override;
  EvalResult evaluate_params(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) override {
    return scoring_->evaluate(data, split, cfg, comm);
  }
  std::vector<const dist::ShardedEmbedding*> exported_tables(dist::Comm& comm) override;
  // params.h5 holds the propagated rows E: they load into the scoring rows, which retrieval reads.
  std::vector<dist::ShardedEmbedding*> params_tables() override { return {&scoring_->user, &scoring_->item}; }
  std::vector<std::pair<std::string, std::string>> export_attrs(const TrainConfig& cfg) const override {
    return {{"model", cfg.model}, {"features", ""}, {"graph_layers", std::to_string(layers_)}};
  }
  std::unique_ptr<StepEngine> cuda_engine(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm,
                                          const uint8_t* labels) override;

 private:
  // XSimGCL's InfoNCE over the step's users and positive items (ir: the step's item routing),
  // into gu_, gi_ (the scoring rows) and glu_, gli_ (layer l*'s rows). Collective.
  void contrast(dist::Comm& comm, const dist::Routing& ir);

  int layers_;
  float l2_;
  GraphVariant v_;
  uint64_t seed_;
  // The training edges of this rank's users (the graph is built from them on first use).
  std::vector<int64_t> ptr_;
  std::vector<int32_t> edges_;
  std::unique_ptr<dist::BipartiteGraph> graph_;
  // The scoring rows E, as an MF model (no optimizer state): the passes and evaluation use it.
  std::unique_ptr<MFModel> scoring_;
  ThreadPool* pool_ = nullptr;
  // The main pass's gradient factor and the step's samples, for the L2 term at the owners.
  float reg_ = 0;
  // The contrast: the main pass's scale, its loss sums, item slots per sample; the training
  // propagation's layer-l* rows and their gradients; which pass of which step this is.
  float scale_ = 0;
  dist::ExactSums* loss_ = nullptr;
  int loss_slot_ = 0, per_ = 1;
  double terms_ = 1;
  int64_t global_n_ = 1;
  std::vector<float> lay_u_, lay_i_, glu_, gli_;
  NoiseKey key_;
  std::vector<float> gu_, gi_, cur_u_, cur_i_, nxt_u_, nxt_i_;
  std::vector<uint32_t> cnt_u_, cnt_i_;
};

}  // namespace shardrec
