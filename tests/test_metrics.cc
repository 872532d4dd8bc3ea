#include "core/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

namespace shardrec::metrics {
namespace {

constexpr double kTol = 1e-12;
// Discounts 1/log2(rank + 1) used in the hand calculations below.
const double kD2 = 1.0 / std::log2(3.0);  // 0.6309297535714575
const double kD3 = 0.5;                   // 1 / log2(4)
const double kD6 = 1.0 / std::log2(7.0);  // 0.3562071871080222

// One row of expected values, in RankMetric order.
struct Expected {
  double recall, ndcg, precision, hit, mrr, map;
};

std::vector<double> run_user(const std::vector<int64_t>& topk, const std::vector<int64_t>& relevant,
                             const std::vector<int>& ks) {
  std::vector<double> out(kNumRankMetrics * ks.size(), 0.0);
  add_user_ranking(topk, relevant, ks, out.data());
  return out;
}

void expect_at(const std::vector<double>& out, size_t j, size_t num_ks, const Expected& e) {
  SCOPED_TRACE("cutoff index " + std::to_string(j));
  EXPECT_NEAR(out[rank_slot(kRecall, j, num_ks)], e.recall, kTol);
  EXPECT_NEAR(out[rank_slot(kNDCG, j, num_ks)], e.ndcg, kTol);
  EXPECT_NEAR(out[rank_slot(kPrecision, j, num_ks)], e.precision, kTol);
  EXPECT_NEAR(out[rank_slot(kHit, j, num_ks)], e.hit, kTol);
  EXPECT_NEAR(out[rank_slot(kMRR, j, num_ks)], e.mrr, kTol);
  EXPECT_NEAR(out[rank_slot(kMAP, j, num_ks)], e.map, kTol);
}

TEST(RankMetricNames, RoundTrip) {
  const char* names[] = {"recall", "ndcg", "precision", "hit", "mrr", "map"};
  for (int m = 0; m < kNumRankMetrics; ++m) {
    EXPECT_STREQ(rank_metric_name(static_cast<RankMetric>(m)), names[m]);
    EXPECT_EQ(rank_metric_from_name(names[m]), static_cast<RankMetric>(m));
  }
  EXPECT_FALSE(rank_metric_from_name("auc").has_value());
  EXPECT_FALSE(rank_metric_from_name("NDCG").has_value());
  EXPECT_EQ(rank_slot(kMAP, 2, 4), 5u * 4u + 2u);
}

// relevant = {2, 5, 9}; topk = 5 1 2 7 3 9 -> hits at ranks 1, 3 and 6.
TEST(RankMetrics, HandExampleSeveralCutoffs) {
  const std::vector<int> ks = {1, 2, 3, 6};
  const auto out = run_user({5, 1, 2, 7, 3, 9}, {2, 5, 9}, ks);
  // K=1: 1 hit. recall 1/3, precision 1/1, MRR 1/1. DCG = 1, IDCG (min(3,1)=1 slot) = 1.
  //      MAP = P@1 / min(3,1) = 1/1.
  expect_at(out, 0, 4, {1.0 / 3, 1.0, 1.0, 1.0, 1.0, 1.0});
  // K=2: 1 hit. recall 1/3, precision 1/2. DCG = 1, IDCG = 1 + 1/log2(3).
  //      MAP = P@1 / min(3,2) = 1/2.
  expect_at(out, 1, 4, {1.0 / 3, 1.0 / (1 + kD2), 0.5, 1.0, 1.0, 0.5});
  // K=3: 2 hits. recall 2/3, precision 2/3. DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + kD2 + 0.5.
  //      MAP = (P@1 + P@3) / min(3,3) = (1 + 2/3) / 3 = 5/9.
  expect_at(out, 2, 4, {2.0 / 3, 1.5 / (1 + kD2 + kD3), 2.0 / 3, 1.0, 1.0, 5.0 / 9});
  // K=6: 3 hits. recall 3/3, precision 3/6. DCG = 1.5 + 1/log2(7); IDCG still over min(3,6)=3
  //      slots. MAP = (1 + 2/3 + 3/6) / 3 = 13/18.
  expect_at(out, 3, 4, {1.0, (1.5 + kD6) / (1 + kD2 + kD3), 0.5, 1.0, 1.0, 13.0 / 18});
}

// relevant = {4}; topk = 8 3 4 1 -> the only hit is at rank 3.
TEST(RankMetrics, FirstHitBelowTop) {
  const std::vector<int> ks = {1, 2, 3, 4};
  const auto out = run_user({8, 3, 4, 1}, {4}, ks);
  // K=1, K=2: no hit yet, every metric 0.
  expect_at(out, 0, 4, {0, 0, 0, 0, 0, 0});
  expect_at(out, 1, 4, {0, 0, 0, 0, 0, 0});
  // K=3: recall 1/1, precision 1/3, MRR 1/3, NDCG = (1/log2(4)) / 1 = 0.5,
  //      MAP = P@3 / min(1,3) = 1/3.
  expect_at(out, 2, 4, {1.0, 0.5, 1.0 / 3, 1.0, 1.0 / 3, 1.0 / 3});
  // K=4: same hits, precision 1/4.
  expect_at(out, 3, 4, {1.0, 0.5, 0.25, 1.0, 1.0 / 3, 1.0 / 3});
}

TEST(RankMetrics, NoHits) {
  const std::vector<int> ks = {1, 5, 10};
  const auto out = run_user({10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, {1, 2, 3}, ks);
  for (double v : out) EXPECT_EQ(v, 0.0);
}

// relevant = {1, 2, 3}; topk = 3 1 2 -> every position a hit.
TEST(RankMetrics, AllHits) {
  const std::vector<int> ks = {2, 3};
  const auto out = run_user({3, 1, 2}, {1, 2, 3}, ks);
  // K=2: recall 2/3, precision 2/2; DCG = IDCG = 1 + kD2; MAP = (1/1 + 2/2) / min(3,2) = 1.
  expect_at(out, 0, 2, {2.0 / 3, 1.0, 1.0, 1.0, 1.0, 1.0});
  // K=3: everything 1.
  expect_at(out, 1, 2, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0});
}

// relevant = {7, 8}; only one candidate existed, topk = 7. Positions 2..5 are misses.
TEST(RankMetrics, TopkShorterThanK) {
  const std::vector<int> ks = {5, 1};
  const auto out = run_user({7}, {7, 8}, ks);
  // K=5: recall 1/2, precision 1/5 (K, not |topk|, divides), MRR 1,
  //      NDCG = 1 / (1 + kD2) (ideal has min(2,5) = 2 slots), MAP = (1/1) / min(2,5) = 1/2.
  expect_at(out, 0, 2, {0.5, 1.0 / (1 + kD2), 0.2, 1.0, 1.0, 0.5});
  // K=1: recall 1/2, precision 1, NDCG 1/1, MAP 1/min(2,1) = 1.
  expect_at(out, 1, 2, {0.5, 1.0, 1.0, 1.0, 1.0, 1.0});

  // An empty topk (no candidates at all) scores 0 everywhere.
  const auto empty = run_user({}, {7, 8}, ks);
  for (double v : empty) EXPECT_EQ(v, 0.0);
}

// relevant = {0..9} (10 items); topk = 0 20 1 -> hits at ranks 1 and 3.
TEST(RankMetrics, RelevantLargerThanK) {
  std::vector<int64_t> relevant(10);
  for (int i = 0; i < 10; ++i) relevant[i] = i;
  const std::vector<int> ks = {2, 3};
  const auto out = run_user({0, 20, 1}, relevant, ks);
  // K=2: 1 hit. recall 1/10, precision 1/2, NDCG = 1 / (1 + kD2) (ideal fills both slots),
  //      MAP = 1 / min(10,2) = 1/2.
  expect_at(out, 0, 2, {0.1, 1.0 / (1 + kD2), 0.5, 1.0, 1.0, 0.5});
  // K=3: 2 hits. recall 2/10, precision 2/3, NDCG = 1.5 / (1 + kD2 + kD3),
  //      MAP = (1 + 2/3) / min(10,3) = 5/9.
  expect_at(out, 1, 2, {0.2, 1.5 / (1 + kD2 + kD3), 2.0 / 3, 1.0, 1.0, 5.0 / 9});
}

TEST(RankMetrics, AccumulatesAcrossUsersAndHandlesDuplicateCutoffs) {
  const std::vector<int> ks = {1, 1};
  std::vector<double> out(kNumRankMetrics * ks.size(), 0.0);
  add_user_ranking(std::vector<int64_t>{5}, std::vector<int64_t>{5}, ks, out.data());  // all 1
  add_user_ranking(std::vector<int64_t>{6}, std::vector<int64_t>{5}, ks, out.data());  // all 0
  for (double v : out) EXPECT_DOUBLE_EQ(v, 1.0);
}

TEST(RankMetrics, RejectsBadInput) {
  std::vector<double> out(kNumRankMetrics, 0.0);
  const std::vector<int64_t> topk = {1, 2};
  const std::vector<int> k1 = {1}, k0 = {0};
  EXPECT_THROW(add_user_ranking(topk, std::vector<int64_t>{}, k1, out.data()),
               std::invalid_argument);
  EXPECT_THROW(add_user_ranking(topk, std::vector<int64_t>{3, 2}, k1, out.data()),
               std::invalid_argument);
  EXPECT_THROW(add_user_ranking(topk, std::vector<int64_t>{2, 2}, k1, out.data()),
               std::invalid_argument);
  EXPECT_THROW(add_user_ranking(topk, std::vector<int64_t>{2}, k0, out.data()),
               std::invalid_argument);
}

// Each metric computed straight from its definition, one cutoff at a time.
Expected reference_ranking(const std::vector<int64_t>& topk, const std::set<int64_t>& relevant,
                           int k) {
  Expected e{0, 0, 0, 0, 0, 0};
  double hits = 0, dcg = 0, idcg = 0, ap = 0;
  const int n = std::min<int>(k, static_cast<int>(topk.size()));
  for (int i = 1; i <= n; ++i) {
    if (!relevant.count(topk[i - 1])) continue;
    hits += 1;
    dcg += 1.0 / std::log2(i + 1.0);
    ap += hits / i;
    if (e.mrr == 0) e.mrr = 1.0 / i;
  }
  const int ideal = std::min<int>(k, static_cast<int>(relevant.size()));
  for (int i = 1; i <= ideal; ++i) idcg += 1.0 / std::log2(i + 1.0);
  e.recall = hits / static_cast<double>(relevant.size());
  e.ndcg = dcg / idcg;
  e.precision = hits / k;
  e.hit = hits > 0;
  e.map = ap / ideal;
  return e;
}

TEST(RankMetrics, MatchesDirectDefinitionsOnRandomUsers) {
  std::mt19937 gen(12345);
  const std::vector<int> ks = {20, 1, 5, 10, 50};
  for (int trial = 0; trial < 300; ++trial) {
    const int num_items = 30 + static_cast<int>(gen() % 40);
    std::vector<int64_t> items(num_items);
    for (int i = 0; i < num_items; ++i) items[i] = i * 3;
    std::shuffle(items.begin(), items.end(), gen);
    // topk: a random prefix of a permutation, sometimes shorter than the largest cutoff.
    const size_t topk_len = gen() % (num_items + 1);
    std::vector<int64_t> topk(items.begin(), items.begin() + topk_len);
    std::set<int64_t> rel_set;
    const int num_rel = 1 + static_cast<int>(gen() % 25);
    while (static_cast<int>(rel_set.size()) < num_rel) rel_set.insert(3 * (gen() % num_items));
    const std::vector<int64_t> relevant(rel_set.begin(), rel_set.end());
    const auto out = run_user(topk, relevant, ks);
    for (size_t j = 0; j < ks.size(); ++j) {
      SCOPED_TRACE("trial " + std::to_string(trial) + " K=" + std::to_string(ks[j]));
      expect_at(out, j, ks.size(), reference_ranking(topk, rel_set, ks[j]));
    }
  }
}

double brute_force_auc(const std::vector<float>& s, const std::vector<uint8_t>& y) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    for (size_t j = 0; j < s.size(); ++j) {
      if (!y[i] || y[j]) continue;  // i positive, j negative
      pairs += 1;
      wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
  }
  return wins / pairs;
}

TEST(Auc, HandExamples) {
  // Positives {0.35, 0.8}, negatives {0.1, 0.4}: pairs (0.35>0.1), (0.35<0.4), (0.8>0.1),
  // (0.8>0.4) -> 3 of 4.
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f},
                       std::vector<uint8_t>{0, 0, 1, 1}),
                   0.75);
  // Positives {0.5, 0.9}, negatives {0.2, 0.5}: 1 + 1/2 (tie) + 1 + 1 = 3.5 of 4.
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{0.2f, 0.5f, 0.5f, 0.9f},
                       std::vector<uint8_t>{0, 1, 0, 1}),
                   0.875);
  // All scores tied: every pair is 1/2.
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{3, 3, 3, 3, 3}, std::vector<uint8_t>{0, 1, 0, 1, 1}),
                   0.5);
  // Perfectly inverted ranking.
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{1, 2, 3}, std::vector<uint8_t>{1, 0, 0}), 0.0);
  // -0 and +0 compare equal, so they tie; infinities order normally.
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{-0.0f, 0.0f}, std::vector<uint8_t>{1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{-INFINITY, INFINITY, -1.0f},
                       std::vector<uint8_t>{0, 1, 1}),
                   1.0);
  // Any nonzero label is a positive.
  EXPECT_DOUBLE_EQ(auc(std::vector<float>{0.1f, 0.9f}, std::vector<uint8_t>{0, 7}), 1.0);
}

