// The models' CUDA step engines (core/step_engine.h) over their GPU backends
// (core/gpu_backend.h, core/gpu_pointwise.h). Builds without CUDA link the backends' stubs, whose
// create() fails with the reason.
#include <cmath>

#include "base/error.h"
#include "base/rng.h"
#include "core/epoch_order.h"
#include "core/gpu_backend.h"
#include "core/gpu_pointwise.h"

namespace shardrec {

namespace {

// MF/VBPR: the device draws each epoch's order and negatives itself (the host's pure functions),
// so a phase is one call.
class MfCudaEngine final : public StepEngine {
 public:
  MfCudaEngine(const TrainConfig& cfg, MFModel& m, const io::DataShard& data, dist::Comm& comm)
      : cfg_(cfg), m_(m), gpu_(GpuBackend::create(cfg, m, data, comm)) {}

  bool run_phase(const PhaseRun& r) override {
    if (r.dataset_order)
      fail("training_loss (loss landscapes) runs on the CPU backend only; use --device cpu");
    if (!r.whole_split || r.meta || r.phase != 0 || r.order_key != hash64(cfg_.seed, m_.order_salt(), r.epoch))
      fail("internal: the MF CUDA engine runs whole-split epochs in the standard order only");
    return gpu_->train_epoch(r.epoch, r.first, *r.strategy, *r.loss, r.after_step);
  }
  void to_host() override { gpu_->download(m_); }
  void state_to_host() override { gpu_->download_state(m_); }
  void state_from_host() override { gpu_->upload_state(m_); }
  std::string describe() const override { return gpu_->describe(); }

 private:
  TrainConfig cfg_;
  MFModel& m_;
  std::unique_ptr<GpuBackend> gpu_;
};

// GMF/NeuMF: the host orders the phase and builds each batch's labeled rows; the device draws the
// unlabeled items and runs the passes and moves.
class NcfCudaEngine final : public StepEngine {
 public:
  NcfCudaEngine(const TrainConfig& cfg, NcfModel& m, const io::DataShard& data, dist::Comm& comm,
                const uint8_t* labels)
      : m_(m), data_(data), comm_(comm), labels_(labels), gpu_(GpuPointwise::create(cfg, m, data, comm)) {}

  bool run_phase(const PhaseRun& r) override {
    if (r.dataset_order)
      fail("training_loss (loss landscapes) runs on the CPU backend only; use --device cpu");
    const io::UserSlice& tr = data_.train();
    return run_steps(r, tr, [&](int64_t s, std::span<const LocalSample> samples, int64_t global_n) {
      hb_.build(r, s, samples, global_n, tr, labels_, /*sampler=*/nullptr, DrawKind::kUnlabeled, comm_.rank());
      gpu_->begin_step(r.epoch, hb_.uid, hb_.ukey, hb_.iid, hb_.ikey, hb_.lab, hb_.row, hb_.ulocal, hb_.b.per);
      const auto [c_lab, c_unl] = NcfModel::weights(hb_.b);
      MetaStepOps& ops = gpu_->ops(c_lab, c_unl, r.loss);
      ops.on_decision = r.on_decision;
      r.strategy->step(s, ops);
    });
  }
  void to_host() override { gpu_->download(m_); }
  void state_to_host() override { gpu_->download_state(m_); }
  void state_from_host() override { gpu_->upload_state(m_); }
  void reset_table_optimizers() override { gpu_->reset_table_optimizers(); }
  std::string describe() const override { return gpu_->describe(); }

 private:
  NcfModel& m_;
  const io::DataShard& data_;
  dist::Comm& comm_;
  const uint8_t* labels_;
  std::unique_ptr<GpuPointwise> gpu_;
  HostBatch hb_;
};

}  // namespace

std::unique_ptr<StepEngine> make_mf_cuda_engine(const TrainConfig& cfg, MFModel& model, const io::DataShard& data,
                                                dist::Comm& comm) {
  return std::make_unique<MfCudaEngine>(cfg, model, data, comm);
}

std::unique_ptr<StepEngine> make_ncf_cuda_engine(const TrainConfig& cfg, NcfModel& model, const io::DataShard& data,
                                                 dist::Comm& comm, const uint8_t* labels) {
  return std::make_unique<NcfCudaEngine>(cfg, model, data, comm, labels);
}

}  // namespace shardrec
