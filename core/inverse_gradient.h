// Inverse Gradient ("Inverse Learning with Extremely Sparse Feedback for Recommendation", WSDM
// 2024): the meta-step's building blocks. For one training-test batch (labeled rows L, unlabeled
// rows V), from the current parameters theta:
//   g        = gradient of the dual loss (IDL) on V at theta
//   forward  = theta + d,  inverse = theta - d,  d = candidate step of g at rate sample_lr
//   the BCE of L at forward, inverse and theta ("mid"), summed over ranks (one allreduce of three
//   exact int64 sums, so every rank takes the same decision)
//   forward if it is lowest; else inverse if below mid; else mid; then one optimizer step (rate lr)
//   on the BCE of L from the chosen point.
// Candidates are not model copies: only the rows the batch touches (at their owners) and the
// dense parameters move tentatively. TentativeRows reduces g at the owners, computes each touched
// row's d and sends the d rows to the requesters with one gather; the table itself is left as it
// was. The requesters form theta + d and theta - d locally and evaluate both candidates in one
// fused pass over L (no further communication). Committing the chosen candidate moves the touched
// rows at their owners by the same float operation the requesters did, so both sides agree bitwise.
//
// Candidate step d(g), and where the reference code differs from the paper's statement:
//   paper (default):   d = -sample_lr * g (a gradient step); the main step uses the persistent
//                      optimizer (Adam), from the chosen point.
//   reference quirks (cfg.il_reference): the reference code makes each candidate with a FRESH
//                      Adam, whose first step is d = -sample_lr * g / (|g| + eps) per coordinate
//                      (a sign step); it RE-CREATES the main Adam every meta-iteration, so the main
//                      step is a fresh Adam step too (and the next epoch's training-train phase
//                      starts from fresh Adam state); and the candidate's gradient buffer is not
//                      zeroed before the main step from a candidate, so that step uses
//                      BCE-gradient + IDL-gradient (with the candidate's sign). These three are
//                      reproduced by the switch.
//   Not reproduced: the reference also never zeroes the candidate models' gradients ACROSS
//                      meta-iterations (nor the main model's during training-train), so its
//                      gradients are running sums over the epoch. Reproducing that needs a dense
//                      full-model gradient buffer per candidate and would make every row ever
//                      touched move at every step, the opposite of the touched-rows design; see
//                      docs/inverse-learning.md.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "dist/comm.h"
#include "dist/sharded_embedding.h"

namespace shardrec::ig {

struct CandidateStep {
  float lr = 0.001f;
  bool fresh_adam = false;  // the reference's fresh Adam (sign-like) instead of a gradient step
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  // d[k] for gradient g[k]: -lr * g, or a fresh Adam's first update. Odd in g (d(-g) = -d(g)),
  // so the inverse candidate (gradient -g) is theta - d.
  void delta(const float* g, float* d, int n) const;
  // w += d(g) (a stateless update: the reference's re-created Adam).
  void step(const float* g, float* w, int n) const;
};

class TentativeRows {
 public:
  // Reduces `grads` (one row per routed id) at the owners, computes d per touched row and writes
  // the d rows of the batch's ids to `d_out` (ids x dim). The table is unchanged afterwards.
  void prepare(dist::Comm& comm, dist::ShardedEmbedding& t, const dist::Routing& r,
               std::span<const uint64_t> keys, const float* grads, const CandidateStep& step,
               float* d_out);
  // Moves the touched rows to the chosen candidate: w + d (sign > 0) or w - d (sign < 0).
  void commit(dist::ShardedEmbedding& t, int sign) const;
  size_t touched() const { return rows_.size(); }

 private:
  std::vector<int64_t> rows_;
  std::vector<float> orig_, delta_;
};

// A stateless main step (the reference's re-created Adam) on the touched rows of a table.
void fresh_step(dist::Comm& comm, dist::ShardedEmbedding& t, const dist::Routing& r,
                std::span<const uint64_t> keys, const float* grads, const CandidateStep& step);

}  // namespace shardrec::ig
