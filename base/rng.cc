#include "base/rng.h"

namespace shardrec {

Permutation::Permutation(uint64_t n, uint64_t seed) : n_(n) {
  for (uint64_t k = 0; k < 4; ++k) keys_[k] = hash64(seed, 0xfe15, k);
  int bits = 2;
  while (bits < 64 && (uint64_t{1} << bits) < n) bits += 2;
  half_bits_ = bits / 2;
  mask_ = (uint64_t{1} << half_bits_) - 1;
}

}  // namespace shardrec
