#include "base/rng.h"

namespace shardrec {

Permutation::Permutation(uint64_t n, uint64_t seed) : n_(n) {
  for (uint64_t k = 0; k < 4; ++k) keys_[k] = hash64(seed, 0xfe15, k);
  int bits = 2;
  while (bits < 64 && (uint64_t{1} << bits) < n) bits += 2;
  half_bits_ = bits / 2;
  mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t Permutation::encrypt(uint64_t x) const {
  uint64_t l = x >> half_bits_, r = x & mask_;
  for (uint64_t round = 0; round < 4; ++round) {
    // One keyed mixer per round: the rounds are the hot path of the epoch shuffle.
    const uint64_t f = mix64(r ^ keys_[round]) & mask_;
    const uint64_t nl = r;
    r = l ^ f;
    l = nl;
  }
  return (l << half_bits_) | r;
}

uint64_t Permutation::operator()(uint64_t x) const {
  // The domain is at most 4n, so the expected number of walks is below 4.
  uint64_t y = encrypt(x);
  while (y >= n_) y = encrypt(y);
  return y;
}

}  // namespace shardrec
