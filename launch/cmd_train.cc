// shardrec train: any model (core/trainer.h).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/log.h"
#include "core/checkpoint_state.h"
#include "core/config.h"
#include "core/cpu_engine.h"
#include "core/gpu_backend.h"
#include "core/trainer.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"
#include "launch/run_dir.h"

namespace shardrec::cli {

namespace {

// Options of the run itself, not of what is trained (config.ini does not record them).
struct RunOptions {
  bool final_eval = true, quiet = false;
  LogLevel level = LogLevel::kInfo;  // --log-level, at most warn with --quiet
  std::string checkpoint_every, resume;
  int keep_checkpoints = 3;
  double comm_timeout = default_comm_timeout();
  double progress_every = 10;
  io::CheckpointPolicy ckpt;
  std::string ini;  // config.ini
};

// Rank 0's closing lines of train: the best epoch (and `extra`), then the final metrics.
void print_final(int best_epoch, bool stopped_early, const std::string& extra, bool final_eval,
                 const EvalResult& valid, const EvalResult& test) {
  std::printf("best epoch %d%s%s\n", best_epoch, stopped_early ? " (stopped early)" : "", extra.c_str());
  if (final_eval) {
    print_metrics("valid", valid);
    print_metrics("test", test);
  }
}

// Per-rank memory as JSON: peak resident set, and the shares of tables, optimizer state and
// data slices, so the overhead beyond them can be read off (docs/benchmarks.md).
std::string memory_report(const ModelState& m, const io::DataShard& data, dist::Comm& comm) {
  double tables = 0, opt = 0, slices = 0;
  for (const auto* t : m.tables) {
    tables += t->local_data().size() * sizeof(float);
    opt += t->optimizer().state_bytes();
  }
  for (const auto& s : data.split)
    slices += s.item.size() * sizeof(int32_t) + s.ptr.size() * sizeof(int64_t) + s.rating.size() * sizeof(float);
  const double mib = 1024.0 * 1024.0;
  std::vector<double> mine = {peak_rss_mib(), tables / mib, opt / mib, slices / mib};
  auto all = dist::allgather(comm, mine);
  std::string s = "[";
  for (int k = 0; k < comm.size(); ++k) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "%s{\"rank\": %d, \"peak_rss_mib\": %.1f, \"tables_mib\": %.1f, \"optimizer_mib\": %.1f, \"data_mib\": %.1f}",
                  k ? ", " : "", k, all[k][0], all[k][1], all[k][2], all[k][3]);
    s += buf;
  }
  return s + "]";
}

// One epoch's line of RUN_DIR/metrics.jsonl (rank 0; nothing without a run directory).
void append_metrics_line(const TrainConfig& c, const std::string& line) {
  if (!c.run_dir.empty()) append_file(c.run_dir + "/metrics.jsonl", line);
}

// The validation part of an epoch's progress line.
void print_valid(const TrainConfig& c, const EpochLog& e) {
  if (e.validated)
    std::printf("  valid %s %.4f%s", c.valid_metric.c_str(), e.valid.get(c.valid_metric), e.improved ? " *" : "");
}

std::string ig_json(const IgStats& s) {
  return "{\"forward\": " + std::to_string(s.forward) + ", \"inverse\": " + std::to_string(s.inverse) +
         ", \"mid\": " + std::to_string(s.mid) + "}";
}

// An empty validation split gives no metric to stop on: validation (and with it early stopping)
// is turned off with one warning, instead of stopping on the metric of 0 users.
void skip_empty_validation(TrainConfig& c, const io::DataShard& data, const Log& log) {
  if (data.info.rows[1] > 0 || c.eval_every == 0) return;
  if (log.warn())
    std::fprintf(stderr, "warning: %s has no validation rows: per-epoch validation and early stopping are off "
                 "(as with --eval-every 0); training runs all %d epochs\n", c.data.c_str(), c.epochs);
  c.eval_every = 0;
}

// What training does first, on every rank: the signals, the inputs checked together, the run
// directory locked (rank 0's; a directory it cannot use stops every rank), this rank's data.
std::pair<std::unique_ptr<RunDirLock>, io::DataShard> start_training(TrainConfig& c, const RunOptions& r,
                                                                     dist::Comm& comm) {
  install_checkpoint_signal(c);
  const bool root = comm.rank() == 0;
  check_inputs(comm, c.data);
  std::unique_ptr<RunDirLock> lock;
  io::agree(comm, [&] { lock = open_run_dir(c, root, !r.resume.empty(), r.ini); });
  auto data = io::load_shard(c.data, comm);
  const Log log(r.level, root);
  debug_partition(log, data, comm);
  skip_empty_validation(c, data, log);
  return {std::move(lock), std::move(data)};
}

