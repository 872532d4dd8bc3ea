// Matrix factorisation: score(u, i) = <p_u, q_i>. The user table follows the data partition
// (range), so a rank's samples look their users up locally; the item table is sharded by the
// configured rule (mod by default). GMF/NeuMF/VBPR join this file's family in later issues.
#pragma once
#include <cstdint>

#include "core/config.h"
#include "dist/sharded_embedding.h"
#include "kernels/embedding_ops.h"

namespace shardrec {

class MFModel {
 public:
  MFModel(const TrainConfig& cfg, const dist::Sharding& user_sharding, int64_t num_items, int rank);
  static float score(const float* u, const float* i, int dim) { return kernels::dot(u, i, dim); }
  dist::ShardedEmbedding user, item;
  int dim() const { return user.dim(); }
};

}  // namespace shardrec