TEST(Auc, MatchesBruteForceWithTies) {
  std::mt19937 gen(2024);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 2 + gen() % 300;
    // Few distinct values (some negative, some zero) so ties are common.
    const int levels = 1 + static_cast<int>(gen() % 12);
    std::vector<float> s(n);
    std::vector<uint8_t> y(n);
    for (size_t i = 0; i < n; ++i) {
      s[i] = static_cast<float>(static_cast<int>(gen() % levels) - levels / 2) * 0.25f;
      y[i] = gen() % 3 == 0;
    }
    y[0] = 1;  // both classes present
    y[1] = 0;
    SCOPED_TRACE("trial " + std::to_string(trial));
    EXPECT_NEAR(auc(s, y), brute_force_auc(s, y), 1e-12);
  }
}

TEST(Auc, NaNWhenAClassIsMissing) {
  EXPECT_TRUE(std::isnan(auc(std::vector<float>{0.1f, 0.7f}, std::vector<uint8_t>{1, 1})));
  EXPECT_TRUE(std::isnan(auc(std::vector<float>{0.1f, 0.7f}, std::vector<uint8_t>{0, 0})));
  EXPECT_TRUE(std::isnan(auc(std::vector<float>{}, std::vector<uint8_t>{})));
  // A NaN score has no rank; the result is NaN rather than an arbitrary number.
  EXPECT_TRUE(std::isnan(auc(std::vector<float>{0.1f, NAN}, std::vector<uint8_t>{0, 1})));
  EXPECT_THROW(auc(std::vector<float>{0.1f}, std::vector<uint8_t>{0, 1}), std::invalid_argument);
}

