// Training checkpoints (docs/operations.md has the file layout): one HDF5 file holding every
// table's rows by global id with their optimizer state, the dense parameters (VBPR's projection,
// GMF/NeuMF's MLP and prediction layer) and their state, the training position (epoch, step; the
// phase for the pointwise trainer), the partial loss sums, the early-stopping state (with the
// kept best parameters), the IG decisions and the resolved config. Rows are addressed by id, so a
// checkpoint written by N ranks loads into M ranks: each rank reads the ids it owns under the new
// sharding.
//
// Writing: with MPI, every rank writes its own rows into one file through parallel HDF5; ranks
// that are threads (tests) take turns. The file is written as "<path>.tmp" and renamed when
// complete, so a crash mid-write leaves the previous checkpoint as it was. Every dataset carries
// a 64-bit checksum of its rows (an XOR over rows of hash(id, row bytes), so it does not depend
// on who wrote which row) and the state text carries one too; loading verifies them all.
#pragma once
#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/pointwise_trainer.h"
#include "core/trainer.h"
#include "dist/comm.h"

namespace shardrec::io {

inline constexpr const char* kCheckpointFormat = "shardrec-checkpoint";
inline constexpr int kCheckpointVersion = 1;

// Collective. Writes the trainer's state to `path` atomically (via "<path>.tmp").
void save_checkpoint(const std::string& path, Trainer& trainer, dist::Comm& comm);
void save_checkpoint(const std::string& path, PointwiseTrainer& trainer, dist::Comm& comm);

// Collective. Restores parameters, optimizer state and progress from `path` into a trainer
// built from `cfg` on this job's ranks. Errors (not a checkpoint, another model or dataset, an
// incompatible config, a damaged file) name the file and the mismatch; the file is only read.
void load_checkpoint(const std::string& path, Trainer& trainer, const TrainConfig& cfg,
                     const io::DatasetInfo& data, dist::Comm& comm);
void load_checkpoint(const std::string& path, PointwiseTrainer& trainer, const TrainConfig& cfg,
                     const io::DatasetInfo& data, dist::Comm& comm);

// The checkpoint files of a directory ("ckpt-<global step>.h5"), oldest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Bytes a checkpoint of this trainer takes (the free-space check before training).
int64_t checkpoint_bytes(Trainer& trainer, dist::Comm& comm);
int64_t checkpoint_bytes(PointwiseTrainer& trainer, dist::Comm& comm);

// When to write checkpoints during fit(): every `every_steps` steps, every `every_minutes`, and
// when *signal_flag becomes non-zero on any rank (then training stops after the checkpoint).
// Time and signal decisions differ between ranks, so they are agreed with one small allreduce
// per step whenever either is in use.
struct CheckpointPolicy {
  std::string dir;            // checkpoints go to dir/ckpt-<global step>.h5
  int64_t every_steps = 0;    // 0 = off
  double every_minutes = 0;   // 0 = off
  int keep = 3;               // the newest `keep` files are kept; older ones are removed
  const volatile std::sig_atomic_t* signal_flag = nullptr;
};

class Checkpointer {
 public:
  Checkpointer(CheckpointPolicy policy, dist::Comm& comm);
  // The step hook (Trainer::set_step_hook, PointwiseTrainer::set_step_hook): writes when due;
  // true = stop training now.
  bool operator()(Trainer& trainer);
  bool operator()(PointwiseTrainer& trainer);
  // Writes one now (collective) and removes old ones; returns its path.
  std::string write(Trainer& trainer);
  std::string write(PointwiseTrainer& trainer);
  const std::string& last_written() const { return last_; }

 private:
  bool tick(int64_t global_step, const std::function<void()>& write_now);
  std::string write_as(int64_t global_step, const std::function<void(const std::string&)>& save_to);

  CheckpointPolicy p_;
  dist::Comm& comm_;
  double last_time_;
  std::string last_;
};

// Parses --checkpoint-every: "N" or "Nsteps" (steps), "Nm" or "Nmin" (minutes).
void parse_checkpoint_every(const std::string& text, int64_t* steps, double* minutes);

}  // namespace shardrec::io
