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
#include "dist/graph.h"

namespace shardrec {

class LightGcnModel final : public Model {
 public:
  LightGcnModel(const TrainConfig& cfg, const io::DataShard& data, int rank);

  int layers() const { return layers_; }
  // The graph (built on first use: collective) and the propagation E = mean(E^(0..K)) of the
  // tables' rows into the scoring rows.
  dist::BipartiteGraph& graph(dist::Comm& comm);
  void propagate(dist::Comm& comm);
  // dL/dE^(0) from dL/dE on this rank's rows (overwritten with the result; collective).
  void backward(dist::Comm& comm, float* gu, float* gi);

  ModelState state() override { return {{&user, &item}, {}}; }
  DrawKind draw_kind() const override { return DrawKind::kNegative; }
  int draws(const TrainConfig& cfg, bool) const override { return cfg.negatives; }
  double terms_per_sample(const TrainConfig& cfg) const override { return scoring_->terms_per_sample(cfg); }
  // MF's: with K = 0 the steps are those of MF (a test holds it to that).
  uint64_t order_salt() const override { return 0xe90c; }
  void pass(const StepBatch& b, const PassArgs& a) override;
  void apply_dense(dist::Comm&) override {}
  void refresh_rows(dist::Comm& comm) override { propagate(comm); }
  const dist::ShardedEmbedding& rows_user() const override { return scoring_->user; }
  const dist::ShardedEmbedding& rows_item() const override { return scoring_->item; }
  void apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey, const float* gU,
                  const dist::Routing& ir, std::span<const uint64_t> ikey, const float* gI) override;
  void set_threads(ThreadPool* pool) override;
  EvalResult evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) override;
  std::vector<const dist::ShardedEmbedding*> exported_tables(dist::Comm& comm) override;
  // params.h5 holds the propagated rows E: they load into the scoring rows, which retrieval reads.
  std::vector<dist::ShardedEmbedding*> params_tables() override { return {&scoring_->user, &scoring_->item}; }
  std::vector<std::pair<std::string, std::string>> export_attrs(const TrainConfig& cfg) const override {
    return {{"model", cfg.model}, {"features", ""}, {"graph_layers", std::to_string(layers_)}};
  }
  std::unique_ptr<StepEngine> cuda_engine(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm,
                                          const uint8_t* labels) override;

 private:
  int layers_;
  float l2_;
  // The training edges of this rank's users (the graph is built from them on first use).
  std::vector<int64_t> ptr_;
  std::vector<int32_t> edges_;
  std::unique_ptr<dist::BipartiteGraph> graph_;
  // The scoring rows E, as an MF model (no optimizer state): the passes and evaluation use it.
  std::unique_ptr<MFModel> scoring_;
  ThreadPool* pool_ = nullptr;
  // The main pass's gradient factor and the step's samples, for the L2 term at the owners.
  float reg_ = 0;
  std::vector<float> gu_, gi_, cur_u_, cur_i_, nxt_u_, nxt_i_;
  std::vector<uint32_t> cnt_u_, cnt_i_;
};

}  // namespace shardrec
