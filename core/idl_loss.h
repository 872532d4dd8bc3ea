// Inverse Dual Loss ("Inverse Learning with Extremely Sparse Feedback for Recommendation",
// WSDM 2024) for pointwise models. A labeled row uses binary cross-entropy with its label; an
// unlabeled row (an item drawn for the user) uses the dual loss
//     Lp = BCE(y, 1),  Ln = BCE(y, 0)            (the weights use detached copies)
//     w_pos = Ln^2 / (Lp^2 + Ln^2),  w_neg = Lp^2 / (Lp^2 + Ln^2)
//     dual = w_pos * Lp + w_neg * Ln
// The smaller loss gets the larger weight: the model's own belief labels the instance. The
// reference computes w_pos = (Ln/Lp) / (Ln/Lp + Lp/Ln) with 1e-9 guards; that is the same value
// (Lp + Ln >= 2 log 2, so the guards never matter). Since the weights are constants for the
// gradient, d dual / dy = w_pos * (sigmoid(y) - 1) + w_neg * sigmoid(y) = sigmoid(y) - w_pos.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>

#include "base/math.h"

namespace shardrec::idl {

using hd::sigmoid;   // base/math.h: shared with the CUDA loss kernel
using hd::softplus;

// BCE of logit y against target t in {0, 1}; *dy = d loss / d y.
inline double bce(double y, double t, double* dy) {
  if (dy) *dy = sigmoid(y) - t;
  return t > 0.5 ? softplus(-y) : softplus(y);
}

struct DualWeights {
  double pos, neg;
};
inline DualWeights dual_weights(double y) {
  const double lp = softplus(-y), ln = softplus(y);
  const double s = lp * lp + ln * ln;
  return {ln * ln / s, lp * lp / s};
}

// The dual loss of an unlabeled row; *dy = its gradient with the weights detached.
inline double dual(double y, double* dy) {
  const DualWeights w = dual_weights(y);
  if (dy) *dy = sigmoid(y) - w.pos;
  return w.pos * softplus(-y) + w.neg * softplus(y);
}

// The batch loss: the mean over rows of (labeled ? BCE(y, label) : dual(y)). label[r] is 0 or 1
// for a labeled row and -1 for an unlabeled one; grad (optional, same length) receives
// d loss / d y per row. The trainer computes exactly these terms row by row.
inline double batch_loss(std::span<const float> y, std::span<const int8_t> label,
                         std::span<double> grad = {}) {
  double sum = 0;
  const double inv = 1.0 / static_cast<double>(y.size());
  for (size_t r = 0; r < y.size(); ++r) {
    double dy = 0;
    sum += label[r] < 0 ? dual(y[r], &dy) : bce(y[r], label[r], &dy);
    if (!grad.empty()) grad[r] = dy * inv;
  }
  return sum * inv;
}

}  // namespace shardrec::idl
