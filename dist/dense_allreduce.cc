#include "dist/dense_allreduce.h"

#include <cmath>

#include "base/error.h"

namespace shardrec::dist {

ExactGradientSum::ExactGradientSum(size_t n, int frac_bits, std::string name)
    : acc_(n, 0),
      frac_bits_(frac_bits),
      scale_(std::ldexp(1.0, frac_bits)),
      limit_(std::ldexp(1.0, 62 - frac_bits)),
      name_(std::move(name)) {
  if (frac_bits < 0 || frac_bits > 60) fail("exact gradient sum: frac_bits must be in 0..60");
}

void ExactGradientSum::clear() { std::fill(acc_.begin(), acc_.end(), 0); }

void ExactGradientSum::add_at(size_t i, float v) {
  const double x = static_cast<double>(v);
  // A contribution beyond the range (or NaN/Inf) would wrap silently: stop with a clear message.
  if (!(std::abs(x) < limit_))
    fail("gradient of " + name_ + "[" + std::to_string(i) + "] is " + std::to_string(x) +
         ": outside the exact-sum range (NaN, Inf or a diverging step; lower the learning rate)");
  acc_[i] += std::llround(x * scale_);
}

void ExactGradientSum::add(const float* g, float scale) {
  for (size_t i = 0; i < acc_.size(); ++i) add_at(i, scale * g[i]);
}

void ExactGradientSum::allreduce(Comm& comm, float* out) {
  comm.allreduce_sum(acc_.data(), acc_.size());
  for (size_t i = 0; i < acc_.size(); ++i) {
    const double v = static_cast<double>(acc_[i]) / scale_;
    if (!(std::abs(v) < limit_)) fail("gradient sum of " + name_ + "[" + std::to_string(i) + "] overflowed");
    out[i] = static_cast<float>(v);
  }
}

}  // namespace shardrec::dist