TEST(LogLoss, MatchesDirectFormula) {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> logit(-8.0f, 8.0f);
  std::vector<float> x(1000);
  std::vector<uint8_t> y(x.size());
  double direct = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = logit(gen);
    y[i] = gen() % 2;
    const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    direct += -(y[i] * std::log(p) + (1 - y[i]) * std::log(1 - p));
  }
  EXPECT_NEAR(log_loss_sum(x, y), direct, 1e-9);
  // logit 0 -> p = 1/2 -> log 2 per row whatever the label.
  EXPECT_NEAR(log_loss_sum(std::vector<float>{0, 0}, std::vector<uint8_t>{0, 1}),
              2 * std::log(2.0), kTol);
  EXPECT_EQ(log_loss_sum(std::vector<float>{}, std::vector<uint8_t>{}), 0.0);
  EXPECT_THROW(log_loss_sum(std::vector<float>{0}, std::vector<uint8_t>{}), std::invalid_argument);
}

TEST(LogLoss, StableForLargeLogits) {
  // Wrong and confident: -log(1 - sigmoid(100)) = 100 + log1p(e^-100), i.e. 100 to double
  // precision; the naive formula gives log(0) = inf.
  EXPECT_NEAR(log_loss_sum(std::vector<float>{100}, std::vector<uint8_t>{0}), 100.0, kTol);
  EXPECT_NEAR(log_loss_sum(std::vector<float>{-100}, std::vector<uint8_t>{1}), 100.0, kTol);
  EXPECT_NEAR(log_loss_sum(std::vector<float>{1000}, std::vector<uint8_t>{0}), 1000.0, 1e-9);
  // Right and confident: -log(sigmoid(40)) = log1p(e^-40) ~ e^-40, not rounded to 0 by 1 - p.
  const double tiny = log_loss_sum(std::vector<float>{40}, std::vector<uint8_t>{1});
  EXPECT_NEAR(tiny / std::exp(-40.0), 1.0, 1e-12);
  const double tiny_neg = log_loss_sum(std::vector<float>{-40}, std::vector<uint8_t>{0});
  EXPECT_NEAR(tiny_neg / std::exp(-40.0), 1.0, 1e-12);
  // The float extreme stays finite.
  const float big = 3.0e38f;
  EXPECT_NEAR(log_loss_sum(std::vector<float>{big}, std::vector<uint8_t>{0}), double{big},
              double{big} * 1e-15);
  EXPECT_TRUE(std::isfinite(log_loss_sum(std::vector<float>{-big}, std::vector<uint8_t>{1})));
}

