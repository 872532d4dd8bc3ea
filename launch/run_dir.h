// A training's run directory: its lock, config.ini and metrics.jsonl, the free-space check, and
// checkpoints (--checkpoint-every, --resume, SIGUSR1 before a time limit).
#pragma once
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/checkpoint_state.h"
#include "core/config.h"
#include "dist/comm.h"
#include "io/checkpoint.h"
#include "launch/cli_util.h"

namespace shardrec::cli {

// One training at a time per run directory: a second one would interleave metrics.jsonl lines
// and race on params.h5. The lock is a file created exclusively and removed on exit.
class RunDirLock {
 public:
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  std::string path_;
  bool stale() const;
};

// The number of the stop signal received: SIGUSR1 (SLURM's warning before the time limit, sbatch
// --signal), SIGTERM (scancel, preemption, a SLURM time limit's first signal) or SIGINT (Ctrl-C).
// The training loop checks it at every step boundary, writes a checkpoint and exits with
// stop_exit_code() (README, "Exit codes"). A second SIGINT ends the process at once.
extern volatile std::sig_atomic_t g_checkpoint_signal;
constexpr int kExitRequeue = 75;     // SIGUSR1 (EX_TEMPFAIL): checkpointed before a limit; requeue
constexpr int kExitTerminated = 143; // SIGTERM (128 + 15): checkpointed, then stopped
constexpr int kExitInterrupted = 130;  // SIGINT (128 + 2): checkpointed, then stopped
int stop_exit_code(int signal);
const char* signal_name(int signal);

// Records the stop signals from the start of `shardrec train` (main), so that one that arrives
// before training starts (a job started close to its limit) is kept for the first step boundary
// instead of ending the process.
void hold_stop_signals();
// With a run directory, (re)installs the handlers: MPI's start-up may put its own in place of
// ours (a singleton whose PMIx differs from the build's did, on the GPU machine). Without one
// (nowhere to checkpoint), restores the default actions and delivers a signal already held.
void install_checkpoint_signal(const TrainConfig& c);

// Rank 0: creates and locks the run directory, failing before any training when it cannot be
// written; a fresh run (not a resume) starts config.ini (`ini`) and metrics.jsonl.
std::unique_ptr<RunDirLock> open_run_dir(const TrainConfig& c, bool root, bool resuming, const std::string& ini);

// Fails before training when dir cannot hold `bytes` more.
void check_free_space(const std::string& dir, double bytes, const std::string& what);

// About what params.h5 takes: the tables and `dense` more floats, with room for HDF5's overhead.
double params_file_bytes(Model& m);

// With a run directory: checks the free space, resumes from a checkpoint (--resume) and installs
// the step hook that writes checkpoints (--checkpoint-every, SIGUSR1); `params_bytes` is what params.h5 will take; a resume rewrites config.ini as `ini`.
inline std::unique_ptr<io::Checkpointer> setup_checkpoints(Trainer& trainer, const TrainConfig& c, io::CheckpointPolicy ckpt,
                                                    const std::string& resume, double params_bytes, bool quiet,
                                                    const std::string& ini, dist::Comm& comm) {
  if (c.run_dir.empty()) return nullptr;
  const bool root = comm.rank() == 0;
  // Before training: the disk must hold the checkpoints (and the one being written) and params.h5.
  const double ck = static_cast<double>(checkpoint_bytes(trainer, comm));
  const bool periodic = ckpt.every_steps > 0 || ckpt.every_minutes > 0;
  io::agree(comm, [&] {
    if (root)
      check_free_space(c.run_dir, (periodic ? ckpt.keep + 1 : 1) * ck + params_bytes,
                       periodic ? std::to_string(ckpt.keep + 1) + " checkpoints and params.h5"
                                : "a checkpoint on a signal and params.h5");
  });
  // Resume: rank 0 picks the file, every rank reads its own rows of it.
  std::string from;
  if (root && !resume.empty()) {
    if (resume == "latest" || resume == "auto") {
      const auto all = io::list_checkpoints(ckpt.dir);
      if (!all.empty()) from = all.back();
      else if (resume == "latest") fail("option --resume: no checkpoint in " + ckpt.dir);
    } else {
      from = resume;
    }
  }
  uint64_t len = from.size();
  comm.broadcast(&len, sizeof len, 0);
  from.resize(len);
  comm.broadcast(from.data(), len, 0);
  if (!from.empty()) {
    load_checkpoint(from, trainer, c, trainer.data_info(), comm);
    const auto& p = trainer.progress();
    if (root && !quiet)
      std::printf("resumed from %s: epoch %d, step %lld of %lld\n", from.c_str(), p.epoch,
                  (long long)trainer.global_step() - (long long)(p.epoch - 1) * trainer.steps_per_epoch(),
                  (long long)trainer.steps_per_epoch());
  }
  if (root && !resume.empty()) {
    write_file(c.run_dir + "/config.ini", ini);
    // metrics.jsonl keeps the lines of the epochs the checkpoint had completed.
    std::ifstream in(c.run_dir + "/metrics.jsonl");
    std::string line, kept;
    for (int e = 0; e < trainer.progress().epochs_done && std::getline(in, line); ++e) kept += line + "\n";
    write_file(c.run_dir + "/metrics.jsonl", kept);
  }
  ckpt.signal_flag = &g_checkpoint_signal;
  auto checkpointer = std::make_unique<io::Checkpointer>(ckpt, comm);
  checkpoint_steps(trainer, *checkpointer);
  return checkpointer;
}

// After fit() was interrupted by a stop signal: the checkpoint is written; the exit code tells
// which signal it was (75 asks to requeue).
inline int requeue_exit(Trainer& trainer, const io::Checkpointer& checkpointer, bool root) {
  // Ranks may have seen different signals (or none): the step's agreement stopped them all.
  const int sig = g_checkpoint_signal ? static_cast<int>(g_checkpoint_signal) : SIGUSR1;
  const int code = stop_exit_code(sig);
  if (root) {
    const auto& p = trainer.progress();
    std::printf("stopped by %s at epoch %d step %lld: checkpoint %s written; exit %d (%s and "
                "run again with --resume auto to continue)\n",
                signal_name(sig), p.epoch,
                (long long)trainer.global_step() - (long long)(p.epoch - 1) * trainer.steps_per_epoch(),
                checkpointer.last_written().c_str(), code, code == kExitRequeue ? "requeue" : "stopped");
  }
  std::fflush(stdout);
  return code;
}

}  // namespace shardrec::cli
