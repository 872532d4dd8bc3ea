#include "kernels/row_optimizer.h"

#include <cmath>

#include "base/error.h"

namespace shardrec {

OptimizerConfig::Kind OptimizerConfig::parse_kind(const std::string& name) {
  if (name == "sgd") return Kind::kSgd;
  if (name == "adagrad") return Kind::kAdagrad;
  if (name == "adam") return Kind::kAdam;
  if (name == "adam_dense") return Kind::kAdamDense;
  fail("optimizer '" + name + "': expected sgd, adagrad, adam (lazy) or adam_dense");
}

std::string OptimizerConfig::kind_name(Kind k) {
  switch (k) {
    case Kind::kSgd: return "sgd";
    case Kind::kAdagrad: return "adagrad";
    case Kind::kAdam: return "adam";
    case Kind::kAdamDense: return "adam_dense";
  }
  return "?";
}

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
