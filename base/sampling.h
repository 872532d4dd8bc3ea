// The samplers both backends draw with (base/hd.h): negatives for MF/VBPR and unlabeled items for
// GMF/NeuMF, uniform over the items a user has not seen, rejected against the user's sorted
// training items as the papers' code does. Each draw is a pure function of (seed, epoch, dataset
// row, k), so batches do not depend on the number of ranks or on the device.
#pragma once
#include <cstdint>

#include "base/hd.h"
#include "base/rng.h"

namespace shardrec::sampling {

// Whether j is among the cnt sorted ids at seen. Branch-free (a conditional move per halving):
// the draws are random, so a branchy search mispredicts about every other comparison.
SHARDREC_HD inline bool contains(const int32_t* seen, int64_t cnt, int64_t j) {
  if (cnt <= 0) return false;
  const int32_t x = static_cast<int32_t>(j);
  const int32_t* base = seen;  // the last element <= x, or the first
  for (int64_t len = cnt; len > 1;) {
    const int64_t half = len / 2;
    base = base[half] <= x ? base + half : base;
    len -= half;
  }
  return *base == x;
}

// A very dense user's fallback: the x-th item the user has not seen, x = draw over the free items.
// *failed is set when the user has seen every item.
SHARDREC_HD inline int64_t nth_unseen(uint64_t draw, const int32_t* seen, int64_t cnt, int64_t n_items, bool* failed) {
  int64_t distinct = 0;
  for (int64_t i = 0; i < cnt; ++i) distinct += (i == 0 || seen[i] != seen[i - 1]);
  const int64_t free_items = n_items - distinct;
  if (free_items <= 0) {
    *failed = true;
    return 0;
  }
  const int64_t x = static_cast<int64_t>(to_range(draw, static_cast<uint64_t>(free_items)));
  // The x-th missing id is x + (the number of distinct seen ids u_d with u_d - d <= x).
  int64_t d = 0, lo = 0;
  for (int64_t i = 0; i < cnt; ++i) {
    if (i > 0 && seen[i] == seen[i - 1]) continue;
    if (seen[i] - d <= x) lo = d + 1; else break;
    ++d;
  }
  return x + lo;
}

// The per-epoch key of the negative sampler.
SHARDREC_HD inline uint64_t negative_base(uint64_t seed, int epoch) {
  return hash64(seed, 0x4e67, static_cast<uint64_t>(epoch));
}

// The k-th negative of dataset row `row`: SplitMix64 over a counter keyed by (base, row, k), one
// mixer per draw. Each (row, k) owns 128 consecutive counters; at most 65 are drawn.
// Its first candidate (attempt 0), which negative() returns unless the user has seen it: a host
// step tests many samples' first candidates at once (their searches' loads overlap) and calls
// negative() only for the few it rejects.
SHARDREC_HD inline int64_t negative_first(uint64_t base, int64_t row, int k, int64_t n_items) {
  const uint64_t state = base + (static_cast<uint64_t>(row) * 1024 + static_cast<uint64_t>(k)) * 0x9e3779b97f4a7c15ULL * 128;
  return static_cast<int64_t>(to_range(mix64(state + 0x9e3779b97f4a7c15ULL), static_cast<uint64_t>(n_items)));
}

SHARDREC_HD inline int64_t negative(uint64_t base, int64_t row, int k, const int32_t* seen, int64_t cnt,
                                    int64_t n_items, bool* failed) {
  uint64_t state = base + (static_cast<uint64_t>(row) * 1024 + static_cast<uint64_t>(k)) * 0x9e3779b97f4a7c15ULL * 128;
  for (int attempt = 0; attempt < 64; ++attempt) {
    state += 0x9e3779b97f4a7c15ULL;
    const int64_t j = static_cast<int64_t>(to_range(mix64(state), static_cast<uint64_t>(n_items)));
    if (!contains(seen, cnt, j)) return j;
  }
  state += 0x9e3779b97f4a7c15ULL;
  return nth_unseen(mix64(state), seen, cnt, n_items, failed);
}

// The k-th unlabeled item of dataset row `row`: draw i is hash64(seed, 0x1d1a, epoch, row * 1024 + k, i).
SHARDREC_HD inline int64_t unlabeled(uint64_t seed, uint64_t epoch, int64_t row, int k, const int32_t* seen,
                                     int64_t cnt, int64_t n_items, bool* failed) {
  uint64_t pre = mix64(seed ^ 0x5851f42d4c957f2dULL);
  pre = mix64(pre ^ 0x1d1aULL);
  pre = mix64(pre ^ epoch);
  pre = mix64(pre ^ (static_cast<uint64_t>(row) * 1024 + static_cast<uint64_t>(k)));
  for (uint64_t attempt = 0; attempt < 64; ++attempt) {
    const int64_t j = static_cast<int64_t>(to_range(mix64(pre ^ attempt), static_cast<uint64_t>(n_items)));
    if (!contains(seen, cnt, j)) return j;
  }
  return nth_unseen(mix64(pre ^ 64), seen, cnt, n_items, failed);
}

}  // namespace shardrec::sampling
