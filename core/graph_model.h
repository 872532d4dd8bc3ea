// What the graph models share (LightGCN and XSimGCL: core/lightgcn_model.h; FREEDOM: core/freedom.h).
// Their tables hold the layer-0 rows E^(0) (what checkpoints keep); they score with rows propagated
// from them over the user-item graph of the training split, E = mean(A^k E^(0)), held as an MF model
// without optimizer state that the passes, evaluation, params.h5 and retrieval read. Their row step
// takes dL/dE on the rows this rank owns back through the propagation to dL/dE^(0), then the tables'
// optimizers (core/model.h's reduce_row_grads and update_rows).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/mf_model.h"
#include "core/model.h"
#include "dist/graph.h"

namespace shardrec {

class GraphModel : public Model {
 public:
  int layers() const { return layers_; }
  // The user-item graph of the training split (built on first use: collective).
  dist::BipartiteGraph& graph(dist::Comm& comm);

  DrawKind draw_kind() const override { return DrawKind::kNegative; }
  int draws(const TrainConfig& cfg, bool) const override { return cfg.negatives; }
  double terms_per_sample(const TrainConfig& cfg) const override { return scoring_->terms_per_sample(cfg); }
  // MF's: with K = 0 LightGCN's steps are those of MF (a test holds it to that).
  uint64_t order_salt() const override { return 0xe90c; }
  // MF's pass on the scoring rows; the main pass keeps the L2 factor of the row step.
  void pass(const StepBatch& b, const PassArgs& a) override;
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
  std::vector<std::pair<std::string, std::string>> export_attrs(const TrainConfig& cfg) const override;
  std::unique_ptr<StepEngine> cuda_engine(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm,
                                          const uint8_t* labels) override;

 protected:
  GraphModel(const TrainConfig& cfg, const io::DataShard& data, int rank);

  // The scoring rows of evaluation and params.h5 from the tables (no training noise, no pruning;
  // collective).
  virtual void propagate_eval(dist::Comm& comm) = 0;
  // The row step's backward: gu_, gi_ (dL/dE on this rank's rows; cnt_u_, cnt_i_ their samples'
  // counts) to dL/dE^(0) in place. ir: the step's item routing. Collective.
  virtual void backward_rows(dist::Comm& comm, const dist::Routing& ir) = 0;

  // A layer's rows right after its product (k = 1..K; users, items): it may change them.
  using LayerHook = std::function<void(int k, float* xu, float* xi)>;
  // The scoring rows E = mean(E^(k)) over k = 0..K (from_layer1: 1..K) with E^(k+1) = g E^(k) and
  // E^(0) the tables, summed in layer order. Collective.
  void mean_forward(dist::Comm& comm, dist::BipartiteGraph& g, bool from_layer1, const LayerHook& layer = {});
  // Its backward for layers 0..K: dL/dE (gu, gi, this rank's rows) to dL/dE^(0) in place. Collective.
  void mean_backward(dist::Comm& comm, dist::BipartiteGraph& g, float* gu, float* gi);
  // y += x over whole shards (size_t lengths; kernels::add takes a row's int width).
  static void add_into(float* y, const float* x, size_t n) {
    for (size_t k = 0; k < n; ++k) y[k] += x[k];
  }

  int layers_;
  float l2_;
  // The training edges of this rank's users (the graph is built from them on first use).
  std::vector<int64_t> ptr_;
  std::vector<int32_t> edges_;
  // The scoring rows E, as an MF model (no optimizer state).
  std::unique_ptr<MFModel> scoring_;
  ThreadPool* pool_ = nullptr;
  // The main pass's gradient factor over the step's samples, for the L2 term at the owners.
  float reg_ = 0;
  std::vector<float> gu_, gi_, cur_u_, cur_i_, nxt_u_, nxt_i_;
  std::vector<uint32_t> cnt_u_, cnt_i_;

 private:
  std::unique_ptr<dist::BipartiteGraph> graph_;
};

}  // namespace shardrec
