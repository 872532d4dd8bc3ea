// Counter-based randomness: every random number is a pure function of (seed, stream keys, counter),
// so a value never depends on how many ranks drew numbers before it. This is what makes negatives,
// initial rows and the epoch shuffle identical for any world size.
// The mixers, the range reduction and the Feistel permutation are SHARDREC_HD (base/hd.h): the
// GPU backend draws its epoch order and samples with these very functions.
#pragma once
#include <cmath>
#include <cstdint>

#include "base/hd.h"

namespace shardrec {

// splitmix64's finaliser: a bijective 64-bit mixer with good avalanche.
SHARDREC_HD inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

SHARDREC_HD inline uint64_t hash64(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0) {
  uint64_t h = mix64(seed ^ 0x5851f42d4c957f2dULL);
  h = mix64(h ^ a);
  h = mix64(h ^ b);
  h = mix64(h ^ c);
  return mix64(h ^ d);
}

// Uniform in [0, 1) with 53 random bits.
inline double to_unit(uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

// Uniform integer in [0, n) (Lemire's multiply-shift; bias below 2^-40 for n < 2^24).
SHARDREC_HD inline uint64_t to_range(uint64_t x, uint64_t n) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(x, n);  // the same high word
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * n) >> 64);
#endif
}

// A sequence of draws under fixed keys: draw i is hash64(seed, a, b, c, i).
class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0)
      : seed_(seed), a_(a), b_(b), c_(c) {}
  uint64_t next() { return hash64(seed_, a_, b_, c_, i_++); }
  double uniform() { return to_unit(next()); }
  uint64_t below(uint64_t n) { return to_range(next(), n); }
  // Standard normal (Box-Muller; the second value of the pair is dropped).
  double normal() {
    double a, b;
    normal_pair(a, b);
    return a;
  }
  // Two independent standard normals from two uniforms (Box-Muller).
  void normal_pair(double& a, double& b) {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 6.283185307179586 * u2;
    a = r * std::cos(t);
    b = r * std::sin(t);
  }

 private:
  uint64_t seed_, a_, b_, c_, i_ = 0;
};

// A seeded random permutation of [0, n) evaluated pointwise: a 4-round Feistel network on the
// smallest even power of two >= n, with cycle walking to stay inside [0, n). Plain data, so a
// kernel takes it by value.
struct Permutation {
  Permutation() = default;
  Permutation(uint64_t n, uint64_t seed);
  SHARDREC_HD uint64_t operator()(uint64_t x) const {
    // The domain is at most 4n, so the expected number of walks is below 4.
    uint64_t y = encrypt(x);
    while (y >= n_) y = encrypt(y);
    return y;
  }
  SHARDREC_HD uint64_t size() const { return n_; }

 private:
  SHARDREC_HD uint64_t encrypt(uint64_t x) const {
    uint64_t l = x >> half_bits_, r = x & mask_;
    for (int round = 0; round < 4; ++round) {
      // One keyed mixer per round: the rounds are the hot path of the epoch shuffle.
      const uint64_t f = mix64(r ^ keys_[round]) & mask_;
      const uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    return (l << half_bits_) | r;
  }
  uint64_t n_ = 0;
  uint64_t keys_[4] = {0, 0, 0, 0};  // round keys derived from the seed
  int half_bits_ = 1;
  uint64_t mask_ = 1;
};

}  // namespace shardrec
