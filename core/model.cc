#include "core/model.h"

namespace shardrec {

MFModel::MFModel(const TrainConfig& cfg, const dist::Sharding& user_sharding, int64_t num_items,
                 int rank)
    : user("user", 0, user_sharding.rows(), cfg.dim, user_sharding, rank, cfg.seed, cfg.init, cfg.opt),
      item("item", 1, num_items, cfg.dim,
           dist::Sharding::parse(cfg.item_sharding, num_items, user_sharding.world()), rank,
           cfg.seed, cfg.init, cfg.opt) {}

}  // namespace shardrec