// User A: scores {0.1, 0.4, 0.35, 0.8}, labels {0, 0, 1, 1} -> AUC 3/4, 4 rows.
// User B: scores {0.9, 0.2}, labels {1, 0} -> AUC 1, 2 rows.
// User C: only positives; user D: only negatives -> both skipped.
void add_hand_users(GaucAccum& acc, GaucWeight w) {
  acc.add_user(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, std::vector<uint8_t>{0, 0, 1, 1}, w);
  acc.add_user(std::vector<float>{0.9f, 0.2f}, std::vector<uint8_t>{1, 0}, w);
  acc.add_user(std::vector<float>{0.3f, 0.6f, 0.1f}, std::vector<uint8_t>{1, 1, 1}, w);
  acc.add_user(std::vector<float>{0.3f}, std::vector<uint8_t>{0}, w);
}

TEST(Gauc, UnweightedHandExample) {
  GaucAccum acc;
  add_hand_users(acc, GaucWeight::kUnweighted);
  // (3/4 + 1) / 2 = 0.875; C and D do not count.
  EXPECT_EQ(acc.users, 2);
  EXPECT_DOUBLE_EQ(acc.weight, 2.0);
  EXPECT_DOUBLE_EQ(acc.value(), 0.875);
}

TEST(Gauc, ImpressionWeightedHandExample) {
  GaucAccum acc;
  add_hand_users(acc, GaucWeight::kImpressions);
  // (4 * 3/4 + 2 * 1) / (4 + 2) = 5/6; skipped users add no weight.
  EXPECT_EQ(acc.users, 2);
  EXPECT_DOUBLE_EQ(acc.weight, 6.0);
  EXPECT_DOUBLE_EQ(acc.value(), 5.0 / 6);
}

