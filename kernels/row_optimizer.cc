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

void RowOptimizer::update(int64_t r, float* w, const float* grad) {
  const int d = dim_;
  const float wd = cfg_.weight_decay;
  switch (cfg_.kind) {
    case OptimizerConfig::Kind::kSgd:
      if (!grad) return;
      if (wd == 0.0f) {
        for (int k = 0; k < d; ++k) w[k] -= cfg_.lr * grad[k];
      } else {
        for (int k = 0; k < d; ++k) w[k] -= cfg_.lr * (grad[k] + wd * w[k]);
      }
      return;
    case OptimizerConfig::Kind::kAdagrad: {
      if (!grad) return;
      float g2 = 0.0f;
      for (int k = 0; k < d; ++k) {
        const float g = grad[k] + wd * w[k];
        g2 += g * g;
      }
      float& a = v_[r];
      a += g2 / static_cast<float>(d);
      const float scale = cfg_.lr / (std::sqrt(a) + cfg_.eps);
      for (int k = 0; k < d; ++k) w[k] -= scale * (grad[k] + wd * w[k]);
      return;
    }
    case OptimizerConfig::Kind::kAdam:
    case OptimizerConfig::Kind::kAdamDense: {
      if (!grad && !cfg_.dense()) return;
      const hd::AdamStep a = adam_factors();
      float* m = &m_[r * d];
      float* v = &v_[r * d];
      for (int k = 0; k < d; ++k) hd::adam(w[k], m[k], v[k], grad ? grad[k] : 0.0f, a);
      return;
    }
  }
}

}  // namespace shardrec
