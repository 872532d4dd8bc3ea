// XSimGCL (Yu et al., TKDE 2023; SELFRec's XSimGCL): LightGCN's propagation with noise added to
// every layer's rows in training, and a cross-layer InfoNCE term between the final rows and the
// rows of one layer l* of the same noisy propagation, over the step's distinct users and distinct
// positive items. The model is LightGcnModel with these two pieces (core/lightgcn_model.h); here
// is what makes them world-size invariant:
// - the noise of a row is a pure function of (seed, epoch, step, pass, layer, table, global id),
//   drawn from the counter RNG at the row's owner;
// - the InfoNCE runs over the global batch: the anchors are the union of every rank's ids in
//   ascending id order, every rank gathers their normalised rows, each owner computes its
//   anchors' rows of the similarity matrix (log-sum-exp in id order) and, after one exchange of
//   those, its anchors' columns, each element recomputed with the same float operations.
// So a row's gradient is the same sequence of operations on the same values for any world size
// or thread count.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "base/thread_pool.h"
#include "dist/comm.h"
#include "dist/exact_sum.h"
#include "dist/sharding.h"

namespace shardrec {

// Which training propagation a noise draw belongs to (a step's passes: Mirror Gradient has two).
struct NoiseKey {
  uint64_t seed = 0;
  int epoch = 0;
  int64_t step = 0;
  int pass = 0;
};

// rows (this rank's local rows of `table`, dim wide) += eps * sign(rows) * normalize(u), u uniform
// in [0, 1)^dim per row, as SELFRec adds it after each layer.
void add_layer_noise(const NoiseKey& key, int layer, int table, const dist::Sharding& sharding, int rank, float eps,
                     float* rows, int64_t n, int dim, ThreadPool* pool);

// One table's part of the contrast on this rank.
struct ContrastSide {
  const dist::Sharding* sharding = nullptr;
  std::vector<int64_t> ids;        // global ids this rank's samples bring (any owner, duplicates allowed)
  const float* v1 = nullptr;       // this rank's local rows: the final rows (view 1) ...
  const float* v2 = nullptr;       // ... and layer l*'s rows (view 2), dim wide
  float* g1 = nullptr;             // += d(coef * InfoNCE)/d(view 1) on the local rows
  float* g2 = nullptr;             // += the same for view 2
  int64_t anchors = 0;             // out: the distinct ids over all ranks
};

// coef * (InfoNCE(users) + InfoNCE(items)), each the mean over its anchors a of
// logsumexp_b(s_ab) - s_aa with s_ab = cos(view1_a, view2_b) / tau (SELFRec's InfoNCE with
// cosine similarity). Collective. Each anchor's term, times loss_weight (unscaled by coef's scale:
// lambda * loss_weight / anchors), is added to loss[slot] at its owner when loss is given.
// keep_floats: the most floats of this rank's rows of the softmax kept for the columns' pass
// (beyond it they are recomputed, to the same bits).
void cross_layer_info_nce(dist::Comm& comm, ContrastSide& users, ContrastSide& items, int dim, float tau, float coef,
                          double loss_coef, dist::ExactSums* loss, int slot, ThreadPool* pool,
                          size_t keep_floats = size_t{1} << 24);

}  // namespace shardrec
