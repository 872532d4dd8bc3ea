#include "core/strategy.h"

#include "core/config.h"
#include "base/error.h"

namespace shardrec {

std::string MirrorStrategy::describe() const {
  return "mirror(alpha1=" + std::to_string(a1_) + ", alpha2=" + std::to_string(a2_) +
         ", beta=" + std::to_string(beta_) + ")";
}

std::unique_ptr<Strategy> make_strategy(const TrainConfig& cfg) {
  if (cfg.strategy == "plain") return std::make_unique<PlainStrategy>();
  if (cfg.strategy == "mirror")
    return std::make_unique<MirrorStrategy>(cfg.mg_alpha1, cfg.mg_alpha2, cfg.mg_beta);
  fail("option --strategy: '" + cfg.strategy + "': expected plain or mirror");
}

}  // namespace shardrec
