// Synthetic interaction data with popularity skew and planted structure, streamed to the HDF5
// dataset format in user order, so that its size is bounded by the disk, not by memory.
//   activity: user u has n_u = clamp(round(mean * exp(sigma * z - sigma^2 / 2)), min, items / 2)
//             distinct items (log-normal, z ~ N(0,1) from the seed);
//   structure: users and items fall into `clusters` groups (item i is in group i % clusters,
//             user u in a hashed group); each draw is from the user's group with probability
//             `affinity`, else from all items; within either, ranks follow a Zipf law with
//             exponent `zipf`, so small ids are popular;
//   split:    per user, a seeded shuffle, then floor(n * test) rows to test and floor(n * valid)
//             to valid (when the user has at least 3 rows).
#pragma once
#include <cstdint>
#include <string>

namespace shardrec::io {

struct SynthConfig {
  int64_t users = 10000;
  int64_t items = 2000;
  int64_t interactions = 200000;  // expected total (before the per-user cap)
  double zipf = 0.8;
  double activity_sigma = 1.0;
  int64_t min_per_user = 5;
  int clusters = 16;
  double affinity = 0.7;
  double valid = 0.1, test = 0.1;
  uint64_t seed = 1;
};

struct SynthStats {
  int64_t rows[3] = {0, 0, 0};
};

SynthStats synthesize(const SynthConfig& cfg, const std::string& path);

}  // namespace shardrec::io
