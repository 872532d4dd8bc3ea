// Order-independent sums of real numbers. Floating-point addition is not associative, so a sum
// across ranks would change with the number of ranks; a fixed-point int64 accumulator is exact,
// hence the same for any grouping. Each term is rounded to a multiple of 2^-frac_bits.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "dist/comm.h"

namespace shardrec::dist {

class ExactSums {
 public:
  // n sums; |total| must stay below 2^(63 - frac_bits).
  explicit ExactSums(size_t n, int frac_bits = 32);
  void add(size_t i, double v);
  double value(size_t i) const;
  int64_t raw(size_t i) const { return acc_[i]; }
  void set_raw(size_t i, int64_t v) { acc_[i] = v; }  // a resumed partial sum (checkpoints)
  void clear() { std::fill(acc_.begin(), acc_.end(), 0); }
  // this += o, sum by sum (a thread's part: integers, so exact in any order).
  void merge(const ExactSums& o) {
    for (size_t i = 0; i < acc_.size(); ++i) acc_[i] += o.acc_[i];
  }
  void allreduce(Comm& comm);  // one allreduce of n int64 values
  size_t size() const { return acc_.size(); }

 private:
  std::vector<int64_t> acc_;
  double scale_;
};

}  // namespace shardrec::dist
