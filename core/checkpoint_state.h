// The trainer's state dict for checkpoints (io/checkpoint.h knows only the file): each table's
// rows by global id with their optimizer state, the dense parameters and theirs, the position in
// the data, the partial loss sums, the early-stopping state with the kept best parameters, and
// the IG decisions, as named blocks and key-values.
#pragma once
#include <memory>
#include <string>

#include "core/trainer.h"
#include "io/checkpoint.h"

namespace shardrec {

std::unique_ptr<io::StateDict> state_dict(Trainer& t);

// The trainer's checkpoint, saved or restored (collective); resuming from `cfg` checks that the
// checkpoint was written with a compatible configuration and for the dataset `data`.
inline void save_checkpoint(const std::string& path, Trainer& t, dist::Comm& comm) {
  io::save_checkpoint(path, *state_dict(t), comm);
}
inline void load_checkpoint(const std::string& path, Trainer& t, const TrainConfig& cfg, const io::DatasetInfo& data,
                            dist::Comm& comm) {
  io::load_checkpoint(path, *state_dict(t), cfg.to_ini(), data, cfg.data, comm);
}
inline int64_t checkpoint_bytes(Trainer& t, dist::Comm& comm) { return io::checkpoint_bytes(*state_dict(t), comm); }
// A step hook that checkpoints through `cp` (set with set_step_hook).
inline void checkpoint_steps(Trainer& t, io::Checkpointer& cp) {
  t.set_step_hook([&cp, sd = std::shared_ptr<io::StateDict>(state_dict(t))](Trainer&) { return cp(*sd); });
}

}  // namespace shardrec
