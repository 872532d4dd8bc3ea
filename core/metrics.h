// Evaluation metrics. Ranking metrics follow RecBole's definitions (the ones published figures
// use); docs/metrics.md gives every formula, the conventions and the tie handling.
//
// Everything here is a pure function of its arguments or a plain accumulator, so ranks can compute
// partial sums independently and the evaluator adds them up (sums, not means, cross the wire).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace shardrec::metrics {

enum RankMetric : int { kRecall = 0, kNDCG, kPrecision, kHit, kMRR, kMAP, kNumRankMetrics };

// "recall", "ndcg", "precision", "hit", "mrr", "map"; "unknown" for anything else.
const char* rank_metric_name(RankMetric m);
// Inverse of rank_metric_name (exact, lower-case match); nullopt for an unknown name.
std::optional<RankMetric> rank_metric_from_name(std::string_view name);

// Slot of metric m at cutoff index j in the add_user_ranking output layout.
constexpr size_t rank_slot(RankMetric m, size_t j, size_t num_ks) {
  return static_cast<size_t>(m) * num_ks + j;
}

// Adds one user's values into out[m * ks.size() + j] for metric m at cutoff ks[j]
// (kNumRankMetrics * ks.size() slots). Divide by the number of users for the mean.
// topk: the user's ranked item ids, best first, distinct (length >= max(ks) unless fewer candidates
//   exist; missing positions count as misses).
// relevant: the user's held-out item ids, sorted ascending, unique, non-empty.
// ks: cutoffs, each >= 1, any order.
// Throws std::invalid_argument when relevant is empty or unsorted or a cutoff is < 1.
void add_user_ranking(std::span<const int64_t> topk, std::span<const int64_t> relevant,
                      std::span<const int> ks, double* out);

// Pooled AUC of scores against labels (nonzero = positive): the Mann-Whitney statistic, with tied
// scores counting 1/2. O(n log n). Returns NaN if one class is absent or any score is NaN.
// Throws std::invalid_argument if the spans differ in length.
double auc(std::span<const float> scores, std::span<const uint8_t> labels);

// Sum (not mean) of binary cross-entropy of sigmoid(logit) vs label (nonzero = positive), computed
// from logits as softplus(label ? -logit : logit), which neither overflows nor loses precision for
// large |logit|. Throws std::invalid_argument if the spans differ in length.
double log_loss_sum(std::span<const float> logits, std::span<const uint8_t> labels);

enum class GaucWeight { kUnweighted, kImpressions };

// Accumulator for GAUC: the weighted mean of per-user AUC over users that have both classes.
// Plain fields so ranks can sum them (merge) before calling value().
struct GaucAccum {
  double weighted_sum = 0, weight = 0;
  int64_t users = 0;  // users that contributed (had both classes)

  // Adds one user's AUC with weight 1 (kUnweighted) or the user's row count (kImpressions);
  // a user with only positives or only negatives is skipped.
  void add_user(std::span<const float> scores, std::span<const uint8_t> labels, GaucWeight w);
  void merge(const GaucAccum& other);
  // NaN when no user contributed.
  double value() const;
};

}  // namespace shardrec::metrics
