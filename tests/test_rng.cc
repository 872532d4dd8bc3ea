#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "base/rng.h"
#include "base/sampling.h"
#include "core/sampler.h"

namespace shardrec {

TEST(Rng, HashIsAPureFunctionOfItsKeys) {
  EXPECT_EQ(hash64(1, 2, 3, 4, 5), hash64(1, 2, 3, 4, 5));
  EXPECT_NE(hash64(1, 2, 3, 4, 5), hash64(1, 2, 3, 4, 6));
  EXPECT_NE(hash64(1, 2, 3), hash64(2, 2, 3));
  CounterRng a(7, 1, 2), b(7, 1, 2);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(), b.next());
}

TEST(Rng, UniformAndNormalMoments) {
  CounterRng r(11, 0);
  const int n = 200000;
  double s = 0, s2 = 0, ns = 0, ns2 = 0;
  uint64_t below_counts[10] = {};
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    s += u;
    s2 += u * u;
    const double z = r.normal();
    ns += z;
    ns2 += z * z;
    ++below_counts[r.below(10)];
  }
  EXPECT_NEAR(s / n, 0.5, 0.005);
  EXPECT_NEAR(s2 / n - 0.25, 1.0 / 12, 0.005);
  EXPECT_NEAR(ns / n, 0.0, 0.01);
  EXPECT_NEAR(ns2 / n, 1.0, 0.02);
  for (auto c : below_counts) EXPECT_NEAR(static_cast<double>(c) / n, 0.1, 0.005);
}

class PermutationTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(PermutationTest, IsABijectionOnItsDomain) {
  const uint64_t n = GetParam();
  Permutation p(n, 99);
  std::vector<char> hit(n, 0);
  for (uint64_t x = 0; x < n; ++x) {
    const uint64_t y = p(x);
    ASSERT_LT(y, n);
    ASSERT_FALSE(hit[y]) << "collision at " << x;
    hit[y] = 1;
  }
}
INSTANTIATE_TEST_SUITE_P(Sizes, PermutationTest, ::testing::Values(1, 2, 3, 7, 64, 1000, 4097, 100003));

TEST(Permutation, SeedsGiveDifferentOrdersAndMixWell) {
  const uint64_t n = 10000;
  Permutation a(n, 1), b(n, 2);
  int same = 0, fixed = 0;
  for (uint64_t x = 0; x < n; ++x) {
    same += a(x) == b(x);
    fixed += a(x) == x;
  }
  EXPECT_LT(same, 20);
  EXPECT_LT(fixed, 20);
  // Neighbours in the input land far apart: the first 100 inputs spread over the range.
  std::set<uint64_t> decile;
  for (uint64_t x = 0; x < 100; ++x) decile.insert(a(x) * 10 / n);
  EXPECT_EQ(decile.size(), 10u);
}

// The dense-user fallback: the x-th id the user has not seen, against an enumeration of them
// (seen lists with duplicates, at the ends, and empty).
TEST(Sampling, NthUnseenIsTheXthMissingId) {
  const std::vector<std::vector<int32_t>> cases = {{}, {0}, {9}, {0, 1, 2}, {3, 3, 5, 8, 8, 8, 9}, {1, 2, 4, 7}};
  const int64_t n_items = 10;
  for (const auto& seen : cases) {
    std::vector<int64_t> missing;
    for (int64_t j = 0; j < n_items; ++j)
      if (!std::binary_search(seen.begin(), seen.end(), static_cast<int32_t>(j))) missing.push_back(j);
    for (uint64_t draw : {uint64_t{0}, uint64_t{1} << 60, ~uint64_t{0}, uint64_t{0x9e3779b97f4a7c15}}) {
      bool failed = false;
      const int64_t got = sampling::nth_unseen(draw, seen.data(), static_cast<int64_t>(seen.size()), n_items, &failed);
      ASSERT_FALSE(failed);
      EXPECT_EQ(got, missing[to_range(draw, missing.size())]) << "draw " << draw << ", " << seen.size() << " seen";
      EXPECT_FALSE(std::binary_search(seen.begin(), seen.end(), static_cast<int32_t>(got)));
    }
  }
  std::vector<int32_t> all(n_items);
  for (int32_t j = 0; j < n_items; ++j) all[j] = j;
  bool failed = false;
  sampling::nth_unseen(7, all.data(), n_items, n_items, &failed);
  EXPECT_TRUE(failed);
}

