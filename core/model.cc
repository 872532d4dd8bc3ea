#include "core/model.h"

#include <cmath>

#include "core/config.h"
#include "core/model_kind.h"

namespace shardrec {

void Model::reset_optimizers() {
  user.reset_optimizer();
  item.reset_optimizer();
}

void Model::apply_rows(dist::Comm& comm, const dist::Routing& ur, std::span<const uint64_t> ukey, const float* gU,
                       const dist::Routing& ir, std::span<const uint64_t> ikey, const float* gI) {
  user.apply(comm, ur, ukey, gU);
  item.apply(comm, ir, ikey, gI);
}

void Model::set_threads(ThreadPool* pool) {
  user.set_pool(pool);
  item.set_pool(pool);
  if (dist::ShardedEmbedding* f = item_features()) f->set_pool(pool);
}

double label_threshold(const TrainConfig& cfg, const io::DatasetInfo& info) {
  return std::isfinite(info.label_threshold) ? info.label_threshold : cfg.label_threshold;
}

std::unique_ptr<Model> make_model(const TrainConfig& cfg, const io::DataShard& data, int rank) {
  return model_kind(cfg.model).make(cfg, data, rank);
}

}  // namespace shardrec
