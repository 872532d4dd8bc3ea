// Scalar maths both backends must round alike (base/hd.h): the losses' link functions and the
// optimizers' per-element updates, operation for operation (the build has no contraction:
// -ffp-contract=off on the host, -fmad=false on the device). Host and device libm differ only in
// expf/exp/log1p, within 2 ulp.
#pragma once
#include <cmath>

#include "base/hd.h"

namespace shardrec::hd {

SHARDREC_HD inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
SHARDREC_HD inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
// log(1 + e^x) without overflow.
SHARDREC_HD inline double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

// This step's factors of an Adam update (RowOptimizer::begin_step forms step and bc2_sqrt).
struct AdamStep {
  float beta1, beta2, eps, weight_decay;
  float step;      // lr / (1 - beta1^t)
  float bc2_sqrt;  // sqrt(1 - beta2^t)
};

// One element of PyTorch's Adam (coupled weight decay).
SHARDREC_HD inline void adam(float& w, float& m, float& v, float grad, const AdamStep& a) {
  const float g = grad + a.weight_decay * w;
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * g * g;
  w -= a.step * m / (sqrtf(v) / a.bc2_sqrt + a.eps);
}

// A fresh Adam's first update of gradient g (t = 1; the Inverse Gradient's candidate step under
// the reference's quirks), with a.step = lr / (1 - beta1) and a.bc2_sqrt = sqrt(1 - beta2).
SHARDREC_HD inline float fresh_adam_delta(float g, const AdamStep& a) {
  const float m = (1.0f - a.beta1) * g;
  const float v = (1.0f - a.beta2) * g * g;
  return -(a.step * m / (sqrtf(v) / a.bc2_sqrt + a.eps));
}

}  // namespace shardrec::hd
