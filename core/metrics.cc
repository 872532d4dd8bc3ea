#include "core/metrics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace shardrec::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_same_length(size_t a, size_t b, const char* what) {
  if (a != b) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(a) + " values but " +
                                std::to_string(b) + " labels");
  }
}

// A uint32 whose unsigned order is x's numeric order (x not NaN). Both zeros map to +0's bits so
// that -0.0f and 0.0f tie, as they compare equal.
uint32_t ordered_bits(float x) {
  if (x == 0.0f) x = 0.0f;
  const uint32_t u = std::bit_cast<uint32_t>(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// log(1 + exp(z)) without overflow for large z or cancellation for very negative z.
double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z))); }

}  // namespace

const char* rank_metric_name(RankMetric m) {
  switch (m) {
    case kRecall: return "recall";
    case kNDCG: return "ndcg";
    case kPrecision: return "precision";
    case kHit: return "hit";
    case kMRR: return "mrr";
    case kMAP: return "map";
    default: return "unknown";
  }
}

std::optional<RankMetric> rank_metric_from_name(std::string_view name) {
  for (int m = 0; m < kNumRankMetrics; ++m) {
    if (name == rank_metric_name(static_cast<RankMetric>(m))) return static_cast<RankMetric>(m);
  }
  return std::nullopt;
}

void add_user_ranking(std::span<const int64_t> topk, std::span<const int64_t> relevant,
                      std::span<const int> ks, double* out) {
  // Checked every call: an unsorted list would silently break the binary search below, and an
  // empty one would divide by zero.
  if (relevant.empty()) throw std::invalid_argument("add_user_ranking: relevant is empty");
  for (size_t i = 1; i < relevant.size(); ++i) {
    if (relevant[i - 1] >= relevant[i]) {
      throw std::invalid_argument("add_user_ranking: relevant is not sorted ascending and unique");
    }
  }
  int max_k = 0;
  for (int k : ks) {
    if (k < 1) {
      throw std::invalid_argument("add_user_ranking: cutoff " + std::to_string(k) + " < 1");
    }
    max_k = std::max(max_k, k);
  }

  const size_t num_ks = ks.size();
  const double num_rel = static_cast<double>(relevant.size());
  // Running values after position i (1-based). One pass serves every cutoff: the value at K is the
  // state after position K, since positions past topk.size() are misses.
  double hits = 0, dcg = 0, idcg = 0, ap_sum = 0, reciprocal_rank = 0;
  for (int i = 1; i <= max_k; ++i) {
    const double discount = 1.0 / std::log2(i + 1.0);
    if (i <= num_rel) idcg += discount;  // the ideal list has min(|relevant|, K) hits on top
    const size_t pos = static_cast<size_t>(i) - 1;
    if (pos < topk.size() && std::binary_search(relevant.begin(), relevant.end(), topk[pos])) {
      hits += 1;
      dcg += discount;
      ap_sum += hits / i;  // precision@i at a hit position
      if (reciprocal_rank == 0) reciprocal_rank = 1.0 / i;
    }
    for (size_t j = 0; j < num_ks; ++j) {
      if (ks[j] != i) continue;
      out[rank_slot(kRecall, j, num_ks)] += hits / num_rel;
      out[rank_slot(kNDCG, j, num_ks)] += dcg / idcg;
      out[rank_slot(kPrecision, j, num_ks)] += hits / i;
      out[rank_slot(kHit, j, num_ks)] += hits > 0 ? 1.0 : 0.0;
      out[rank_slot(kMRR, j, num_ks)] += reciprocal_rank;
      out[rank_slot(kMAP, j, num_ks)] += ap_sum / std::min(num_rel, static_cast<double>(i));
    }
  }
}

double auc(std::span<const float> scores, std::span<const uint8_t> labels) {
  check_same_length(scores.size(), labels.size(), "auc");
  const size_t n = scores.size();
  // Key = (score order bits, label): one sort of plain integers groups equal scores together.
  std::vector<uint64_t> keys(n);
  uint64_t num_pos = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(scores[i])) return kNaN;
    const uint64_t y = labels[i] != 0 ? 1 : 0;
    num_pos += y;
    keys[i] = (uint64_t{ordered_bits(scores[i])} << 1) | y;
  }
  const uint64_t num_neg = n - num_pos;
  if (num_pos == 0 || num_neg == 0) return kNaN;
  std::sort(keys.begin(), keys.end());

  // Walking scores upward, each positive beats every negative in lower groups and ties the
  // negatives in its own group (worth 1/2). Counting doubled wins keeps the tally an exact integer.
  unsigned __int128 twice_wins = 0;
  uint64_t neg_below = 0;
  for (size_t i = 0; i < n;) {
    const uint64_t score = keys[i] >> 1;
    uint64_t pos = 0, neg = 0;
    for (; i < n && (keys[i] >> 1) == score; ++i) ++((keys[i] & 1) ? pos : neg);
    twice_wins += static_cast<unsigned __int128>(pos) * (2 * neg_below + neg);
    neg_below += neg;
  }
  return static_cast<double>(twice_wins) /
         (2.0 * static_cast<double>(num_pos) * static_cast<double>(num_neg));
}

double log_loss_sum(std::span<const float> logits, std::span<const uint8_t> labels) {
  check_same_length(logits.size(), labels.size(), "log_loss_sum");
  // -log(sigmoid(x)) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x).
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double x = logits[i];
    sum += softplus(labels[i] != 0 ? -x : x);
  }
  return sum;
}

void GaucAccum::add_user(std::span<const float> scores, std::span<const uint8_t> labels,
                         GaucWeight w) {
  check_same_length(scores.size(), labels.size(), "GaucAccum::add_user");
  const size_t num_pos = static_cast<size_t>(
      std::count_if(labels.begin(), labels.end(), [](uint8_t y) { return y != 0; }));
  // Decided from labels alone, so a user with both classes but a NaN score still contributes (NaN)
  // rather than being silently dropped.
  if (num_pos == 0 || num_pos == labels.size()) return;
  const double user_weight =
      w == GaucWeight::kImpressions ? static_cast<double>(labels.size()) : 1.0;
  weighted_sum += user_weight * auc(scores, labels);
  weight += user_weight;
  ++users;
}

void GaucAccum::merge(const GaucAccum& other) {
  weighted_sum += other.weighted_sum;
  weight += other.weight;
  users += other.users;
}

double GaucAccum::value() const { return weight > 0 ? weighted_sum / weight : kNaN; }

}  // namespace shardrec::metrics
