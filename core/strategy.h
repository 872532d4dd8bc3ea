// Training strategies: what happens inside one step, given the batch. A strategy only sees
// StepOps, so it works for every model and loss, and it cannot re-route ids: a second pass over
// the same batch reuses the step's routing (no second id all-to-all).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

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

// StepOps made of two callables: the trainers' steps (CPU and GPU) build theirs from lambdas.
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

std::unique_ptr<Strategy> make_strategy(const TrainConfig& cfg);

}  // namespace shardrec
