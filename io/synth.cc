#include "io/synth.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "io/dataset.h"

namespace shardrec::io {

namespace {
// Rank in [0, n) with P(rank = k) roughly proportional to (k + 1)^-s (continuous inverse CDF).
int64_t zipf_rank(double u, int64_t n, double s) {
  double x;
  if (std::abs(s - 1.0) < 1e-9) {
    x = std::exp(u * std::log(static_cast<double>(n) + 1.0));
  } else {
    const double a = 1.0 - s;
    x = std::pow(u * (std::pow(static_cast<double>(n) + 1.0, a) - 1.0) + 1.0, 1.0 / a);
  }
  return std::clamp<int64_t>(static_cast<int64_t>(x) - 1, 0, n - 1);
}
}  // namespace

SynthStats synthesize(const SynthConfig& c, const std::string& path) {
  auto need = [](bool ok, const char* what) {
    if (!ok) fail(std::string("synth: ") + what);
  };
  need(c.users > 0 && c.items > 1, "users and items must be positive (items >= 2)");
  need(c.interactions >= c.users, "interactions must be at least the number of users");
  need(c.clusters >= 1 && c.clusters <= c.items, "clusters must be in 1..items");
  need(c.affinity >= 0 && c.affinity <= 1, "affinity must be in [0, 1]");
  need(c.valid >= 0 && c.test >= 0 && c.valid + c.test < 1, "valid + test must be below 1");
  need(c.zipf >= 0, "zipf must not be negative");

  DatasetWriter w(path, c.users, c.items, false, "shardrec synth");
  SynthStats st;
  const double mean = static_cast<double>(c.interactions) / static_cast<double>(c.users);
  const int64_t cap = std::max<int64_t>(1, c.items / 2);
  const int64_t per_cluster = c.items / c.clusters;  // items i < per_cluster * clusters are grouped
  std::vector<int32_t> items, parts[3];
  std::unordered_set<int32_t> seen;
  for (int64_t u = 0; u < c.users; ++u) {
    CounterRng rng(c.seed, 0x5e17, static_cast<uint64_t>(u));
    const double z = rng.normal();
    const double s = c.activity_sigma;
    int64_t n = std::llround(mean * std::exp(s * z - 0.5 * s * s));
    n = std::clamp<int64_t>(n, std::min(c.min_per_user, cap), cap);
    const int group = static_cast<int>(hash64(c.seed, 0x9e0, u) % c.clusters);
    items.clear();
    seen.clear();
    while (static_cast<int64_t>(items.size()) < n) {
      int64_t it;
      if (per_cluster > 0 && rng.uniform() < c.affinity)
        it = zipf_rank(rng.uniform(), per_cluster, c.zipf) * c.clusters + group;
      else
        it = zipf_rank(rng.uniform(), c.items, c.zipf);
      if (seen.insert(static_cast<int32_t>(it)).second) items.push_back(static_cast<int32_t>(it));
    }
    // Seeded shuffle (Fisher-Yates), then the held-out rows come off the end.
    for (int64_t i = n - 1; i > 0; --i) std::swap(items[i], items[rng.below(i + 1)]);
    int64_t nt = 0, nv = 0;
    if (n >= 3) {
      nt = static_cast<int64_t>(std::floor(n * c.test));
      nv = static_cast<int64_t>(std::floor(n * c.valid));
    }
    const int64_t ntr = n - nt - nv;
    parts[0].assign(items.begin(), items.begin() + ntr);
    parts[1].assign(items.begin() + ntr, items.begin() + ntr + nv);
    parts[2].assign(items.begin() + ntr + nv, items.end());
    for (int sp = 0; sp < 3; ++sp) {
      std::sort(parts[sp].begin(), parts[sp].end());
      if (!parts[sp].empty()) w.add_user(sp, u, parts[sp]);
      st.rows[sp] += static_cast<int64_t>(parts[sp].size());
    }
  }
  w.finish();
  return st;
}

}  // namespace shardrec::io
