// Sparse (row-wise) optimizers applied by the rank that owns a row, after the gradient
// contributions of that row have been reduced there in global sample order.
//   sgd:        w -= lr * g
//   adagrad:    row-wise (one accumulator per row, as FBGEMM's EXACT_ROWWISE_ADAGRAD):
//               a += mean(g^2);  w -= lr * g / (sqrt(a) + eps)
//   adam (lazy): PyTorch's Adam formula on the rows a step touches only; the step counter t is
//               global (counts every step), as in PyTorch's SparseAdam
//   adam_dense: PyTorch's Adam on a dense gradient: every row of the shard moves every step,
//               untouched rows with g = 0 (their moments decay and momentum keeps moving them).
//               This is what RecBole and the papers' code run; see ../docs/architecture.md.
// Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// weight_decay adds wd * w to g before the update (PyTorch's coupled L2), on the rows updated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/kinds.h"
#include "base/math.h"

namespace shardrec {

// What the rest of the system asks of an optimizer kind, in one table (row_optimizer.cc): its
// name for options and files, and the state it keeps per table row: m (dim floats) and v (dim
// floats, or one per row), with the names their checkpoint blocks take.
struct OptimizerTraits {
  OptimizerKind kind;
  const char* name;
  const char* help;
  const char* m_name;  // null: no m
  const char* v_name;  // null: no v
  bool v_per_row;      // v holds one float per row (row-wise Adagrad)
  double state_floats(int dim) const { return (m_name ? dim : 0) + (v_name ? (v_per_row ? 1 : dim) : 0); }
};
const std::vector<OptimizerTraits>& optimizer_traits();
const OptimizerTraits& traits_of(OptimizerKind kind);

struct OptimizerConfig {
  using Kind = OptimizerKind;
  Kind kind = Kind::kAdamDense;
  float lr = 0.001f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  float adagrad_init = 0.0f;
  static Kind parse_kind(const std::string& name);  // sgd, adagrad, adam, adam_dense
  static std::string kind_name(Kind k);
  bool dense() const { return kind == Kind::kAdamDense; }
};

// Optimizer state for one shard of one table: `rows` local rows of width `dim`.
class RowOptimizer {
 public:
  RowOptimizer(const OptimizerConfig& cfg, int64_t rows, int dim);
  // The state itself, for checkpoints (io/checkpoint.h): Adam's moments m and v (rows x dim),
  // or Adagrad's row accumulators in v (rows); empty when the optimizer keeps none.
  std::vector<float>& state_m() { return m_; }
  std::vector<float>& state_v() { return v_; }
  const std::vector<float>& state_m() const { return m_; }
  const std::vector<float>& state_v() const { return v_; }
  void set_step(int64_t t) { t_ = t; }  // begin_step derives the bias corrections from t
  void begin_step();  // once per training step, on every rank
  // Updates one row; grad == nullptr means a zero gradient (dense Adam's untouched rows).
  void update(int64_t local_row, float* w, const float* grad);
  const OptimizerConfig& config() const { return cfg_; }
  int64_t rows() const { return rows_; }
  int dim() const { return dim_; }
  int64_t step() const { return t_; }
  size_t state_bytes() const;
  // This step's Adam factors (set by begin_step): lr / (1 - beta1^t) and sqrt(1 - beta2^t). The GPU
  // backend reads them so its update kernel uses the very same floats.
  float adam_step() const { return adam_step_; }
  float adam_bc2_sqrt() const { return adam_bc2_sqrt_; }
  hd::AdamStep adam_factors() const {
    return {cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, adam_step_, adam_bc2_sqrt_};
  }

 private:
  OptimizerConfig cfg_;
  int64_t rows_;
  int dim_;
  int64_t t_ = 0;
  float adam_step_ = 0, adam_bc2_sqrt_ = 1;  // this step's bias corrections
  std::vector<float> m_, v_;  // Adam moments, or v_ = Adagrad row accumulators
};

}  // namespace shardrec
