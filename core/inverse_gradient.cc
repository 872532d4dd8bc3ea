#include "core/inverse_gradient.h"

#include <cmath>
#include <cstring>

#include "base/math.h"

namespace shardrec::ig {

void CandidateStep::delta(const float* g, float* d, int n) const {
  if (!fresh_adam) {
    for (int k = 0; k < n; ++k) d[k] = -lr * g[k];
    return;
  }
  // A fresh Adam at t = 1, with the bias corrections formed as RowOptimizer forms them.
  const hd::AdamStep a{beta1, beta2, eps, 0.0f, static_cast<float>(lr / (1.0 - static_cast<double>(beta1))),
                       static_cast<float>(std::sqrt(1.0 - static_cast<double>(beta2)))};
  for (int k = 0; k < n; ++k) d[k] = hd::fresh_adam_delta(g[k], a);
}

void CandidateStep::step(const float* g, float* w, int n) const {
  std::vector<float> d(static_cast<size_t>(n));
  delta(g, d.data(), n);
  for (int k = 0; k < n; ++k) w[k] += d[k];
}

void TentativeRows::prepare(dist::Comm& comm, dist::ShardedEmbedding& t, const dist::Routing& r,
                            std::span<const uint64_t> keys, const float* grads,
                            const CandidateStep& step, float* d_out) {
  const int dim = t.dim();
  rows_.clear();
  orig_.clear();
  delta_.clear();
  // Owners: keep each touched row, then put its d in the row's place for the gather ...
  t.reduce(comm, r, keys, grads, [&](int64_t row, const float* g) {
    float* w = t.local_row(row);
    rows_.push_back(row);
    orig_.insert(orig_.end(), w, w + dim);
    delta_.resize(delta_.size() + dim);
    step.delta(g, delta_.data() + delta_.size() - dim, dim);
    std::memcpy(w, delta_.data() + delta_.size() - dim, dim * sizeof(float));
  });
  // ... so that one gather brings every requester the d rows of its ids; then put theta back.
  t.gather(comm, r, d_out);
  for (size_t k = 0; k < rows_.size(); ++k)
    std::memcpy(t.local_row(rows_[k]), orig_.data() + k * dim, dim * sizeof(float));
}

void TentativeRows::commit(dist::ShardedEmbedding& t, int sign) const {
  const int dim = t.dim();
  for (size_t k = 0; k < rows_.size(); ++k) {
    float* w = t.local_row(rows_[k]);
    const float* d = delta_.data() + k * dim;
    if (sign > 0)
      for (int j = 0; j < dim; ++j) w[j] = w[j] + d[j];
    else
      for (int j = 0; j < dim; ++j) w[j] = w[j] - d[j];
  }
}

void fresh_step(dist::Comm& comm, dist::ShardedEmbedding& t, const dist::Routing& r,
                std::span<const uint64_t> keys, const float* grads, const CandidateStep& step) {
  t.reduce(comm, r, keys, grads,
           [&](int64_t row, const float* g) { step.step(g, t.local_row(row), t.dim()); });
}

}  // namespace shardrec::ig
