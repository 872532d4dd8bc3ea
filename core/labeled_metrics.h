// Metrics of the Inverse Learning protocol: predictions for the rated items of a split only (no
// full ranking). Rows are (user, item, label, logit).
//   auc     pooled over all rows (metrics::auc, ties count 1/2)
//   gauc    mean of per-user AUC over users whose rows hold both classes; unweighted (the paper's)
//           or weighted by the user's row count
//   ndcg@K  per user, the user's rated items ranked by logit (ties: lower item id first), gain
//           2^label - 1, discount log2(i + 2), divided by the ideal DCG; mean over users
//   mrr     per user, 1 / rank of the best-ranked positive item; mean over users
//   logloss mean BCE of all rows
// Per-user metrics (gauc, ndcg, mrr) average over the users whose rows hold both classes, as the
// reference's test dictionary keeps only those. The reference computes MRR from the labels, not
// the predictions (a constant); see docs/metrics.md.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/metrics.h"

namespace shardrec::metrics {

struct LabeledRows {
  std::vector<int64_t> user, item;  // grouped by user (rows of a user contiguous)
  std::vector<uint8_t> label;
  std::vector<float> logit;
};

std::map<std::string, double> labeled_metrics(const LabeledRows& rows, std::span<const int> ks,
                                               GaucWeight weight = GaucWeight::kUnweighted);

}  // namespace shardrec::metrics