// Rejection draws never return a seen item, and a user who saw all but one item gets that one.
TEST(Sampling, DrawsRejectTheUsersItems) {
  std::vector<int32_t> seen;
  for (int32_t j = 0; j < 50; ++j)
    if (j != 17) seen.push_back(j);
  const uint64_t base = sampling::negative_base(42, 3);
  for (int64_t row = 0; row < 20; ++row)
    for (int k = 0; k < 3; ++k) {
      bool failed = false;
      EXPECT_EQ(sampling::negative(base, row, k, seen.data(), 49, 50, &failed), 17);
      EXPECT_EQ(sampling::unlabeled(42, 3, row, k, seen.data(), 49, 50, &failed), 17);
      EXPECT_FALSE(failed);
    }
}

TEST(Sampling, ContainsIsBinarySearch) {
  CounterRng r(9, 1);
  for (int64_t cnt = 0; cnt <= 70; ++cnt) {
    std::vector<int32_t> seen(cnt);
    for (auto& x : seen) x = static_cast<int32_t>(r.below(60));  // duplicates included
    std::sort(seen.begin(), seen.end());
    for (int64_t j = -1; j <= 61; ++j)
      EXPECT_EQ(sampling::contains(seen.data(), cnt, j), std::binary_search(seen.begin(), seen.end(), j))
          << cnt << " " << j;
  }
}

// The batched draws are the one-at-a-time draws, for light users and for users who saw most of
// the items (whose first candidate is often rejected, and the sampler's own loop takes over).
TEST(Sampling, BatchedNegativesAreTheSamplersDraws) {
  const int64_t n_items = 40;
  const Sampler sampler(7, n_items, "test");
  CounterRng r(11, 2);
  std::vector<std::vector<int32_t>> users(37);
  for (size_t u = 0; u < users.size(); ++u) {
    const double p = u % 3 == 0 ? 0.95 : 0.1;
    for (int32_t j = 0; j < n_items; ++j)
      if (r.uniform() < p) users[u].push_back(j);
    if (static_cast<int64_t>(users[u].size()) == n_items) users[u].pop_back();  // something to draw
  }
  std::vector<int64_t> row(users.size()), cnt(users.size());
  std::vector<const int32_t*> seen(users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    row[i] = 1000 + 7 * static_cast<int64_t>(i);
    seen[i] = users[i].data();
    cnt[i] = static_cast<int64_t>(users[i].size());
  }
  const int per = 3;
  std::vector<int64_t> out(users.size() * per, -1);
  int rejected_first = 0;
  for (int epoch : {1, 2})
    for (int k = 0; k < per; ++k) {
      sampler.negatives(epoch, k, users.size(), row.data(), seen.data(), cnt.data(), out.data() + k, per);
      for (size_t i = 0; i < users.size(); ++i) {
        EXPECT_EQ(out[i * per + k], sampler.negative(epoch, row[i], k, users[i])) << i;
        EXPECT_FALSE(std::binary_search(users[i].begin(), users[i].end(), static_cast<int32_t>(out[i * per + k])));
        const int64_t first = sampling::negative_first(sampling::negative_base(7, epoch), row[i], k, n_items);
        rejected_first += std::binary_search(users[i].begin(), users[i].end(), static_cast<int32_t>(first));
      }
    }
  EXPECT_GT(rejected_first, 10);  // the fallback path ran
}

}  // namespace shardrec
