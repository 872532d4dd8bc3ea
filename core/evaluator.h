// Evaluation of a sharded MF model.
// Full ranking: users are evaluated in rounds; in each round every rank contributes a chunk of its
// users (vectors by all-gather, mask items sent to the items' owners), every rank scores its own
// item shard and keeps a local top-K (score descending, item id ascending on ties), and the user's
// owner merges the per-rank lists. Masked items are excluded, not just demoted. Per-user metric
// values are summed with exact fixed-point sums, so the result is identical for any world size.
// Pointwise: the split's positives plus one sampled negative per positive (rejecting the user's
// items of every split), scored as logits: pooled AUC, GAUC and log loss (docs/metrics.md).
#pragma once
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "core/config.h"
#include "dist/comm.h"
#include "dist/sharding.h"
#include "io/dataset.h"

namespace shardrec {

class MFModel;

struct EvalResult {
  std::map<std::string, double> values;  // "recall@10", "ndcg@20", "auc", "gauc", "logloss", ...
  int64_t users = 0;                     // users with at least one item in the split
  double get(const std::string& name) const;
};

// The top K items of `users` (this rank's, owned here) by full ranking, without each user's
// training items (and validation items with mask_valid): scored where the item rows live and
// merged at the users' owners with the total order (score desc, item id asc), so the lists are
// the same for any number of ranks. Collective: every rank calls it (with its own users); sink
// gets each of this rank's users with its items and scores, best first (fewer than K when fewer
// items are left). Users go in rounds bounded by cfg.score_budget; cfg.device picks the scorer.
// An item and its score in a ranked list; ranks_before is the lists' total order (higher score,
// then smaller item id), the same on every rank and for every scorer.
struct ScoredItem {
  float score;
  int64_t item;
};
inline bool ranks_before(const ScoredItem& a, const ScoredItem& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

using TopKSink = std::function<void(int64_t user, std::span<const int64_t> items, std::span<const float> scores)>;

// What top_k ranks with, on each rank: the vectors of this rank's users and items (local order of
// the shardings), and either their dot product plus a constant, or a model's own scorer.
struct RankInput {
  const dist::Sharding* users = nullptr;
  const float* user_rows = nullptr;  // this rank's users, user_dim floats each
  int user_dim = 0;
  const dist::Sharding* items = nullptr;
  const float* item_rows = nullptr;  // this rank's items, item_dim floats each
  int item_dim = 0;
  float offset = 0;  // added to every dot product before ranking (0: none)
  // Null: score = user . item + offset (kernels::dot; the GPU kernel with cfg.device cuda when
  // offset is 0). Else the scores of n gathered user rows U against L consecutive item rows I,
  // out[u * L + l] (exact scoring by a model's forward pass, on the CPU).
  std::function<void(const float* const* U, size_t n, const float* I, size_t L, float* out)> score;
  // Threads for the dot products (by item tiles, or by users when the tiles are few) and each
  // user's selection; every score and list is computed as on one thread. A `score` function runs
  // on the caller alone (a model's scorer need not be thread-safe).
  ThreadPool* pool = nullptr;
};
void top_k(const RankInput& in, const io::DataShard& data, const std::vector<int64_t>& users, int K,
           bool mask_valid, const EvalConfig& cfg, dist::Comm& comm, const TopKSink& sink);
// The same for an MF/VBPR model: its user rows and its items' scoring vectors q.
void top_k(const MFModel& model, const io::DataShard& data, const std::vector<int64_t>& users, int K,
           bool mask_valid, const EvalConfig& cfg, dist::Comm& comm, const TopKSink& sink);

// split: 1 = valid, 2 = test. Masks the user's training items, and for the test split also the
// validation items when cfg.mask_valid_in_test.
EvalResult evaluate(const MFModel& model, const io::DataShard& data, int split,
                    const EvalConfig& cfg, dist::Comm& comm);

}  // namespace shardrec
