// The GPU backend of the pointwise models (GMF, NeuMF; BCE, IDL, bce-neg; plain and Inverse
// Gradient steps). The host keeps the control flow: the epoch's order, the exact
// loss sums and the IG decision, and the dense parameters with their optimizer (small,
// replicated: updated on the host exactly as on the CPU, then uploaded). Per step the device does
// what grows with the batch: the unlabeled draws (the CPU's pure functions), routing, row exchange,
// the forward and backward passes (GEMMs on cuBLAS, kernels/dense_ops.h), the dense gradients'
// exact fixed-point sums (bitwise the CPU's for equal inputs), the fused table updates, and the IG
// candidates: reduction at the owners, d rows back to the requesters, commit or restore.
// Builds without CUDA get a create() that fails with a clear message.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/ncf_model.h"
#include "core/step_engine.h"
#include "core/strategy.h"
#include "dist/comm.h"
#include "dist/exact_sum.h"
#include "io/dataset.h"

namespace shardrec {

class GpuPointwise {
 public:
  virtual ~GpuPointwise() = default;
  // Uploads the model's tables (fresh optimizer state), dense parameters and this rank's training
  // rows (the unlabeled draws are made on the device).
  static std::unique_ptr<GpuPointwise> create(const TrainConfig& cfg, NcfModel& model, const io::DataShard& data,
                                              dist::Comm& comm);

  // The step's rows (host): n users with order keys, n * per item slots (the labeled item first;
  // the per - 1 unlabeled draws of row i are drawn here, Sampler::unlabeled's
  // draws for dataset row grow[i] of local user user[i]) with keys, n labels. Uploads, draws and
  // routes them (a collective).
  virtual void begin_step(int epoch, const std::vector<int64_t>& uid, const std::vector<uint64_t>& ukey,
                          const std::vector<int64_t>& iid, const std::vector<uint64_t>& ikey,
                          const std::vector<uint8_t>& lab, const std::vector<int64_t>& grow,
                          const std::vector<int32_t>& user, int per) = 0;
  // The strategies' moves over the step begin_step made (core/strategy.h): labeled rows weigh
  // c_lab, unlabeled ones c_unl (0 skips them); forward_backward's losses go to loss's slots 0/1.
  virtual MetaStepOps& ops(double c_lab, double c_unl, dist::ExactSums* loss) = 0;
  // A fresh optimizer for the tables (the dense one is the host model's).
  virtual void reset_table_optimizers() = 0;
  // Copies the trained rows back into the host tables (evaluation, export, early stopping).
  virtual void download(NcfModel& model) = 0;
  // Checkpoints: the tables' whole state (rows, optimizer state, step counters) down to the host
  // tables, and back up after a load (with the host's dense parameters, which the host owns).
  virtual void download_state(NcfModel& model) = 0;
  virtual void upload_state(const NcfModel& model) = 0;
  virtual std::string describe() const = 0;
};

// GMF/NeuMF's CUDA step engine (core/step_engine.h) over GpuPointwise; core/cuda_engines.cc.
// labels: the training rows' labels (borrowed).
std::unique_ptr<StepEngine> make_ncf_cuda_engine(const TrainConfig& cfg, NcfModel& model, const io::DataShard& data,
                                                 dist::Comm& comm, const uint8_t* labels);

}  // namespace shardrec