TEST(Gauc, SkipsSingleClassUsersAndIsNaNWhenEmpty) {
  GaucAccum acc;
  EXPECT_TRUE(std::isnan(acc.value()));
  acc.add_user(std::vector<float>{0.3f, 0.6f}, std::vector<uint8_t>{1, 1},
               GaucWeight::kUnweighted);
  acc.add_user(std::vector<float>{0.3f, 0.6f}, std::vector<uint8_t>{0, 0},
               GaucWeight::kImpressions);
  acc.add_user(std::vector<float>{}, std::vector<uint8_t>{}, GaucWeight::kUnweighted);
  EXPECT_EQ(acc.users, 0);
  EXPECT_EQ(acc.weight, 0.0);
  EXPECT_TRUE(std::isnan(acc.value()));
}

TEST(Gauc, MergeEqualsSingleAccumulator) {
  GaucAccum whole, part1, part2;
  add_hand_users(whole, GaucWeight::kImpressions);
  part1.add_user(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, std::vector<uint8_t>{0, 0, 1, 1},
                 GaucWeight::kImpressions);
  part2.add_user(std::vector<float>{0.9f, 0.2f}, std::vector<uint8_t>{1, 0},
                 GaucWeight::kImpressions);
  part1.merge(part2);
  EXPECT_EQ(part1.users, whole.users);
  EXPECT_DOUBLE_EQ(part1.value(), whole.value());
}

}  // namespace
}  // namespace shardrec::metrics
