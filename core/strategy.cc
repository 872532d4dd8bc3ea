#include "core/strategy.h"

#include "core/config.h"
#include "base/error.h"

namespace shardrec {

std::string MirrorStrategy::describe() const {
  return "mirror(alpha1=" + std::to_string(a1_) + ", alpha2=" + std::to_string(a2_) +
         ", beta=" + std::to_string(beta_) + ")";
}

void InverseGradientStrategy::step(int64_t, StepOps& base) {
  auto* ops = dynamic_cast<MetaStepOps*>(&base);
  if (!ops) fail("strategy ig: this model has no Inverse Gradient moves (it is for gmf and neumf)");
  dist::ExactSums L(3, 32);  // forward, inverse, mid: labeled BCE sums
  ops->labeled_gradient(L);
  int decision = 0;  // 0 mid, 1 forward, 2 inverse
  if (!disabled_) {
    ops->propose();
    ops->candidate_losses(L);
    ops->allreduce(L);
    const int64_t lf = L.raw(0), li = L.raw(1), lm = L.raw(2);
    decision = (lf < li && lf < lm) ? 1 : (li < lm ? 2 : 0);
  } else {
    ops->allreduce(L);
  }
  if (ops->on_decision) ops->on_decision(decision, L);
  const int sign = decision == 0 ? 0 : (decision == 1 ? 1 : -1);
  if (sign != 0) ops->commit(sign, reference_);
  if (reference_)
    ops->fresh_apply(sign);
  else
    ops->apply();
}

std::unique_ptr<Strategy> make_strategy(const TrainConfig& cfg) {
  if (cfg.strategy == "plain") return std::make_unique<PlainStrategy>();
  if (cfg.strategy == "mirror")
    return std::make_unique<MirrorStrategy>(cfg.mg_alpha1, cfg.mg_alpha2, cfg.mg_beta);
  if (cfg.strategy == "ig") return std::make_unique<InverseGradientStrategy>(cfg.il_reference);
  fail("option --strategy: '" + cfg.strategy + "': expected plain, mirror or ig");
}

}  // namespace shardrec
