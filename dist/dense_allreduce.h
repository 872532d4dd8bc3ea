// Gradient sums of dense (data-parallel) parameters that do not depend on the number of ranks.
// Samples live on the rank that owns their user, so a sum over a batch is split across ranks in
// a way that changes with N; a float sum would change with it. Each contribution is instead
// rounded once to a fixed-point int64 (2^-frac_bits resolution) and summed exactly, locally and
// in one allreduce: integer addition is associative, so the total is the same for any grouping.
// This is the reduction the dense layers of GMF/NeuMF and VBPR's projection use.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace shardrec::dist {

class ExactGradientSum {
 public:
  // n parameters; |any partial or total sum| must stay below 2^(62 - frac_bits).
  explicit ExactGradientSum(size_t n, int frac_bits = 40, std::string name = "dense");
  void clear();
  // acc[i] += round(scale * g[i] * 2^frac_bits), for a contribution of one sample.
  void add(const float* g, float scale = 1.0f);
  void add_at(size_t i, float v);
  // Sums over ranks (one allreduce of n int64) and writes the totals as floats.
  void allreduce(Comm& comm, float* out);
  size_t size() const { return acc_.size(); }
  // The raw sums (the GPU backend fills them from its device-side sums) and their bounds.
  int64_t* data() { return acc_.data(); }
  int frac_bits() const { return frac_bits_; }
  double limit() const { return limit_; }

 private:
  std::vector<int64_t> acc_;
  int frac_bits_;
  double scale_, limit_;
  std::string name_;
};

}  // namespace shardrec::dist
