// The trainers' state dicts for checkpoints (io/checkpoint.h knows only the file): each table's
// rows by global id with their optimizer state, the dense parameters and theirs, the position in
// the data, the partial loss sums, the early-stopping state with the kept best parameters, and
// the IG decisions, as named blocks and key-values.
#pragma once
#include <memory>
#include <string>

#include "core/pointwise_trainer.h"
#include "core/trainer.h"
#include "io/checkpoint.h"

namespace shardrec {

std::unique_ptr<io::StateDict> state_dict(Trainer& t);
std::unique_ptr<io::StateDict> state_dict(PointwiseTrainer& t);

// A trainer's checkpoint, saved or restored (collective); resuming from `cfg` checks that the
// checkpoint was written with a compatible configuration and for the dataset `data`.
template <class TrainerT>
void save_checkpoint(const std::string& path, TrainerT& t, dist::Comm& comm) {
  io::save_checkpoint(path, *state_dict(t), comm);
}
template <class TrainerT>
void load_checkpoint(const std::string& path, TrainerT& t, const TrainConfig& cfg, const io::DatasetInfo& data,
                     dist::Comm& comm) {
  io::load_checkpoint(path, *state_dict(t), cfg.to_ini(), data, cfg.data, comm);
}
template <class TrainerT>
int64_t checkpoint_bytes(TrainerT& t, dist::Comm& comm) {
  return io::checkpoint_bytes(*state_dict(t), comm);
}
// A step hook that checkpoints through `cp` (set with set_step_hook).
template <class TrainerT>
void checkpoint_steps(TrainerT& t, io::Checkpointer& cp) {
  t.set_step_hook([&cp, sd = std::shared_ptr<io::StateDict>(state_dict(t))](TrainerT&) { return cp(*sd); });
}

}  // namespace shardrec
