#include "kernels/row_optimizer.h"

#include <cmath>

#include "base/error.h"

namespace shardrec {

const std::vector<OptimizerTraits>& optimizer_traits() {
  static const std::vector<OptimizerTraits> t = {
      {OptimizerKind::kSgd, "sgd", "w -= lr g", nullptr, nullptr, false},
      {OptimizerKind::kAdagrad, "adagrad", "row-wise Adagrad (one accumulator per row)", nullptr, "adagrad_sum", true},
      {OptimizerKind::kAdam, "adam", "lazy Adam (the rows of the batch)", "adam_m", "adam_v", false},
      {OptimizerKind::kAdamDense, "adam_dense", "Adam on every row every step (PyTorch's dense Adam)", "adam_m",
       "adam_v", false},
  };
  return t;
}

const OptimizerTraits& traits_of(OptimizerKind kind) {
  for (const auto& t : optimizer_traits())
    if (t.kind == kind) return t;
  fail("unknown optimizer kind " + std::to_string(static_cast<int>(kind)));
}

OptimizerConfig::Kind OptimizerConfig::parse_kind(const std::string& name) {
  std::string all;
  for (const auto& t : optimizer_traits()) {
    if (name == t.name) return t.kind;
    all += (all.empty() ? "" : ", ") + std::string(t.name);
  }
  fail("optimizer '" + name + "': expected " + all);
}

std::string OptimizerConfig::kind_name(Kind k) { return traits_of(k).name; }

RowOptimizer::RowOptimizer(const OptimizerConfig& cfg, int64_t rows, int dim)
    : cfg_(cfg), rows_(rows), dim_(dim) {
  switch (cfg.kind) {
    case OptimizerConfig::Kind::kSgd: break;
    case OptimizerConfig::Kind::kAdagrad: v_.assign(rows, cfg.adagrad_init); break;
    case OptimizerConfig::Kind::kAdam:
    case OptimizerConfig::Kind::kAdamDense:
      m_.assign(rows * dim, 0.0f);
      v_.assign(rows * dim, 0.0f);
      break;
  }
}

void RowOptimizer::begin_step() {
  ++t_;
  const double t = static_cast<double>(t_);
  adam_step_ = static_cast<float>(cfg_.lr / (1.0 - std::pow(static_cast<double>(cfg_.beta1), t)));
  adam_bc2_sqrt_ = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(cfg_.beta2), t)));
}

size_t RowOptimizer::state_bytes() const { return (m_.size() + v_.size()) * sizeof(float); }

namespace {
// The element loops, with their settings in registers and no aliasing between the rows, so the
// compiler vectorises them (AVX2 clone where the CPU has it). Each element is computed by the
// same float operations in the same order as a scalar loop (no reductions, no contraction:
// -ffp-contract=off; sqrt is correctly rounded, and -fno-math-errno on this file only drops its
// errno branch), so the bits do not depend on the vector width.
#define SHARDREC_CLONES __attribute__((target_clones("avx2", "default")))

SHARDREC_CLONES void sgd(float* __restrict w, const float* __restrict g, int d, float lr) {
  for (int k = 0; k < d; ++k) w[k] -= lr * g[k];
}
SHARDREC_CLONES void sgd_wd(float* __restrict w, const float* __restrict g, int d, float lr, float wd) {
  for (int k = 0; k < d; ++k) w[k] -= lr * (g[k] + wd * w[k]);
}
SHARDREC_CLONES void adagrad_apply(float* __restrict w, const float* __restrict g, int d, float scale, float wd) {
  for (int k = 0; k < d; ++k) w[k] -= scale * (g[k] + wd * w[k]);
}
SHARDREC_CLONES void adam(float* __restrict w, float* __restrict m, float* __restrict v, const float* __restrict g,
                          int d, hd::AdamStep a) {
  for (int k = 0; k < d; ++k) hd::adam(w[k], m[k], v[k], g[k], a);
}
// A dense Adam row that the batch did not touch: gradient 0.
SHARDREC_CLONES void adam_zero(float* __restrict w, float* __restrict m, float* __restrict v, int d, hd::AdamStep a) {
  for (int k = 0; k < d; ++k) hd::adam(w[k], m[k], v[k], 0.0f, a);
}
#undef SHARDREC_CLONES
}  // namespace

void RowOptimizer::update(int64_t r, float* w, const float* grad) {
  const int d = dim_;
  const float wd = cfg_.weight_decay;
  switch (cfg_.kind) {
    case OptimizerConfig::Kind::kSgd:
      if (!grad) return;
      if (wd == 0.0f)
        sgd(w, grad, d, cfg_.lr);
      else
        sgd_wd(w, grad, d, cfg_.lr, wd);
      return;
    case OptimizerConfig::Kind::kAdagrad: {
      if (!grad) return;
      float g2 = 0.0f;  // in element order: a reduction keeps its scalar order
      for (int k = 0; k < d; ++k) {
        const float g = grad[k] + wd * w[k];
        g2 += g * g;
      }
      float& a = v_[r];
      a += g2 / static_cast<float>(d);
      adagrad_apply(w, grad, d, cfg_.lr / (std::sqrt(a) + cfg_.eps), wd);
      return;
    }
    case OptimizerConfig::Kind::kAdam:
    case OptimizerConfig::Kind::kAdamDense: {
      if (!grad && !cfg_.dense()) return;
      const hd::AdamStep a = adam_factors();
      float* m = &m_[r * d];
      float* v = &v_[r * d];
      if (grad)
        adam(w, m, v, grad, d, a);
      else
        adam_zero(w, m, v, d, a);
      return;
    }
  }
}

}  // namespace shardrec
