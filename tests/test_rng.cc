#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "base/rng.h"
#include "base/sampling.h"

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

}  // namespace shardrec
