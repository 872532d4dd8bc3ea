// The NCF family (He et al., WWW 2017) as the Inverse Learning paper uses it, as pointwise models
// (one logit per (user, item)):
//   gmf:   y = w_p . (p_u * q_i) + b_p                                 (p, q: dim floats)
//   neumf: y = w_p . [p_u * q_i, MLP([a_u, c_i])] + b_p                (a, c: dim * 2^(L-1) floats;
//          MLP: L Linear+ReLU layers, each halving the width, e.g. 256-128-64-32 for dim 32, L 3)
// Each table row holds a user's (an item's) GMF and MLP embeddings side by side, so one routing
// serves both. Tables are sharded like MF's; the MLP and the prediction layer ("dense") are
// replicated on every rank (data-parallel).
// Initialisation (the reference's): embeddings N(0, 0.01), MLP weights Xavier-uniform, prediction
// weights Kaiming-uniform with a = 1 (bound sqrt(3 / fan_in)), biases 0; the dense values come
// from a counter RNG keyed by the seed alone, so every rank holds the same ones.
//
// Dense gradients are summed exactly (DenseGradAccum): each sample's contribution to each
// parameter is rounded once to a fixed-point int64 and the integers are summed, locally and in one
// allreduce. Integer addition is associative, so the sum does not depend on how the batch's samples
// are spread over ranks: bitwise world-size invariance. Rounding is to 2^-44 (about 6e-14), far
// below the float resolution of the gradients themselves.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "base/scratch.h"
#include "core/config.h"
#include "core/model.h"
#include "core/model_state.h"
#include "kernels/row_optimizer.h"
#include "dist/comm.h"
#include "dist/sharded_embedding.h"

namespace shardrec {

class DenseGradAccum {
 public:
  static constexpr int kFracBits = 44;
  explicit DenseGradAccum(size_t n = 0) : acc_(n, 0) {}
  void resize(size_t n) { acc_.assign(n, 0); }
  void clear() { std::fill(acc_.begin(), acc_.end(), 0); }
  size_t size() const { return acc_.size(); }
  int64_t* data() { return acc_.data(); }
  // acc[off + i] += fixed(v[i]);  acc[off + r*nx + c] += fixed(a[r] * x[c]).
  void add(size_t off, const float* v, int n);
  void add_outer(size_t off, const float* a, int na, const float* x, int nx);
  // acc += o.acc (a thread's part: integer sums, so the order does not matter).
  void add_from(const DenseGradAccum& o) {
    for (size_t i = 0; i < acc_.size(); ++i) acc_[i] += o.acc_[i];
  }
  // Sums over ranks and writes the float totals (identical on every rank). Clears nothing.
  void allreduce(dist::Comm& comm, float* out);

 private:
  std::vector<int64_t> acc_;
};

class NcfModel final : public Model {
 public:
  struct Layer {
    int in, out;
    size_t w, b;  // offsets into dense; w is row-major [out][in]
  };
  NcfModel(const TrainConfig& cfg, const dist::Sharding& user_sharding, int64_t num_items, int rank);

  std::vector<float> dense;  // MLP layers then the prediction layer, see the offsets below

  bool neumf() const { return neumf_; }
  int gmf_dim() const { return gmf_dim_; }
  int mlp_dim() const { return mlp_dim_; }    // MLP embedding width (0 for gmf)
  int row_dim() const { return gmf_dim_ + mlp_dim_; }
  // Floats of per-sample activations that forward() keeps for backward().
  int act_size() const { return act_size_; }

