#include "core/sampler.h"

#include <algorithm>

namespace shardrec {

void Sampler::negatives(int epoch, int k, size_t n, const int64_t* row, const int32_t* const* seen,
                        const int64_t* cnt, int64_t* out, size_t stride) const {
  // No cached state: threads draw disjoint samples at once.
  const uint64_t neg_base = sampling::negative_base(seed_, epoch);
  // sampling::contains's halving search for G candidates at once: each round takes one step of
  // every search and prefetches its next probe, so G misses are in flight instead of one.
  constexpr size_t G = 16;
  const int32_t* base[G];
  int64_t len[G];
  int32_t x[G];
  for (size_t g0 = 0; g0 < n; g0 += G) {
    const size_t m = std::min(G, n - g0);
    for (size_t q = 0; q < m; ++q) {
      const size_t i = g0 + q;
      x[q] = static_cast<int32_t>(sampling::negative_first(neg_base, row[i], k, num_items_));
      base[q] = seen[i];
      len[q] = cnt[i];
      if (len[q] > 1) __builtin_prefetch(base[q] + len[q] / 2);
    }
    for (bool active = true; active;) {
      active = false;
      for (size_t q = 0; q < m; ++q) {
        if (len[q] <= 1) continue;
        const int64_t half = len[q] / 2;
        base[q] = base[q][half] <= x[q] ? base[q] + half : base[q];
        len[q] -= half;
        if (len[q] > 1) {
          __builtin_prefetch(base[q] + len[q] / 2);
          active = true;
        }
      }
    }
    for (size_t q = 0; q < m; ++q) {
      const size_t i = g0 + q;
      const bool seen_it = cnt[i] > 0 && *base[q] == x[q];
      // A seen first candidate: the sampler's own loop, which rejects it again and draws on.
      if (!seen_it) {
        out[i * stride] = x[q];
        continue;
      }
      bool failed = false;
      out[i * stride] = sampling::negative(neg_base, row[i], k, seen[i], cnt[i], num_items_, &failed);
      if (failed) no_negative(row[i]);
    }
  }
}

}  // namespace shardrec
