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
#include "core/graph_model.h"
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

class LightGcnModel final : public GraphModel {
 public:
  LightGcnModel(const TrainConfig& cfg, const io::DataShard& data, int rank, GraphVariant v = {});

  // The propagation E = mean(E^(0..K)) of the tables' rows into the scoring rows over graph().
  // noise: a training propagation's key (XSimGCL's noise; null: none, as in evaluation).
  void propagate(dist::Comm& comm, const NoiseKey* noise = nullptr);
  // dL/dE^(0) from dL/dE on this rank's rows (overwritten with the result; collective); lu, li
  // (or null): dL/d(layer cl_layer's rows), which the contrast adds.
  void backward(dist::Comm& comm, float* gu, float* gi, const float* lu = nullptr, const float* li = nullptr);
  // Layer cl_layer's rows of the last training propagation (table 0: users, 1: items; local order).
  const std::vector<float>& layer_rows(int table) const { return table == 0 ? lay_u_ : lay_i_; }

  ModelState state() override { return {{&user, &item}, {}}; }
  void pass(const StepBatch& b, const PassArgs& a) override;
  void apply_dense(dist::Comm&) override {}
  void refresh_rows(dist::Comm& comm, const StepBatch& b) override;

 private:
  void propagate_eval(dist::Comm& comm) override { propagate(comm); }
  void backward_rows(dist::Comm& comm, const dist::Routing& ir) override;
  // XSimGCL's InfoNCE over the step's users and positive items (ir: the step's item routing),
  // into gu_, gi_ (the scoring rows) and glu_, gli_ (layer l*'s rows). Collective.
  void contrast(dist::Comm& comm, const dist::Routing& ir);

  GraphVariant v_;
  uint64_t seed_;
  // The contrast: the main pass's scale, its loss sums, item slots per sample; the training
  // propagation's layer-l* rows and their gradients; which pass of which step this is.
  float scale_ = 0;
  dist::ExactSums* loss_ = nullptr;
  int loss_slot_ = 0, per_ = 1;
  double terms_ = 1;
  int64_t global_n_ = 1;
  std::vector<float> lay_u_, lay_i_, glu_, gli_;
  NoiseKey key_;
};

}  // namespace shardrec
