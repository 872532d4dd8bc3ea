// Evaluation of a sharded MF model.
// Full ranking: users are evaluated in rounds; in each round every rank contributes a chunk of its
// users (vectors by all-gather, mask items sent to the items' owners), every rank scores its own
// item shard and keeps a local top-K (score descending, item id ascending on ties), and the user's
// owner merges the per-rank lists. Masked items are excluded, not just demoted. Per-user metric
// values are summed with exact fixed-point sums, so the result is identical for any world size.
// Pointwise: the split's positives plus one sampled negative per positive (rejecting the user's
// items of every split), scored as logits: pooled AUC, GAUC and log loss (docs/metrics.md).
#pragma once
#include <map>
#include <string>

#include "core/config.h"
#include "core/model.h"
#include "dist/comm.h"
#include "io/dataset.h"

namespace shardrec {

struct EvalResult {
  std::map<std::string, double> values;  // "recall@10", "ndcg@20", "auc", "gauc", "logloss", ...
  int64_t users = 0;                     // users with at least one item in the split
  double get(const std::string& name) const;
};

// split: 1 = valid, 2 = test. Masks the user's training items, and for the test split also the
// validation items when cfg.mask_valid_in_test.
EvalResult evaluate(const MFModel& model, const io::DataShard& data, int split,
                    const EvalConfig& cfg, dist::Comm& comm);

}  // namespace shardrec
