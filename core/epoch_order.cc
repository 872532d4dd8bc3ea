#include "core/epoch_order.h"

#include <algorithm>

namespace shardrec {

std::span<const LocalSample> EpochOrder::step(int64_t s) {
  LocalSample* b = order_.data() + start_[s];
  LocalSample* e = order_.data() + start_[s + 1];
  // Positions are distinct, so the order is total; sorting a step at a time keeps it cheap.
  std::sort(b, e, [](const LocalSample& x, const LocalSample& y) { return x.off < y.off; });
  return {b, static_cast<size_t>(e - b)};
}

}  // namespace shardrec
