// The CPU step engine, for every model: the host epoch order and draws (core/epoch_order.h),
// routing over the host tables, and the strategy's moves (plain and Mirror Gradient passes,
// Inverse Gradient's tentative moves) written once over core/model.h.
#pragma once
#include <memory>

#include "core/config.h"
#include "core/model.h"
#include "core/sampler.h"
#include "core/step_engine.h"
#include "dist/comm.h"
#include "io/dataset.h"

namespace shardrec {

// The threads of a rank: --threads, or with 0 the cores this process may run on (what the
// launcher bound it to: mpirun --map-by slot:PE=T, srun --cpus-per-task=T).
int cpu_threads(const TrainConfig& cfg);

// labels: the training rows' labels (labeled models; null otherwise). Everything is borrowed.
std::unique_ptr<StepEngine> make_cpu_engine(const TrainConfig& cfg, Model& model, const io::DataShard& data,
                                            dist::Comm& comm, const Sampler& sampler, const uint8_t* labels);

}  // namespace shardrec