  // The logit of one (user row, item row) pair under dense parameters w (dense.data() or a
  // tentative copy); act receives the activations.
  float forward(const float* u, const float* it, const float* w, float* act) const;
  // Gradients of dy * logit: adds to gu and gi (row_dim floats each) and to the dense sums.
  void backward(float dy, const float* u, const float* it, const float* w, const float* act,
                float* gu, float* gi, DenseGradAccum& gdense) const;
  // One optimizer step on the dense parameters from their summed gradient.
  void apply_dense(const float* grad);
  // A fresh dense optimizer (the reference's re-created Adam).
  void reset_dense_optimizer();
  // Its state (checkpoints): Adam's m, v over the dense vector (one row) and the step counter.
  RowOptimizer& dense_optimizer() { return *opt_; }
  // core/model.h. Labeled rows add BCE with their label; draws (unlabeled rows) add the dual loss,
  // or BCE as negatives with loss bce-neg. A plain step's terms are one mean over all rows; a
  // meta-step's labeled and unlabeled terms are separate means.
  bool labeled() const override { return true; }
  DrawKind draw_kind() const override { return DrawKind::kUnlabeled; }
  int draws(const TrainConfig& cfg, bool meta) const override {
    return (cfg.strategy == "ig" ? meta : cfg.loss != "bce") ? cfg.il_unlabeled : 0;
  }
  double terms_per_sample(const TrainConfig&) const override { return 1; }
  uint64_t order_salt() const override { return 0x11e0; }
  void pass(const StepBatch& b, const PassArgs& a) override;
  // The weights of a batch's labeled and unlabeled terms (before Terms and scale).
  static std::pair<double, double> weights(const StepBatch& b);
  void apply_dense(dist::Comm& comm) override;
  std::vector<float>* flat_dense() override { return &dense; }
  void reduce_dense_grad(int grad, dist::Comm& comm, float* out) override { gd_[grad].allreduce(comm, out); }
  void reset_optimizers() override {
    Model::reset_optimizers();
    reset_dense_optimizer();
  }
  // The labeled protocol (core/labeled_metrics.h): every row of the split scored as a logit.
  EvalResult evaluate(const io::DataShard& data, int split, const TrainConfig& cfg, dist::Comm& comm) override;
  std::vector<io::DenseParam> exported_dense() override {
    return {{"ncf", static_cast<int64_t>(dense.size()), 0, &dense}};
  }
  std::vector<std::pair<std::string, std::string>> export_attrs(const TrainConfig& cfg) const override {
    return {{"model", cfg.model}, {"features", ""}, {"dim", std::to_string(cfg.dim)},
            {"mlp_layers", std::to_string(cfg.mlp_layers)}};
  }
  std::unique_ptr<StepEngine> cuda_engine(const TrainConfig& cfg, const io::DataShard& data, dist::Comm& comm,
                                          const uint8_t* labels) override;
  // Retrieval. gmf: the logit is p_u . (w_p * q_i) + b_p, so the user vectors are the rows p_u, the
  // item vectors w_p * q_i (elementwise) and the offset b_p. neumf has no dot form (its MLP over
  // [a_u, c_i] does not factor) and ranks by score_block: the logit of forward(), GMF part and MLP.
  bool dot_form(std::string* why = nullptr) const override;
  RetrievalVectors retrieval_vectors() const override;
  void score_block(const float* const* U, size_t nu, const float* I, size_t n, float* out) const override;

  // The tables and the dense vector (one row of dense.size()).
  ModelState state() override {
    return {{&user, &item}, {{"ncf", "dense", 1, static_cast<int64_t>(dense.size()), &dense, opt_.get()}}};
  }
  // The layers (the GPU backend runs them with cuBLAS): the MLP's, then the prediction layer
  // (in = gmf_dim + the last MLP width, out 1) whose input is [p_u * q_i, MLP output].
  const std::vector<Layer>& mlp() const { return mlp_; }
  const Layer& pred() const { return pred_; }

 private:
  bool neumf_;
  int gmf_dim_, mlp_dim_, act_size_ = 0;
  std::vector<Layer> mlp_;
  Layer pred_{};
  OptimizerConfig opt_cfg_;
  std::unique_ptr<RowOptimizer> opt_;
  bool draws_negative_ = false;  // loss bce-neg: draws are negatives
  DenseGradAccum gd_[2];         // the dense gradients of pass(), by PassArgs::grad
  std::vector<DenseGradAccum> gd_part_;  // threads' parts of one pass
  std::vector<float> gdense_;
  Scratch<float> act_;
};

}  // namespace shardrec
