// Training checkpoints (docs/operations.md has the file layout): one HDF5 file holding every
// table's rows by global id with their optimizer state, the dense parameters (VBPR's projection,
// GMF/NeuMF's MLP and prediction layer) and their state, the training position (epoch, step; the
// phase for the pointwise trainer), the partial loss sums, the early-stopping state (with the
// kept best parameters), the IG decisions and the resolved config. Rows are addressed by id, so a
// checkpoint written by N ranks loads into M ranks: each rank reads the ids it owns under the new
// sharding.
//
// Writing: with MPI, every rank writes its own rows into one file through parallel HDF5; ranks
// that are threads (tests) take turns. The file is written as a unique "<path>.tmp-XXXXXX"
// (base/atomic_file.h), synced and renamed when complete, removed on failure, so a crash mid-write leaves the previous checkpoint as it was. Every dataset carries
// a 64-bit checksum of its rows (an XOR over rows of hash(id, row bytes), so it does not depend
// on who wrote which row) and the state text carries one too; loading verifies them all.
//
// This layer knows the file: its layout, checksums, the parallel write, loading by id and the
// cross-rank agreement. What a training puts into it comes through a StateDict: named blocks of
// rows and key-value lines. The trainers' adapters live above, in core/checkpoint_state.h.
#pragma once
#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "io/dataset.h"

namespace shardrec::io {

inline constexpr const char* kCheckpointFormat = "shardrec-checkpoint";
inline constexpr int kCheckpointVersion = 1;

// One dataset of a checkpoint and this rank's rows of it: global ids first, first + stride, ...
// (count rows of width() floats at data).
struct StateBlock {
  std::string name;
  int64_t rows = 0, cols = 0;  // cols 0: a vector
  bool replicated = false;     // identical on every rank: rank 0 writes it, every rank reads it
  int64_t first = 0, stride = 1, count = 0;
  float* data = nullptr;
  int64_t width() const { return cols > 0 ? cols : 1; }
};

// A checkpoint's key-value state, read with errors that name the file.
class StateValues {
 public:
  StateValues(std::map<std::string, std::string> kv, std::string where) : kv_(std::move(kv)), where_(std::move(where)) {}
  const std::string& str(const std::string& key) const;
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  int64_t i64(const std::string& key) const { return static_cast<int64_t>(std::stoll(str(key))); }
  double dbl(const std::string& key) const { return std::strtod(str(key).c_str(), nullptr); }
  const std::string& where() const { return where_; }  // "checkpoint PATH: "

 private:
  std::map<std::string, std::string> kv_;
  std::string where_;
};

// A block's checksum: XOR over its rows of hash(global id, row bytes), so it does not depend on
// which rank holds which row. rows_hash: this rank's rows; global_hash: over all ranks
// (collective; a replicated block counts once, from rank 0). params.h5 uses the same.
uint64_t rows_hash(const StateBlock& b);
uint64_t global_hash(const StateBlock& b, dist::Comm& comm);

// Collective. Runs fn on every rank; if it failed anywhere, every rank throws AgreedError with the
// first failing rank's message, so that no rank goes on alone into a collective.
void agree(dist::Comm& comm, const std::function<void()>& fn);

// What a training exposes to a checkpoint.
class StateDict {
 public:
  virtual ~StateDict() = default;
  virtual std::string model() = 0;
  virtual std::string config_text() = 0;  // the resolved configuration, "key = value" lines
  virtual const DatasetInfo& dataset() = 0;
  virtual int64_t global_step() = 0;
  // A device backend's state lives on the device: copy it into the host blocks and back.
  virtual void to_host() = 0;
  virtual void to_device() = 0;
  // HDF5 groups of the layout, and the blocks (reading: sized by prepare() first).
  virtual std::vector<std::string> groups() = 0;
  virtual std::vector<StateBlock> blocks(int rank, bool reading) = 0;
  // "key = value" lines of where training stands; a collective (partial sums are summed).
  virtual std::string state(dist::Comm& comm) = 0;
  // Loading: check the stored position and size the buffers of blocks(); after the rows,
  // restore the key-values.
  virtual void prepare(const StateValues& st) = 0;
  virtual void restore(const StateValues& st, dist::Comm& comm) = 0;
  // Bytes of blocks that appear later in training (the kept best parameters), for space checks.
  virtual int64_t later_bytes() = 0;
};

// Collective. Writes the state to `path` atomically (via a unique "<path>.tmp-XXXXXX").
void save_checkpoint(const std::string& path, StateDict& state, dist::Comm& comm);

// Collective. Restores blocks and key-values from `path`. The stored configuration must equal
// config_now but for the keys that may change on resume, and the dataset `data` (at data_path,
// for messages) must be the one it was written for. Errors (not a checkpoint, another model or
// dataset, an incompatible config, a damaged file) name the file and the mismatch; the file is
// only read.
void load_checkpoint(const std::string& path, StateDict& state, const std::string& config_now,
                     const DatasetInfo& data, const std::string& data_path, dist::Comm& comm);

// The checkpoint files of a directory ("ckpt-<global step>.h5"), oldest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Bytes a checkpoint of this state takes (the free-space check before training).
int64_t checkpoint_bytes(StateDict& state, dist::Comm& comm);

// When to write checkpoints during training: every `every_steps` steps, every `every_minutes`, and
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
  // For a trainer's step hook: writes when due; true = stop training now.
  bool operator()(StateDict& state);
  // Writes one now (collective) and removes old ones; returns its path.
  std::string write(StateDict& state);
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