// Tests only: SHARDREC_TEST_FAIL_AT=R:S makes rank R alone fail after global step S, with the
// other ranks in the step's collectives (tests/failures.sh checks how the job ends).
void plant_test_failure(Trainer& t, dist::Comm& comm) {
  const char* v = std::getenv("SHARDREC_TEST_FAIL_AT");
  if (!v || !*v) return;
  int rank = -1;
  long long step = -1;
  if (std::sscanf(v, "%d:%lld", &rank, &step) != 2 || rank < 0 || step < 0)
    fail(std::string("SHARDREC_TEST_FAIL_AT: '") + v + "': expected RANK:STEP");
  if (rank != comm.rank()) return;
  t.set_step_hook([inner = t.step_hook(), rank, step](Trainer& tr) {
    if (tr.global_step() >= step)
      fail("test failure planted on rank " + std::to_string(rank) + " after step " + std::to_string(step) +
           " (SHARDREC_TEST_FAIL_AT)");
    return inner && inner(tr);
  });
}

// RUN_DIR/result.json, one schema for every model (docs/data-format.md): ig is null without
// Inverse Gradient; seconds_per_epoch is the mean over the epochs this run trained.
double seconds_per_epoch(const FitResult& res) {
  double secs = 0;
  for (const auto& e : res.epochs) secs += e.seconds;
  return res.epochs.empty() ? 0 : secs / static_cast<double>(res.epochs.size());
}

std::string result_json(const TrainConfig& c, const FitResult& res, int epochs_run, int ranks, const std::string& ig,
                        const EvalResult& valid, const EvalResult& test, const std::string& memory) {
  const double per_epoch = seconds_per_epoch(res);
  return "{\"model\": " + json_str(c.model) + ", \"best_epoch\": " + std::to_string(res.best_epoch) +
         ", \"epochs_run\": " + std::to_string(epochs_run) +
         ", \"stopped_early\": " + (res.stopped_early ? "true" : "false") + ", \"ranks\": " + std::to_string(ranks) +
         ", \"seconds_per_epoch\": " + json_number(per_epoch) + ", \"ig\": " + ig + ", \"valid\": " +
         json_metrics(valid) + ", \"test\": " + json_metrics(test) + ", \"memory\": " + memory + "}\n";
}

