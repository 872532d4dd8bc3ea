// Training strategies: what happens inside one step, given the batch. A strategy only sees
// StepOps, so it works for every model and loss, and it cannot re-route ids: a second pass over
// the same batch reuses the step's routing (no second id all-to-all).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dist/exact_sum.h"

namespace shardrec {

struct TrainConfig;

class StepOps {
 public:
  virtual ~StepOps() = default;
  // Reads the batch's rows as they are now (owners send them), computes the loss and the
  // gradients of scale * loss. When record is set, the unscaled loss counts in the epoch's loss.
  virtual void forward_backward(float scale, bool record) = 0;
  // Sends the gradients to the rows' owners, which reduce them and take one optimizer step.
  virtual void apply() = 0;
};

// The Inverse Gradient meta-step's moves over one batch of labeled rows with their unlabeled draws
// (core/inverse_gradient.h). A backend (CPU or CUDA) implements them; the strategy's decision
// logic (InverseGradientStrategy) is written once over them. The moves touch only the batch's
// rows (at their owners) and the dense parameters; nothing is copied whole.
class MetaStepOps : public StepOps {
 public:
  // The labeled rows' BCE at theta ("mid"): its sum into L's slot 2, its gradient kept as the
  // main step's gradient.
  virtual void labeled_gradient(dist::ExactSums& L) = 0;
  // The dual loss's gradient on the unlabeled rows at theta and, from it, the candidate step d of
  // every touched row (reduced at the owners) and of the dense parameters; nothing moves yet.
  virtual void propose() = 0;
  // The labeled BCE at theta + d into slot 0 and at theta - d into slot 1, from the rows this rank
  // already holds (no exchange).
  virtual void candidate_losses(dist::ExactSums& L) = 0;
  // Sums L over the ranks (exactly: every rank compares the same integers).
  virtual void allreduce(dist::ExactSums& L) = 0;
  // Moves to theta + sign * d (touched rows at their owners, dense everywhere) and takes the
  // labeled BCE gradient there as the main step's; add_dual adds sign * the dual-loss gradient
  // (the reference code never clears the candidate's gradient).
  virtual void commit(int sign, bool add_dual) = 0;
  // The reference's main step: a fresh Adam step (its main Adam is re-created every
  // meta-iteration) on the main gradient, whose dense part also holds sign * the dual-loss
  // gradient when a candidate was taken (sign 0: none).
  virtual void fresh_apply(int sign) = 0;
  // Called with each step's decision (0 mid, 1 forward, 2 inverse) and the three sums.
  std::function<void(int, const dist::ExactSums&)> on_decision;
};

// StepOps made of two callables (the MF/VBPR CUDA backend builds its steps' from lambdas).
struct FunctionOps final : StepOps {
  std::function<void(float, bool)> fb;
  std::function<void()> ap;
  void forward_backward(float scale, bool record) override { fb(scale, record); }
  void apply() override { ap(); }
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // batch: the step's index within its epoch (restarts at 0 every epoch).
  virtual void step(int64_t batch, StepOps& ops) = 0;
  virtual std::string describe() const = 0;
};

// One forward/backward and one optimizer step.
class PlainStrategy final : public Strategy {
 public:
  void step(int64_t, StepOps& ops) override {
    ops.forward_backward(1.0f, true);
    ops.apply();
  }
  std::string describe() const override { return "plain"; }
};

// Mirror Gradient ("Mirror Gradient: Towards Robust Multimodal Recommender Systems via Exploring
// Flat Local Minima", WWW 2024), as its reference trainer runs it: on batches with
// batch % beta == 0, a step on alpha1 * L, then the loss recomputed at the updated parameters on
// the same batch (same users, positives and negatives), and a step on -alpha2 * L; both steps go
// through the same optimizer state (Adam's step counter advances twice). Other batches: a plain
// step. The epoch's loss records the first pass.
class MirrorStrategy final : public Strategy {
 public:
  MirrorStrategy(float alpha1, float alpha2, int beta) : a1_(alpha1), a2_(alpha2), beta_(beta) {}
  void step(int64_t batch, StepOps& ops) override {
    if (batch % beta_ != 0) {
      ops.forward_backward(1.0f, true);
      ops.apply();
      return;
    }
    ops.forward_backward(a1_, true);
    ops.apply();
    ops.forward_backward(-a2_, false);
    ops.apply();
  }
  std::string describe() const override;

 private:
  float a1_, a2_;
  int beta_;
};

// Inverse Gradient ("Inverse Learning with Extremely Sparse Feedback for Recommendation", WSDM
// 2024) on a training-test batch: candidates theta +- d along the dual loss's gradient, the one
// with the lowest labeled BCE (forward if lowest, else inverse if below mid, else mid), then one
// main step from there. `reference` takes the reference code's optimizer quirks
// (core/inverse_gradient.h); `disabled` (tests) keeps theta and takes the main step alone. Needs
// MetaStepOps (GMF, NeuMF).
class InverseGradientStrategy final : public Strategy {
 public:
  explicit InverseGradientStrategy(bool reference) : reference_(reference) {}
  void step(int64_t batch, StepOps& ops) override;
  std::string describe() const override { return reference_ ? "ig(reference)" : "ig"; }
  void set_disabled(bool v) { disabled_ = v; }

 private:
  bool reference_;
  bool disabled_ = false;
};

std::unique_ptr<Strategy> make_strategy(const TrainConfig& cfg);

}  // namespace shardrec
