#include "core/model.h"

#include <cmath>

#include "core/config.h"
#include "core/model_kind.h"

namespace shardrec {

void Model::reset_optimizers() {
  user.reset_optimizer();
  item.reset_optimizer();
}

double label_threshold(const TrainConfig& cfg, const io::DatasetInfo& info) {
  return std::isfinite(info.label_threshold) ? info.label_threshold : cfg.label_threshold;
}

std::unique_ptr<Model> make_model(const TrainConfig& cfg, const io::DataShard& data, int rank) {
  return model_kind(cfg.model).make(cfg, data, rank);
}

}  // namespace shardrec