int train(TrainConfig c, const RunOptions& r, int argc, char** argv) {
  return run_mpi(
      [&](dist::Comm& comm) {
        const bool root = comm.rank() == 0;
        const auto [lock, data] = start_training(c, r, comm);
        const Log log(r.level, root);
        const bool ig = c.strategy == "ig";
        if (log.info())
          std::printf("data %s: %lld users, %lld items, %lld %strain rows on %d rank(s) x %d thread(s); %s %s %s dim %d\n",
                      c.data.c_str(), (long long)data.info.num_users, (long long)data.info.num_items,
                      (long long)data.info.rows[0], c.pointwise_model() ? "labeled " : "", comm.size(),
                      c.device == "cpu" ? cpu_threads(c) : 1, c.model.c_str(), c.loss.c_str(), c.strategy.c_str(), c.dim);
        Trainer trainer(c, data, comm);
        if (log.info() && !trainer.device_name().empty())
          std::printf("device %s\n", trainer.device_name().c_str());
        const auto checkpointer =
            setup_checkpoints(trainer, c, r.ckpt, r.resume, params_file_bytes(trainer.model()), !log.info(), r.ini, comm);
        plant_test_failure(trainer, comm);
        if (log.info())
          trainer.set_progress(
              [&](const StepProgress& p) {
                std::printf("  epoch %d/%d%s  step %lld/%lld  %s samples/s  %s left in the %s\n", p.epoch, c.epochs,
                            ig ? (p.phase == 1 ? " meta" : " train") : "", (long long)p.step, (long long)p.steps,
                            human_rate(p.samples_per_s).c_str(), human_time(p.eta_seconds).c_str(),
                            ig ? "phase" : "epoch");
                std::fflush(stdout);
              },
              r.progress_every);
        // Validation inside the epochs: a line only when one runs longer than the period.
        Progress validation = log.progress("validation", "users");
        trainer.set_eval_progress(&validation);
        auto res = trainer.fit([&](const EpochLog& e) {
          if (!root) return;
          std::string line = "{\"epoch\": " + std::to_string(e.epoch) + ", \"loss\": " + json_number(e.loss) +
                             ", \"seconds\": " + json_number(e.seconds) +
                             ", \"samples_per_s\": " + json_number(e.samples_per_s);
          if (ig) line += ", \"ig\": " + ig_json(trainer.ig_stats());
          if (e.validated) line += ", \"valid\": " + json_metrics(e.valid);
          append_metrics_line(c, line + "}\n");
          if (!log.info()) return;
          std::printf("epoch %d/%d  loss %.5f  %s samples/s  %.1fs", e.epoch, c.epochs, e.loss,
                      human_rate(e.samples_per_s).c_str(), e.seconds);
          print_valid(c, e);
          if (ig)
            std::printf("  ig f/i/m %lld/%lld/%lld", (long long)trainer.ig_stats().forward,
                        (long long)trainer.ig_stats().inverse, (long long)trainer.ig_stats().mid);
          std::printf("  eta %s\n", human_time(e.eta_seconds).c_str());
          std::fflush(stdout);
        });
        trainer.set_eval_progress(nullptr);
        if (res.interrupted) return requeue_exit(trainer, *checkpointer, root);
        EvalResult valid, test;
        if (r.final_eval) {
          const auto t0 = std::chrono::steady_clock::now();
          Progress progress = log.progress("final eval valid", "users");
          trainer.set_eval_progress(&progress);
          valid = trainer.evaluate(1);
          progress.set_what("final eval test");
          test = trainer.evaluate(2);
          trainer.set_eval_progress(nullptr);
          if (log.debug())
            std::fprintf(stderr, "debug: final evaluation (valid, test): %.3f s\n",
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        const std::string memory = memory_report(trainer.model().state(), data, comm);
        // The closing lines are the results, unless quiet and result.json holds them.
        if (root && (log.summary() || c.run_dir.empty())) {
          char extra[64];
          std::snprintf(extra, sizeof extra, "; %.2fs per epoch", seconds_per_epoch(res));
          print_final(res.best_epoch, res.stopped_early, extra, r.final_eval, valid, test);
        }
        if (!c.run_dir.empty()) {
          save_params(c.run_dir + "/params.h5", c, trainer.model(), comm);
          if (root)
            write_file(c.run_dir + "/result.json",
                       result_json(c, res, trainer.progress().epochs_done, comm.size(),
                                   ig ? ig_json(trainer.ig_stats()) : "null", valid, test, memory));
        }
        return 0;
      },
      argc, argv, r.comm_timeout);
}

}  // namespace

int cmd_train(int argc, char** argv) {
  TrainConfig c;
  c.threads = 0;  // the command's default: the cores the launcher gave the rank (cpu_threads)
  RunOptions r;
  Options opts = for_command(config_options(c), kTrain);
  opts.insert(opts.end(), {
      Option("final-eval", r.final_eval, "evaluate valid and test at the end (full ranking over all items)"),
      Option("quiet", r.quiet, "no progress lines (as --log-level warn)").flag(),
      Option("checkpoint-every", r.checkpoint_every,
             "write a checkpoint to RUN_DIR/checkpoints every N steps (e.g. 500) or minutes (e.g. 30m); "
             "SIGUSR1, SIGTERM and SIGINT also write one and stop (exit codes 75, 143, 130)"),
      Option("keep-checkpoints", r.keep_checkpoints, "keep the newest K checkpoints").at_least(1),
      Option("progress-every", r.progress_every,
             "inside an epoch, a progress line (step, samples/s, time left) every this many seconds; 0: none")
          .at_least(0),
      Option("comm-timeout", r.comm_timeout,
             "seconds a collective may wait for the other ranks before the job ends with exit code 124 and a "
             "message naming the collective (a rank or a link is gone); 0: no limit (default: "
             "SHARDREC_COMM_TIMEOUT, else 600)")
          .at_least(0),
      Option("resume", r.resume,
             "continue from a checkpoint: latest (the newest in RUN_DIR/checkpoints), auto (latest if "
             "there is one, else start afresh) or a checkpoint file"),
  });
  const Args args = parse(argc, argv, "usage: [mpirun -np N] shardrec train --data DATA.h5 [options]", opts);
  if (args.help) return 0;
  // --quiet is --log-level warn (it keeps the warnings), or below when that is given too.
  r.level = r.quiet ? std::min(args.log_level, LogLevel::kWarn) : args.log_level;
  const bool info = r.level >= LogLevel::kInfo;
  if (!r.checkpoint_every.empty())
    io::parse_checkpoint_every(r.checkpoint_every, &r.ckpt.every_steps, &r.ckpt.every_minutes);
  r.ckpt.keep = r.keep_checkpoints;
  if (c.run_dir.empty() && (r.ckpt.every_steps > 0 || r.ckpt.every_minutes > 0 || !r.resume.empty()))
    fail(std::string("option --") + (r.resume.empty() ? "checkpoint-every" : "resume") +
         ": needs --run-dir (checkpoints live in RUN_DIR/checkpoints)");
  if (!c.run_dir.empty()) r.ckpt.dir = c.run_dir + "/checkpoints";
  install_checkpoint_signal(c);
  c.eval.device = resolve_device(c.eval.device);
  default_pointwise_loss(c, args);
  c.validate();
  const std::string asked = c.device;
  c.device = resolve_device(c.device);
  if (asked == "auto" && c.device == "cpu" && info)
    std::fprintf(stderr, "note: --device auto: no GPU is visible, training on the CPU\n");
  if (c.run_dir.empty() && info)
    std::fprintf(stderr, "note: no --run-dir: the trained parameters are not saved (give --run-dir to keep them)\n");
  // config.ini names the dataset absolutely, so that it reads back from any directory; messages
  // keep the path as the user gave it.
  const std::string data_given = c.data;
  if (!c.data.empty()) c.data = std::filesystem::absolute(c.data).lexically_normal().string();
  r.ini = ini_text(opts, c);
  c.data = data_given;
  // Checkpoints work on the GPU backend too (the trainer copies the device state for them).
  return train(c, r, argc, argv);
}

}  // namespace shardrec::cli
