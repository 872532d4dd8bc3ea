#include "dist/exact_sum.h"

#include <cmath>

#include "base/error.h"

namespace shardrec::dist {

ExactSums::ExactSums(size_t n, int frac_bits) : acc_(n, 0), scale_(std::ldexp(1.0, frac_bits)) {}

void ExactSums::add(size_t i, double v) {
  if (!std::isfinite(v)) fail("exact sum: a non-finite value (NaN or Inf) was accumulated");
  acc_[i] += std::llround(v * scale_);
}

double ExactSums::value(size_t i) const { return static_cast<double>(acc_[i]) / scale_; }

void ExactSums::allreduce(Comm& comm) { comm.allreduce_sum(acc_.data(), acc_.size()); }

}  // namespace shardrec::dist
