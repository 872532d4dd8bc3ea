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

// The threads of a rank: --threads, or with 0 the cores the launcher gave it: the cores it is
// bound to (mpirun --map-by slot:PE=T, srun --cpus-per-task=T), at most SLURM_CPUS_PER_TASK,
// and shared out when the node's ranks together are bound to more cores than it has (unbound
// ranks, or several bound to one socket). The results are the same for any number.
int cpu_threads(const TrainConfig& cfg);
// The rule above, from its inputs (0: not known).
int auto_threads(int mask_cores, int online_cores, int local_ranks, int cpus_per_task);

// labels: the training rows' labels (labeled models; null otherwise). Everything is borrowed.
std::unique_ptr<StepEngine> make_cpu_engine(const TrainConfig& cfg, Model& model, const io::DataShard& data,
                                            dist::Comm& comm, const Sampler& sampler, const uint8_t* labels);

}  // namespace shardrec
