#include "launch/commands.h"

#include <boost/program_options.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/config.h"
#include "base/error.h"
#include "core/evaluator.h"
#include "core/landscape.h"
#include "core/planner.h"
#include "core/pointwise_trainer.h"
#include "core/robustness.h"
#include "core/trainer.h"
#include "core/gpu_backend.h"
#include "dist/mpi_comm.h"
#include "io/dataset.h"
#include "core/checkpoint_state.h"
#include "io/export.h"
#include "io/features.h"
#include "io/prep.h"
#include "io/synth.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace shardrec::cli {

namespace {

// Flags first, then an optional --config file (key = value, same names without "--"): a value
// given on the command line wins. Unknown keys in either place are errors. Returns false after
// printing --help.
bool parse(int argc, char** argv, const char* usage, po::options_description& desc,
           po::variables_map& vm) {
  desc.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(), "read options from this file (key = value per line)");
  po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << desc << "\n";
    return false;
  }
  if (vm.count("config")) {
    const std::string path = vm["config"].as<std::string>();
    std::ifstream in(path);
    if (!in) fail("config file " + path + ": cannot be read");
    try {
      po::store(po::parse_config_file(in, desc, false), vm);
    } catch (const po::error& e) {
      fail("config file " + path + ": " + e.what());
    }
  }
  po::notify(vm);
  return true;
}

std::vector<int> parse_int_list(const std::string& s, const std::string& field) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoi(tok, &used));
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::logic_error&) {
      fail("option --" + field + ": '" + tok + "' is not an integer (expected e.g. 10,20)");
    }
  }
  if (out.empty()) fail("option --" + field + ": empty list");
  return out;
}

std::vector<double> parse_double_list(const std::string& s, const std::string& field) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stod(tok, &used));
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::logic_error&) {
      fail("option --" + field + ": '" + tok + "' is not a number (expected e.g. 0.8,0.1,0.1)");
    }
  }
  return out;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string json_metrics(const EvalResult& r) {
  std::string s = "{";
  for (auto& [k, v] : r.values) s += (s.size() > 1 ? ", \"" : "\"") + k + "\": " + json_number(v);
  return s + "}";
}

std::string human_time(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) % 3600 / 60);
  return buf;
}

std::string human_rate(double r) {
  char buf[32];
  if (r >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", r / 1e6);
  else if (r >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", r / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", r);
  return buf;
}

// A readable table of metrics: one row per metric family, one column per cutoff.
void print_metrics(const char* split, const EvalResult& r) {
  std::map<std::string, std::vector<std::pair<std::string, double>>> rows;
  for (auto& [k, v] : r.values) {
    const auto at = k.find('@');
    rows[at == std::string::npos ? k : k.substr(0, at)].push_back({k, v});
  }
  std::printf("%s (%lld users):\n", split, (long long)r.users);
  for (auto& [fam, cols] : rows) {
    std::printf("  ");
    for (auto& [k, v] : cols) std::printf("%-14s %.4f   ", k.c_str(), v);
    std::printf("\n");
  }
}

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
std::string memory_report(const MFModel& m, const io::DataShard& data, dist::Comm& comm) {
  struct rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double tables = 0, opt = 0, slices = 0;
  for (const auto* t : {&m.user, &m.item}) {
    tables += t->local_data().size() * sizeof(float);
    opt += t->optimizer().state_bytes();
  }
  for (const auto& s : data.split)
    slices += s.item.size() * sizeof(int32_t) + s.ptr.size() * sizeof(int64_t) + s.rating.size() * sizeof(float);
  const double mib = 1024.0 * 1024.0;
  std::vector<double> mine = {ru.ru_maxrss / 1024.0, tables / mib, opt / mib, slices / mib};
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

// One training at a time per run directory: a second one would interleave metrics.jsonl lines
// and race on params.h5. The lock is a file created exclusively and removed on exit.
class RunDirLock {
 public:
  explicit RunDirLock(const std::string& dir) : path_(dir + "/.lock") {
    int fd = ::open(path_.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0 && errno != EEXIST)  // read-only, no space, no permission: before any training
      fail("run directory " + dir + ": files cannot be written there (" + std::strerror(errno) + ")");
    if (fd < 0 && stale()) {  // its training died (SIGKILL, node failure): a resume takes over
      std::remove(path_.c_str());
      fd = ::open(path_.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    }
    if (fd < 0) {
      std::string owner;
      std::ifstream(path_) >> owner;
      fail("run directory " + dir + " is in use by another training (pid " + (owner.empty() ? "?" : owner) +
           "); if that process is gone, remove " + path_);
    }
    const std::string pid = std::to_string(::getpid()) + " " + host() + "\n";
    if (::write(fd, pid.data(), pid.size()) < 0) { /* the pid is informative only */ }
    ::close(fd);
  }
  ~RunDirLock() { std::remove(path_.c_str()); }
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  std::string path_;
  static std::string host() {
    char h[256] = {0};
    ::gethostname(h, sizeof h - 1);
    return h;
  }
  // A lock left by a process of this host that has exited: it no longer exists, or it is a zombie
  // (killed, not yet reaped: its parent died with it, as mpirun does under SIGKILL).
  bool stale() const {
    long pid = 0;
    std::string h;
    std::ifstream(path_) >> pid >> h;
    if (pid <= 0 || h != host()) return false;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(pid) + "/stat"), stat);
    const size_t comm_end = stat.rfind(')');  // "pid (comm) state ...": comm may hold spaces
    return comm_end != std::string::npos && comm_end + 2 < stat.size() && stat[comm_end + 2] == 'Z';
  }
};

// Set by SIGUSR1 (SLURM's warning before the time limit, sbatch --signal): the training loop
// checks it at every step boundary, writes a checkpoint and exits with kExitRequeue. A signal
// handler can only reach a global.
volatile std::sig_atomic_t g_checkpoint_signal = 0;
extern "C" void on_checkpoint_signal(int) { g_checkpoint_signal = 1; }
constexpr int kExitRequeue = 75;  // EX_TEMPFAIL: checkpointed before a limit; requeue to go on

// Fails before training when dir cannot hold `bytes` more.
void check_free_space(const std::string& dir, double bytes, const std::string& what) {
  struct statvfs sv{};
  if (::statvfs(dir.c_str(), &sv) != 0) fail("run directory " + dir + ": " + std::strerror(errno));
  const double avail = static_cast<double>(sv.f_bavail) * static_cast<double>(sv.f_frsize);
  if (avail < bytes) {
    char buf[256];
    std::snprintf(buf, sizeof buf, ": %.1f MiB free, training needs about %.1f MiB (%s)", avail / 1048576.0,
                  bytes / 1048576.0, what.c_str());
    fail("run directory " + dir + buf + "; free space, or use fewer --keep-checkpoints");
  }
}

// Writes text to path through a temporary name.
void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) fail(path + ": cannot be written");
    out << text;
    if (!out.flush()) fail(path + ": write failed (disk full?)");
  }
  fs::rename(tmp, path);
}

// SIGUSR1 -> g_checkpoint_signal, when checkpoints can be written. Installed before MPI starts
// (an early signal, a job started close to its limit, is kept for the first step boundary instead
// of ending the process) and again once MPI runs: its start-up may put its own SIGUSR1 handler in
// place of ours (a singleton whose PMIx differs from the build's did, on the GPU machine).
void install_checkpoint_signal(const TrainConfig& c) {
  if (!c.run_dir.empty()) std::signal(SIGUSR1, on_checkpoint_signal);
}

// Rank 0: creates and locks the run directory, failing before any training when it cannot be
// written; a fresh run (not a resume) starts config.ini and metrics.jsonl.
std::unique_ptr<RunDirLock> open_run_dir(const TrainConfig& c, bool root, bool resuming) {
  if (c.run_dir.empty() || !root) return nullptr;
  std::error_code ec;
  fs::create_directories(c.run_dir, ec);
  if (ec) fail("run directory " + c.run_dir + ": " + ec.message());
  auto lock = std::make_unique<RunDirLock>(c.run_dir);
  // Probe: a directory that exists but cannot take files fails here, not after training.
  try {
    write_text(c.run_dir + "/.write-test", "");
  } catch (const std::exception&) {
    fail("run directory " + c.run_dir + ": files cannot be written there (read-only or full?)");
  }
  std::remove((c.run_dir + "/.write-test").c_str());
  // A resume rewrites them once the checkpoint has been accepted (setup_checkpoints).
  if (!resuming) {
    write_text(c.run_dir + "/config.ini", c.to_ini());
    write_text(c.run_dir + "/metrics.jsonl", "");
  }
  return lock;
}

// About what params.h5 takes: the tables and `dense` more floats, with room for HDF5's overhead.
double params_file_bytes(const dist::ShardedEmbedding& user, const dist::ShardedEmbedding& item, size_t dense) {
  return static_cast<double>(user.rows() * user.dim() + item.rows() * item.dim() + static_cast<int64_t>(dense)) *
         4 * 1.5;
}

// With a run directory: checks the free space, resumes from a checkpoint (--resume) and installs
// the step hook that writes checkpoints (--checkpoint-every, SIGUSR1). TrainerT is Trainer or
// PointwiseTrainer; `params_bytes` is what params.h5 will take.
template <class TrainerT>
std::unique_ptr<io::Checkpointer> setup_checkpoints(TrainerT& trainer, const TrainConfig& c, io::CheckpointPolicy ckpt,
                                                    const std::string& resume, double params_bytes, bool quiet,
                                                    dist::Comm& comm) {
  if (c.run_dir.empty()) return nullptr;
  const bool root = comm.rank() == 0;
  // Before training: the disk must hold the checkpoints (and the one being written) and params.h5.
  const double ck = static_cast<double>(checkpoint_bytes(trainer, comm));
  const bool periodic = ckpt.every_steps > 0 || ckpt.every_minutes > 0;
  if (root)
    check_free_space(c.run_dir, (periodic ? ckpt.keep + 1 : 1) * ck + params_bytes,
                     periodic ? std::to_string(ckpt.keep + 1) + " checkpoints and params.h5"
                              : "a checkpoint on SIGUSR1 and params.h5");
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
    write_text(c.run_dir + "/config.ini", c.to_ini());
    // metrics.jsonl keeps the lines of the epochs the checkpoint had completed.
    std::ifstream in(c.run_dir + "/metrics.jsonl");
    std::string line, kept;
    for (int e = 0; e < trainer.progress().epochs_done && std::getline(in, line); ++e) kept += line + "\n";
    write_text(c.run_dir + "/metrics.jsonl", kept);
  }
  ckpt.signal_flag = &g_checkpoint_signal;
  auto checkpointer = std::make_unique<io::Checkpointer>(ckpt, comm);
  checkpoint_steps(trainer, *checkpointer);
  return checkpointer;
}

// After fit() was interrupted by SIGUSR1: the checkpoint is written; the exit code asks to requeue.
template <class TrainerT>
int requeue_exit(TrainerT& trainer, const io::Checkpointer& checkpointer, bool root) {
  if (root) {
    const auto& p = trainer.progress();
    std::printf("stopped by SIGUSR1 at epoch %d step %lld: checkpoint %s written; exit %d (requeue and "
                "run again with --resume auto to continue)\n",
                p.epoch, (long long)trainer.global_step() - (long long)(p.epoch - 1) * trainer.steps_per_epoch(),
                checkpointer.last_written().c_str(), kExitRequeue);
  }
  std::fflush(stdout);
  return kExitRequeue;
}

// Runs an MPI command body. An error on one rank ends the whole job (MPI_Abort) so that no rank
// waits forever in a collective; a single rank just reports it.
int run_mpi(const std::function<int(dist::Comm&)>& body, int argc, char** argv) {
  dist::MpiEnv env(&argc, &argv);
  dist::MpiComm comm;
  try {
    return body(comm);
  } catch (const std::exception& e) {
    if (comm.size() == 1) throw;
    std::fprintf(stderr, "error (rank %d of %d): %s\n", comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    dist::MpiEnv::abort(1);
    return 1;
  }
}

void add_eval_options(po::options_description& d) {
  d.add_options()("ks", po::value<std::string>()->default_value("10,20"), "cutoffs K of the ranking metrics")(
      "mask-valid", po::value<bool>()->default_value(true),
      "when ranking test items, also exclude the user's validation items (RecBole's protocol)")(
      "pointwise", po::value<bool>()->default_value(true),
      "also compute AUC, GAUC and log loss on positives + one sampled negative each")(
      "eval-seed", po::value<uint64_t>()->default_value(2024), "seed of the pointwise negatives")(
      "score-budget", po::value<int64_t>()->default_value(1 << 24),
      "scores held at once per rank during full ranking (memory = 4 bytes each)")(
      "eval-device", po::value<std::string>()->default_value("cpu"),
      "where full ranking scores the item shards: cpu, or cuda (the same lists)")(
      "gauc-impressions", po::value<bool>()->default_value(false),
      "gmf/neumf (labeled protocol): weight each user's AUC in GAUC by the user's rows");
}

EvalConfig eval_config(const po::variables_map& vm) {
  EvalConfig e;
  e.ks = parse_int_list(vm["ks"].as<std::string>(), "ks");
  for (int k : e.ks)
    if (k < 1) fail("option --ks: cutoffs must be >= 1");
  e.mask_valid_in_test = vm["mask-valid"].as<bool>();
  e.pointwise = vm["pointwise"].as<bool>();
  e.seed = vm["eval-seed"].as<uint64_t>();
  e.score_budget = vm["score-budget"].as<int64_t>();
  e.gauc_impressions = vm["gauc-impressions"].as<bool>();
  if (e.score_budget < 1) fail("option --score-budget: must be positive");
  e.device = resolve_device(vm["eval-device"].as<std::string>());
  return e;
}

}  // namespace

namespace {
// The dense parameters of a model, for export and load.
std::vector<io::DenseParam> dense_params(MFModel& m) {
  if (!m.vbpr()) return {};
  return {{"W", m.item_dim(), m.feat_dim(), &m.W}, {"b", m.item_dim(), 0, &m.b}};
}

void save_params(const std::string& path, const TrainConfig& c, MFModel& m, dist::Comm& comm) {
  io::export_tables(path, {&m.user, &m.item}, {"user", "item"}, c.data, comm, 1 << 16, dense_params(m),
                    {{"model", c.model}, {"features", c.features}});
}

// Model type, features and width from a parameters file (written by save_params).
void read_model_config(const std::string& params, TrainConfig& c) {
  auto f = io::H5File::open_read(params);
  if (!f.exists("/item/embedding")) fail(params + ": no /item/embedding (not a shardrec parameters file?)");
  c.dim = static_cast<int>(f.shape("/item/embedding").at(1));
  c.model = "mf";
  try {
    c.model = f.read_attr_str("/", "model");
    c.features = f.read_attr_str("/", "features");
  } catch (const Error&) {
    // files without the attributes hold MF parameters
  }
}

// A model shaped like the parameters file, sharded over this job's ranks.
struct LoadedModel {
  TrainConfig cfg;
  io::DataShard data;
  std::unique_ptr<MFModel> model;
};
LoadedModel load_model(const std::string& data_path, const std::string& params,
                       const std::string& item_sharding, dist::Comm& comm) {
  LoadedModel m;
  m.data = io::load_shard(data_path, comm);
  m.cfg.data = data_path;
  read_model_config(params, m.cfg);
  m.cfg.item_sharding = item_sharding;
  m.model = std::make_unique<MFModel>(m.cfg, m.data.users, m.data.info.num_items, comm.rank(), data_path);
  io::load_tables(params, {&m.model->user, &m.model->item}, dense_params(*m.model));
  return m;
}
}  // namespace

namespace {
// ---- Pointwise models (gmf, neumf) on labeled data: Inverse Learning ------------------------------

void save_pointwise(const std::string& path, const TrainConfig& c, NcfModel& m, dist::Comm& comm) {
  io::export_tables(path, {&m.user, &m.item}, {"user", "item"}, c.data, comm, 1 << 16,
                    {{"ncf", static_cast<int64_t>(m.dense.size()), 0, &m.dense}},
                    {{"model", c.model}, {"features", ""}, {"dim", std::to_string(c.dim)},
                     {"mlp_layers", std::to_string(c.mlp_layers)}});
}

// One epoch's line of RUN_DIR/metrics.jsonl (rank 0; nothing without a run directory).
void append_metrics_line(const TrainConfig& c, const std::string& line) {
  if (c.run_dir.empty()) return;
  std::ofstream out(c.run_dir + "/metrics.jsonl", std::ios::app);
  out << line;
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

int train_pointwise(const TrainConfig& c, bool quiet, bool final_eval, const io::CheckpointPolicy& ckpt,
                    const std::string& resume, int argc, char** argv) {
  return run_mpi(
      [&](dist::Comm& comm) {
        install_checkpoint_signal(c);
        const bool root = comm.rank() == 0;
        const auto lock = open_run_dir(c, root, !resume.empty());
        const auto data = io::load_shard(c.data, comm);
        if (root && !quiet)
          std::printf("data %s: %lld users, %lld items, %lld labeled train rows on %d rank(s); %s %s %s dim %d\n",
                      c.data.c_str(), (long long)data.info.num_users, (long long)data.info.num_items,
                      (long long)data.info.rows[0], comm.size(), c.model.c_str(), c.loss.c_str(),
                      c.strategy.c_str(), c.dim);
        PointwiseTrainer trainer(c, data, comm);
        if (root && !quiet && !trainer.device_name().empty())
          std::printf("device %s\n", trainer.device_name().c_str());
        const auto checkpointer = setup_checkpoints(
            trainer, c, ckpt, resume,
            params_file_bytes(trainer.model().user, trainer.model().item, trainer.model().dense.size()), quiet, comm);
        auto res = trainer.fit([&](const EpochLog& e) {
          if (!root) return;
          std::string line = "{\"epoch\": " + std::to_string(e.epoch) + ", \"loss\": " + json_number(e.loss) +
                             ", \"seconds\": " + json_number(e.seconds);
          if (c.strategy == "ig") line += ", \"ig\": " + ig_json(trainer.ig_stats());
          if (e.validated) line += ", \"valid\": " + json_metrics(e.valid);
          append_metrics_line(c, line + "}\n");
          if (quiet) return;
          std::printf("epoch %d/%d  loss %.5f  %.1fs", e.epoch, c.epochs, e.loss, e.seconds);
          print_valid(c, e);
          if (c.strategy == "ig")
            std::printf("  ig f/i/m %lld/%lld/%lld", (long long)trainer.ig_stats().forward,
                        (long long)trainer.ig_stats().inverse, (long long)trainer.ig_stats().mid);
          std::printf("\n");
          std::fflush(stdout);
        });
        if (res.interrupted) return requeue_exit(trainer, *checkpointer, root);
        EvalResult valid, test;
        if (final_eval) {
          valid = trainer.evaluate(1);
          test = trainer.evaluate(2);
        }
        double secs = 0;
        for (const auto& e : res.epochs) secs += e.seconds;
        const double per_epoch = res.epochs.empty() ? 0 : secs / static_cast<double>(res.epochs.size());
        if (root) {
          char extra[64];
          std::snprintf(extra, sizeof extra, "; %.2fs per epoch", per_epoch);
          print_final(res.best_epoch, res.stopped_early, extra, final_eval, valid, test);
        }
        if (!c.run_dir.empty()) {
          save_pointwise(c.run_dir + "/params.h5", c, trainer.model(), comm);
          if (root)
            write_text(c.run_dir + "/result.json",
                       "{\"best_epoch\": " + std::to_string(res.best_epoch) + ", \"epochs_run\": " +
                           std::to_string(trainer.progress().epochs_done) + ", \"ranks\": " + std::to_string(comm.size()) +
                           ", \"seconds_per_epoch\": " + json_number(per_epoch) +
                           (c.strategy == "ig" ? ", \"ig\": " + ig_json(trainer.ig_stats()) : std::string()) +
                           ", \"valid\": " + json_metrics(valid) + ", \"test\": " + json_metrics(test) + "}\n");
        }
        return 0;
      },
      argc, argv);
}

// shardrec eval for gmf/neumf parameters: the labeled protocol.
int eval_pointwise(const std::string& data_path, const std::string& params, const std::string& split,
                   const EvalConfig& ec, const std::string& out, int argc, char** argv) {
  return run_mpi(
      [&](dist::Comm& comm) {
        TrainConfig c;
        c.data = data_path;
        c.eval = ec;
        {
          auto f = io::H5File::open_read(params);
          c.model = f.read_attr_str("/", "model");
          c.dim = std::stoi(f.read_attr_str("/", "dim"));
          c.mlp_layers = std::stoi(f.read_attr_str("/", "mlp_layers"));
        }
        c.loss = "bce";
        c.eval_every = 0;
        const auto data = io::load_shard(data_path, comm);
        PointwiseTrainer t(c, data, comm);
        io::load_tables(params, {&t.model().user, &t.model().item},
                        {{"ncf", static_cast<int64_t>(t.model().dense.size()), 0, &t.model().dense}});
        const auto r = t.evaluate(split == "valid" ? 1 : 2);
        if (comm.rank() == 0) {
          print_metrics(split.c_str(), r);
          if (!out.empty()) write_text(out, json_metrics(r) + "\n");
        }
        return 0;
      },
      argc, argv);
}

bool is_pointwise_params(const std::string& params) {
  try {
    auto f = io::H5File::open_read(params);
    const std::string m = f.read_attr_str("/", "model");
    return m == "gmf" || m == "neumf";
  } catch (const Error&) {
    return false;
  }
}
}  // namespace

int cmd_prep(int argc, char** argv) {
  po::options_description d("shardrec prep options");
  d.add_options()("input,i", po::value<std::vector<std::string>>()->multitoken(),
                  "input file(s); with --split presplit: train [valid [test]]")(
      "out,o", po::value<std::string>()->required(), "output dataset (.h5)")(
      "format", po::value<std::string>()->default_value("csv"),
      "ml-dat (ratings.dat, '::'), ml-udata (u.data, tab), recbole (.inter), csv, adjacency, json")(
      "sep", po::value<std::string>()->default_value(","), "csv: separator (a character, 'tab' or 'space')")(
      "header", po::value<bool>()->default_value(false), "csv: the first line names the columns")(
      "user-col", po::value<std::string>()->default_value(""), "user column (index or header name)")(
      "item-col", po::value<std::string>()->default_value(""), "item column")(
      "rating-col", po::value<std::string>()->default_value(""), "rating column")(
      "time-col", po::value<std::string>()->default_value(""), "timestamp column")(
      "split", po::value<std::string>()->default_value("ratio"), "ratio, loo (leave-one-out by time) or presplit")(
      "ratios", po::value<std::string>()->default_value("0.8,0.1,0.1"), "ratio split: train,valid,test")(
      "seed", po::value<uint64_t>()->default_value(2020), "seed of the ratio split")(
      "threshold", po::value<double>(), "keep rows with rating >= this (implicit feedback)")(
      "label-threshold", po::value<double>(),
      "labeled rows (gmf/neumf): keep every row, label = rating > this (Inverse Learning: 2)")(
      "rating-range", po::value<std::string>(), "ratings must lie in LO:HI (e.g. 1:5)")(
      "dedup", po::value<bool>()->default_value(true), "drop repeated (user, item) pairs")(
      "user-core", po::value<int64_t>()->default_value(0), "k-core: minimum rows per user")(
      "item-core", po::value<int64_t>()->default_value(0), "k-core: minimum rows per item")(
      "features", po::value<std::vector<std::string>>()->multitoken(),
      "item features, repeatable: NAME=PATH (.npy, .csv, .tsv, .h5), NAME=PATH:FORMAT or "
      "NAME=PATH:recbole:COLUMN (multi-hot from a RecBole .item file)")(
      "features-unknown", po::value<std::string>()->default_value("error"),
      "feature rows of raw item ids the dataset lacks (e.g. removed by k-core): error or skip");
  po::variables_map vm;
  if (!parse(argc, argv, "usage: shardrec prep --input FILE... --out DATA.h5 [options]", d, vm)) return 0;
  io::PrepOptions o;
  if (!vm.count("input")) fail("option --input: at least one input file is required");
  o.inputs = vm["input"].as<std::vector<std::string>>();
  o.format = io::parse_format(vm["format"].as<std::string>());
  o.separator = io::parse_separator(vm["sep"].as<std::string>());
  o.header = vm["header"].as<bool>();
  o.user_column = vm["user-col"].as<std::string>();
  o.item_column = vm["item-col"].as<std::string>();
  o.rating_column = vm["rating-col"].as<std::string>();
  o.timestamp_column = vm["time-col"].as<std::string>();
  o.split = io::parse_split_mode(vm["split"].as<std::string>());
  o.ratios = parse_double_list(vm["ratios"].as<std::string>(), "ratios");
  o.seed = vm["seed"].as<uint64_t>();
  if (vm.count("threshold")) o.rating_threshold = vm["threshold"].as<double>();
  if (vm.count("label-threshold")) o.label_threshold = vm["label-threshold"].as<double>();
  if (vm.count("rating-range")) {
    std::string spec = vm["rating-range"].as<std::string>();
    std::replace(spec.begin(), spec.end(), ':', ',');
    const auto r = parse_double_list(spec, "rating-range");
    if (r.size() != 2) fail("option --rating-range: expected LO:HI, e.g. 1:5");
    o.rating_range = std::make_pair(r[0], r[1]);
  }
  o.dedup = vm["dedup"].as<bool>();
  o.user_core = vm["user-core"].as<int64_t>();
  o.item_core = vm["item-core"].as<int64_t>();
  // Specs are checked before the (slow) preparation, so a typo fails at once.
  std::vector<io::FeatureSpec> features;
  if (vm.count("features"))
    for (const auto& text : vm["features"].as<std::vector<std::string>>()) {
      try {
        features.push_back(io::parse_feature_spec(text));
      } catch (const Error& e) {
        fail(std::string("option --features: ") + e.what());
      }
      for (size_t k = 0; k + 1 < features.size(); ++k)
        if (features[k].name == features.back().name)
          fail("option --features: modality '" + features.back().name + "' is given twice");
    }
  const std::string unknown = vm["features-unknown"].as<std::string>();
  if (unknown != "error" && unknown != "skip")
    fail("option --features-unknown: '" + unknown + "': expected error or skip");
  for (auto& spec : features) spec.unknown = unknown == "skip" ? io::UnknownIds::kSkip : io::UnknownIds::kError;
  io::PrepReport rep;
  const auto data = io::prepare(o, &rep);
  const std::string out = vm["out"].as<std::string>();
  std::string source = "shardrec prep --format " + vm["format"].as<std::string>();
  for (auto& f : o.inputs) source += " " + f;
  // Modalities are built one at a time (one matrix in memory) inside the atomic write, so a bad
  // feature file leaves no dataset behind.
  io::write_dataset(data, out, source, [&](io::H5File& f) {
    for (const auto& spec : features) {
      int64_t fill = 0, dim = 0, skipped = 0;
      const auto values = io::build_modality(spec, data.item_raw, &fill, &dim, &skipped);
      if (skipped > 0)
        std::fprintf(stderr, "warning: modality %s: skipped %lld rows whose raw item id is not in the dataset\n",
                     spec.name.c_str(), (long long)skipped);
      if (fill > 0)
        std::fprintf(stderr, "warning: modality %s: %lld of %lld items had no row and got the mean\n",
                     spec.name.c_str(), (long long)fill, (long long)data.num_items());
      io::write_modality(f, spec.name, values, data.num_items(), dim, fill, spec.describe());
      std::printf("modality %s: %lld x %lld from %s\n", spec.name.c_str(),
                  (long long)data.num_items(), (long long)dim, spec.describe().c_str());
    }
  });
  std::printf("read %lld rows; after threshold %lld, dedup %lld, k-core %lld\n",
              (long long)rep.rows_read, (long long)rep.after_threshold, (long long)rep.after_dedup,
              (long long)rep.after_kcore);
  std::printf("wrote %s: %lld users, %lld items, train %zu, valid %zu, test %zu\n", out.c_str(),
              (long long)data.num_users(), (long long)data.num_items(), data.train.size(),
              data.valid.size(), data.test.size());
  if (o.label_threshold) {
    int64_t pos[3] = {0, 0, 0};
    const io::Interactions* parts[3] = {&data.train, &data.valid, &data.test};
    for (int k = 0; k < 3; ++k)
      for (float r : parts[k]->rating) pos[k] += r > *o.label_threshold;
    std::printf("labels (rating > %g): positive train %lld/%zu, valid %lld/%zu, test %lld/%zu\n",
                *o.label_threshold, (long long)pos[0], data.train.size(), (long long)pos[1],
                data.valid.size(), (long long)pos[2], data.test.size());
  }
  return 0;
}

int cmd_synth(int argc, char** argv) {
  po::options_description d("shardrec synth options");
  io::SynthConfig c;
  d.add_options()("out,o", po::value<std::string>()->required(), "output dataset (.h5)")(
      "users", po::value<int64_t>(&c.users)->default_value(c.users), "number of users")(
      "items", po::value<int64_t>(&c.items)->default_value(c.items), "number of items")(
      "interactions", po::value<int64_t>(&c.interactions)->default_value(c.interactions),
      "expected number of interactions")(
      "zipf", po::value<double>(&c.zipf)->default_value(c.zipf), "popularity exponent")(
      "activity-sigma", po::value<double>(&c.activity_sigma)->default_value(c.activity_sigma),
      "log-normal spread of user activity")(
      "min-per-user", po::value<int64_t>(&c.min_per_user)->default_value(c.min_per_user), "fewest rows per user")(
      "clusters", po::value<int>(&c.clusters)->default_value(c.clusters), "planted user/item groups")(
      "affinity", po::value<double>(&c.affinity)->default_value(c.affinity),
      "probability that a draw comes from the user's group")(
      "valid", po::value<double>(&c.valid)->default_value(c.valid), "valid fraction per user")(
      "test", po::value<double>(&c.test)->default_value(c.test), "test fraction per user")(
      "seed", po::value<uint64_t>(&c.seed)->default_value(c.seed), "seed");
  po::variables_map vm;
  if (!parse(argc, argv, "usage: shardrec synth --out DATA.h5 [options]", d, vm)) return 0;
  const std::string out = vm["out"].as<std::string>();
  const auto t0 = std::chrono::steady_clock::now();
  const auto st = io::synthesize(c, out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %lld users, %lld items, train %lld, valid %lld, test %lld (%.1fs)\n",
              out.c_str(), (long long)c.users, (long long)c.items, (long long)st.rows[0],
              (long long)st.rows[1], (long long)st.rows[2], secs);
  return 0;
}

int cmd_train(int argc, char** argv) {
  po::options_description d("shardrec train options");
  TrainConfig c;
  std::string optimizer, init;
  d.add_options()("data", po::value<std::string>(&c.data)->required(), "dataset (.h5)")(
      "run-dir", po::value<std::string>(&c.run_dir)->default_value(""),
      "directory for config.ini, metrics.jsonl, result.json and params.h5")(
      "model", po::value<std::string>(&c.model)->default_value(c.model), "mf, vbpr (needs --features), gmf or neumf (labeled data)")(
      "features", po::value<std::string>(&c.features)->default_value(""),
      "vbpr: the dataset's item modalities to use, comma separated (shardrec prep --features)")(
      "dim", po::value<int>(&c.dim)->default_value(c.dim), "embedding size")(
      "loss", po::value<std::string>(&c.loss)->default_value(c.loss), "bpr or bce; gmf/neumf: bce (labeled rows), idl (+ inverse dual loss on unlabeled draws) or bce-neg (draws as negatives)")(
      "negatives", po::value<int>(&c.negatives)->default_value(c.negatives), "negatives per positive")(
      "batch", po::value<int64_t>(&c.batch)->default_value(c.batch), "global batch size (any number of ranks)")(
      "epochs", po::value<int>(&c.epochs)->default_value(c.epochs), "maximum epochs")(
      "seed", po::value<uint64_t>(&c.seed)->default_value(c.seed), "seed of init, shuffle and negatives")(
      "optimizer", po::value<std::string>(&optimizer)->default_value("adam_dense"),
      "sgd, adagrad (row-wise), adam (lazy) or adam_dense (every row, every step)")(
      "lr", po::value<float>(&c.opt.lr)->default_value(c.opt.lr), "learning rate")(
      "beta1", po::value<float>(&c.opt.beta1)->default_value(c.opt.beta1), "Adam beta1")(
      "beta2", po::value<float>(&c.opt.beta2)->default_value(c.opt.beta2), "Adam beta2")(
      "eps", po::value<float>(&c.opt.eps)->default_value(c.opt.eps), "Adam/Adagrad epsilon")(
      "weight-decay", po::value<float>(&c.opt.weight_decay)->default_value(0.0f),
      "L2 added to the gradient of updated rows (PyTorch's weight_decay)")(
      "l2", po::value<float>(&c.l2)->default_value(0.0f), "L2 regularisation of the batch's embeddings")(
      "init", po::value<std::string>(&init)->default_value("xavier_normal"), "normal, xavier_normal or uniform")(
      "init-scale", po::value<double>(&c.init.scale)->default_value(0.01), "std (normal) or half-width (uniform)")(
      "item-sharding", po::value<std::string>(&c.item_sharding)->default_value(c.item_sharding),
      "item table placement: mod, range or table:RANK")(
      "eval-every", po::value<int>(&c.eval_every)->default_value(c.eval_every), "epochs between validations (0 = none)")(
      "valid-metric", po::value<std::string>(&c.valid_metric)->default_value(c.valid_metric),
      "early-stopping metric, e.g. ndcg@10, recall@20, auc")(
      "patience", po::value<int>(&c.patience)->default_value(c.patience),
      "validations without improvement before stopping (0 = never stop early)")(
      "keep-best", po::value<bool>(&c.keep_best)->default_value(true),
      "end with the best validated parameters")(
      "strategy", po::value<std::string>(&c.strategy)->default_value(c.strategy),
      "plain, or mirror (Mirror Gradient: on every mg-beta-th batch a step on mg-alpha1 * L, then on -mg-alpha2 * L at the updated parameters); gmf/neumf: plain or ig (Inverse Gradient)")(
      "mg-alpha1", po::value<float>(&c.mg_alpha1)->default_value(c.mg_alpha1), "Mirror Gradient: descent scale")(
      "mg-alpha2", po::value<float>(&c.mg_alpha2)->default_value(c.mg_alpha2), "Mirror Gradient: mirror (ascent) scale")(
      "mg-beta", po::value<int>(&c.mg_beta)->default_value(c.mg_beta), "Mirror Gradient: interval in batches")(
      "device", po::value<std::string>(&c.device)->default_value(c.device),
      "cpu (the reference), cuda (one GPU per rank: the node-local rank picks it), or auto (cuda when a GPU is visible)")(
      "gpu-comm", po::value<std::string>(&c.gpu_comm)->default_value(c.gpu_comm),
      "GPU exchange: auto (NCCL when every rank has its own GPU), nccl, or host (staged through MPI)")(
      "mlp-layers", po::value<int>(&c.mlp_layers)->default_value(c.mlp_layers),
      "neumf: MLP layers (widths 2*dim*2^(L-1) -> ... -> dim)")(
      "label-threshold", po::value<double>(&c.label_threshold)->default_value(c.label_threshold),
      "gmf/neumf: label = rating > this when the dataset records no threshold")(
      "il-unlabeled", po::value<int>(&c.il_unlabeled)->default_value(c.il_unlabeled),
      "gmf/neumf with idl or ig: unlabeled rows drawn per labeled row each epoch")(
      "ig-sample-lr", po::value<float>(&c.ig_sample_lr)->default_value(c.ig_sample_lr),
      "Inverse Gradient: rate of the forward/inverse candidate steps")(
      "ig-train-ratio", po::value<float>(&c.ig_train_ratio)->default_value(c.ig_train_ratio),
      "Inverse Gradient: share of labeled rows in training-train (the rest drive the meta-steps)")(
      "il-reference", po::value<bool>(&c.il_reference)->default_value(false)->implicit_value(true),
      "Inverse Gradient: reproduce the reference code's optimizer quirks (fresh Adam per candidate, "
      "re-created main Adam, candidate gradient kept for the main step)")(
      "final-eval", po::value<bool>()->default_value(true),
      "evaluate valid and test at the end (full ranking over all items)")(
      "quiet", po::value<bool>()->default_value(false)->implicit_value(true), "no progress lines")(
      "checkpoint-every", po::value<std::string>()->default_value(""),
      "write a checkpoint to RUN_DIR/checkpoints every N steps (e.g. 500) or minutes (e.g. 30m); "
      "SIGUSR1 also writes one and stops with exit code 75 (requeue)")(
      "keep-checkpoints", po::value<int>()->default_value(3), "keep the newest K checkpoints")(
      "resume", po::value<std::string>()->default_value(""),
      "continue from a checkpoint: latest (the newest in RUN_DIR/checkpoints), auto (latest if "
      "there is one, else start afresh) or a checkpoint file");
  add_eval_options(d);
  po::variables_map vm;
  if (!parse(argc, argv, "usage: [mpirun -np N] shardrec train --data DATA.h5 [options]", d, vm)) return 0;
  io::CheckpointPolicy ckpt;
  if (!vm["checkpoint-every"].as<std::string>().empty())
    io::parse_checkpoint_every(vm["checkpoint-every"].as<std::string>(), &ckpt.every_steps, &ckpt.every_minutes);
  ckpt.keep = vm["keep-checkpoints"].as<int>();
  if (ckpt.keep < 1) fail("option --keep-checkpoints: must be at least 1");
  const std::string resume = vm["resume"].as<std::string>();
  if (c.run_dir.empty() && (ckpt.every_steps > 0 || ckpt.every_minutes > 0 || !resume.empty()))
    fail(std::string("option --") + (resume.empty() ? "checkpoint-every" : "resume") +
         ": needs --run-dir (checkpoints live in RUN_DIR/checkpoints)");
  if (!c.run_dir.empty()) ckpt.dir = c.run_dir + "/checkpoints";
  install_checkpoint_signal(c);
  c.opt.kind = OptimizerConfig::parse_kind(optimizer);
  c.init.kind = dist::InitSpec::parse(init);
  c.eval = eval_config(vm);
  // A model that trains on labeled rows: its loss defaults to BCE.
  if (c.pointwise_model() && vm["loss"].defaulted()) c.loss = "bce";
  c.validate();
  c.device = resolve_device(c.device);
  // Checkpoints work on the GPU backend too (the trainers copy the device state for them).
  const bool quiet = vm["quiet"].as<bool>();
  if (c.pointwise_model()) return train_pointwise(c, quiet, vm["final-eval"].as<bool>(), ckpt, resume, argc, argv);
  return run_mpi(
      [&](dist::Comm& comm) {
        install_checkpoint_signal(c);
        const bool root = comm.rank() == 0;
        const auto lock = open_run_dir(c, root, !resume.empty());
        const auto data = io::load_shard(c.data, comm);
        if (root && !quiet)
          std::printf("data %s: %lld users, %lld items, %lld train rows on %d rank(s); %s %s dim %d\n",
                      c.data.c_str(), (long long)data.info.num_users, (long long)data.info.num_items,
                      (long long)data.info.rows[0], comm.size(), c.model.c_str(), c.loss.c_str(), c.dim);
        Trainer trainer(c, data, comm);
        if (root && !quiet && !trainer.device_name().empty())
          std::printf("device %s\n", trainer.device_name().c_str());
        const auto checkpointer = setup_checkpoints(
            trainer, c, ckpt, resume, params_file_bytes(trainer.model().user, trainer.model().item, 0), quiet, comm);
        auto res = trainer.fit([&](const EpochLog& e) {
          if (!root) return;
          std::string line = "{\"epoch\": " + std::to_string(e.epoch) + ", \"loss\": " + json_number(e.loss) +
                             ", \"seconds\": " + json_number(e.seconds) +
                             ", \"samples_per_s\": " + json_number(e.samples_per_s);
          if (e.validated) line += ", \"valid\": " + json_metrics(e.valid);
          append_metrics_line(c, line + "}\n");
          if (quiet) return;
          std::printf("epoch %d/%d  loss %.5f  %s samples/s  %.1fs", e.epoch, c.epochs, e.loss,
                      human_rate(e.samples_per_s).c_str(), e.seconds);
          print_valid(c, e);
          std::printf("  eta %s\n", human_time(e.eta_seconds).c_str());
          std::fflush(stdout);
        });
        if (res.interrupted) return requeue_exit(trainer, *checkpointer, root);
        EvalResult valid, test;
        const bool final_eval = vm["final-eval"].as<bool>();
        if (final_eval) {
          valid = evaluate(trainer.model(), data, 1, c.eval, comm);
          test = evaluate(trainer.model(), data, 2, c.eval, comm);
        }
        const std::string memory = memory_report(trainer.model(), data, comm);
        if (root) print_final(res.best_epoch, res.stopped_early, "", final_eval, valid, test);
        if (!c.run_dir.empty()) {
          save_params(c.run_dir + "/params.h5", c, trainer.model(), comm);
          if (root)
            write_text(c.run_dir + "/result.json",
                       "{\"best_epoch\": " + std::to_string(res.best_epoch) + ", \"epochs_run\": " +
                           std::to_string(trainer.progress().epochs_done) + ", \"ranks\": " + std::to_string(comm.size()) +
                           ", \"valid\": " + json_metrics(valid) + ", \"test\": " + json_metrics(test) +
                           ", \"memory\": " + memory + "}\n");
        }
        return 0;
      },
      argc, argv);
}

int cmd_eval(int argc, char** argv) {
  po::options_description d("shardrec eval options");
  d.add_options()("data", po::value<std::string>()->required(), "dataset (.h5)")(
      "params", po::value<std::string>()->required(), "parameters (params.h5 of a run, or an export)")(
      "split", po::value<std::string>()->default_value("test"), "valid or test")(
      "out", po::value<std::string>()->default_value(""), "also write the metrics as JSON here")(
      "perturb", po::value<std::vector<std::string>>()->multitoken(),
      "vbpr: also evaluate with shifted item features, e.g. noise:0.1,0.5 (Gaussian, relative to each "
      "modality's std) or adjust:0.1,0.3 (that fraction of items take another item's features)")(
      "perturb-seed", po::value<uint64_t>()->default_value(99), "seed of the perturbations");
  add_eval_options(d);
  po::variables_map vm;
  if (!parse(argc, argv, "usage: [mpirun -np N] shardrec eval --data DATA.h5 --params PARAMS.h5 [options]", d, vm))
    return 0;
  std::vector<Perturbation> shifts;
  if (vm.count("perturb"))
    for (const auto& spec : vm["perturb"].as<std::vector<std::string>>())
      for (const auto& p : parse_perturbations(spec, vm["perturb-seed"].as<uint64_t>())) shifts.push_back(p);
  const std::string split = vm["split"].as<std::string>();
  if (split != "valid" && split != "test") fail("option --split: '" + split + "': expected valid or test");
  const EvalConfig ec = eval_config(vm);
  if (is_pointwise_params(vm["params"].as<std::string>())) {
    if (!shifts.empty()) fail("option --perturb: only for vbpr parameters");
    return eval_pointwise(vm["data"].as<std::string>(), vm["params"].as<std::string>(), split, ec,
                          vm["out"].as<std::string>(), argc, argv);
  }
  return run_mpi(
      [&](dist::Comm& comm) {
        auto m = load_model(vm["data"].as<std::string>(), vm["params"].as<std::string>(), "mod", comm);
        const int sp = split == "valid" ? 1 : 2;
        const auto r = evaluate(*m.model, m.data, sp, ec, comm);
        std::string json = json_metrics(r);
        if (comm.rank() == 0) print_metrics(split.c_str(), r);
        if (!shifts.empty()) {
          // Each shift starts from the trained features; the drop is relative to the clean run.
          const auto clean = m.model->features ? m.model->features->local_data() : std::vector<float>{};
          if (comm.rank() == 0) std::printf("\nfeature shift      strength  metric        value    drop\n");
          json = "{\"clean\": " + json + ", \"shifted\": [";
          for (size_t k = 0; k < shifts.size(); ++k) {
            perturb_features(*m.model, shifts[k], comm);
            const auto q = evaluate(*m.model, m.data, sp, ec, comm);
            m.model->features->local_data() = clean;
            json += std::string(k ? ", " : "") + "{\"kind\": \"" + shifts[k].kind + "\", \"strength\": " +
                    json_number(shifts[k].strength) + ", \"metrics\": " + json_metrics(q) + "}";
            if (comm.rank() == 0)
              for (int kk : ec.ks)
                for (const char* name : {"recall", "ndcg"}) {
                  const std::string key = std::string(name) + "@" + std::to_string(kk);
                  std::printf("%-18s %8.3f  %-12s %.4f  %+.1f%%\n", shifts[k].kind.c_str(), shifts[k].strength,
                              key.c_str(), q.get(key), 100.0 * (q.get(key) / r.get(key) - 1.0));
                }
          }
          json += "]}";
        }
        if (comm.rank() == 0 && !vm["out"].as<std::string>().empty())
          write_text(vm["out"].as<std::string>(), json + "\n");
        return 0;
      },
      argc, argv);
}

int cmd_landscape(int argc, char** argv) {
  po::options_description d("shardrec landscape options");
  TrainConfig c;
  int dims = 1, steps = 21, sharp_dirs = 8;
  double radius = 1.0, sharp_radius = 0.1;
  uint64_t dir_seed = 7;
  d.add_options()("data", po::value<std::string>(&c.data)->required(), "dataset (.h5)")(
      "params", po::value<std::string>()->required(), "trained parameters (params.h5 of a run)")(
      "out,o", po::value<std::string>()->required(), "CSV of the surface (a, b, loss)")(
      "dims", po::value<int>(&dims)->default_value(dims), "1 (a line) or 2 (a grid)")(
      "steps", po::value<int>(&steps)->default_value(steps), "points per axis")(
      "radius", po::value<double>(&radius)->default_value(radius),
      "the axes run over [-radius, radius] in filter-normalised units")(
      "dir-seed", po::value<uint64_t>(&dir_seed)->default_value(dir_seed), "seed of the random directions")(
      "sharpness-dirs", po::value<int>(&sharp_dirs)->default_value(sharp_dirs), "directions for the sharpness number")(
      "sharpness-radius", po::value<double>(&sharp_radius)->default_value(sharp_radius),
      "radius of the sharpness number")(
      "loss", po::value<std::string>(&c.loss)->default_value(c.loss), "bpr or bce (as trained)")(
      "negatives", po::value<int>(&c.negatives)->default_value(c.negatives), "negatives per positive")(
      "batch", po::value<int64_t>(&c.batch)->default_value(8192), "rows per step of the loss evaluation")(
      "seed", po::value<uint64_t>(&c.seed)->default_value(c.seed), "seed of the fixed negatives");
  po::variables_map vm;
  if (!parse(argc, argv, "usage: [mpirun -np N] shardrec landscape --data DATA.h5 --params PARAMS.h5 --out SURFACE.csv [options]", d, vm))
    return 0;
  c.eval_every = 0;
  c.epochs = 0;
  read_model_config(vm["params"].as<std::string>(), c);
  c.validate();
  return run_mpi(
      [&](dist::Comm& comm) {
        const auto data = io::load_shard(c.data, comm);
        Trainer t(c, data, comm);
        io::load_tables(vm["params"].as<std::string>(), {&t.model().user, &t.model().item},
                        dense_params(t.model()));
        const auto surface = loss_surface(t, dims, steps, radius, dir_seed);
        const auto sharp = sharpness(t, sharp_dirs, sharp_radius, dir_seed);
        if (comm.rank() == 0) {
          std::string csv = "a,b,loss\n";
          for (const auto& p : surface) csv += json_number(p.a) + "," + json_number(p.b) + "," + json_number(p.loss) + "\n";
          const std::string out = vm["out"].as<std::string>();
          write_text(out, csv);
          const std::string summary = "{\"base_loss\": " + json_number(sharp.base_loss) + ", \"sharpness_radius\": " +
                                      json_number(sharp_radius) + ", \"sharpness_mean\": " + json_number(sharp.mean_increase) +
                                      ", \"sharpness_max\": " + json_number(sharp.max_increase) + ", \"directions\": " +
                                      std::to_string(sharp_dirs) + "}\n";
          write_text(out + ".json", summary);
          std::printf("wrote %s (%zu points) and %s.json\nloss %.6f; increase at radius %g over %d directions: mean %.6f, max %.6f\n",
                      out.c_str(), surface.size(), out.c_str(), sharp.base_loss, sharp_radius, sharp_dirs,
                      sharp.mean_increase, sharp.max_increase);
        }
        return 0;
      },
      argc, argv);
}

int cmd_plan(int argc, char** argv) {
  po::options_description d("shardrec plan options");
  PlanInput in;
  std::string data, preset;
  double mem_gib = 0, bw_gbs = 0, lat_us = 0, rate = 0;
  d.add_options()("data", po::value<std::string>(&data)->default_value(""),
                  "take users, items and row counts from this dataset")(
      "users", po::value<int64_t>(&in.users)->default_value(0), "user table rows")(
      "items", po::value<int64_t>(&in.items)->default_value(0), "item table rows")(
      "train-rows", po::value<int64_t>(&in.train_rows)->default_value(0), "training interactions")(
      "heldout-rows", po::value<int64_t>(&in.heldout_rows)->default_value(-1),
      "valid + test interactions (default: a quarter of the training rows)")(
      "model", po::value<std::string>(&in.model)->default_value(in.model), "mf, vbpr, gmf or neumf")(
      "loss", po::value<std::string>(&in.loss)->default_value("bce"),
      "gmf/neumf: bce (labeled items only), idl or bce-neg (with the unlabeled draws)")(
      "feature-dim", po::value<int>(&in.feature_dim)->default_value(0), "vbpr: width of the item features")(
      "mlp-layers", po::value<int>(&in.mlp_layers)->default_value(in.mlp_layers), "neumf: MLP depth")(
      "il-unlabeled", po::value<int>(&in.unlabeled)->default_value(in.unlabeled),
      "gmf/neumf: unlabeled draws per labeled row")(
      "ig-train-ratio", po::value<double>(&in.ig_train_ratio)->default_value(0.9),
      "ig: share of labeled rows in training-train")(
      "dim", po::value<int>(&in.dim)->default_value(in.dim), "embedding size")(
      "negatives", po::value<int>(&in.negatives)->default_value(in.negatives), "negatives per positive (mf, vbpr)")(
      "batch", po::value<int64_t>(&in.batch)->default_value(in.batch), "global batch")(
      "world", po::value<int>(&in.world)->default_value(in.world), "number of ranks")(
      "optimizer", po::value<std::string>(&in.optimizer)->default_value(in.optimizer), "sgd, adagrad, adam, adam_dense")(
      "strategy", po::value<std::string>(&in.strategy)->default_value(in.strategy),
      "plain, mirror (mf, vbpr) or ig (gmf, neumf)")(
      "mg-beta", po::value<int>(&in.mg_beta)->default_value(in.mg_beta), "Mirror Gradient interval")(
      "mem-per-rank", po::value<double>(&mem_gib)->default_value(0), "GiB available per rank (0: no check)")(
      "preset", po::value<std::string>(&preset)->default_value("cpu"),
      "cpu (12.5 GB/s network, 5 us, 0.5M samples/s per rank) or gpu (100 GB/s, 10 us, 10M samples/s)")(
      "bandwidth", po::value<double>(&bw_gbs)->default_value(0), "GB/s per rank (overrides the preset)")(
      "latency-us", po::value<double>(&lat_us)->default_value(0), "microseconds per message (overrides)")(
      "samples-per-s", po::value<double>(&rate)->default_value(0), "compute rate per rank (overrides)");
  po::variables_map vm;
  if (!parse(argc, argv, "usage: shardrec plan (--data DATA.h5 | --users U --items I --train-rows M) --world N [options]", d, vm))
    return 0;
  if (!data.empty()) {
    auto f = io::H5File::open_read(data);
    const auto info = io::read_info(f);
    in.users = info.num_users;
    in.items = info.num_items;
    in.train_rows = info.rows[0];
    if (in.heldout_rows < 0) in.heldout_rows = info.rows[1] + info.rows[2];
  }
  if (in.heldout_rows < 0) in.heldout_rows = in.train_rows / 4;
  if (preset == "cpu") { in.bandwidth = 12.5e9; in.latency = 5e-6; in.samples_per_s = 5e5; }
  else if (preset == "gpu") { in.bandwidth = 100e9; in.latency = 10e-6; in.samples_per_s = 1e7; }
  else fail("option --preset: '" + preset + "': expected cpu or gpu");
  if (bw_gbs > 0) in.bandwidth = bw_gbs * 1e9;
  if (lat_us > 0) in.latency = lat_us * 1e-6;
  if (rate > 0) in.samples_per_s = rate;
  in.mem_per_rank = mem_gib * 1024.0 * 1024.0 * 1024.0;
  const Plan p = make_plan(in);
  std::fputs(format_plan(in, p).c_str(), stdout);
  if (!p.fits) {
    std::fprintf(stderr, "error: the plan does not fit: %s\n", p.advice.c_str());
    return 3;
  }
  return 0;
}

int cmd_export(int argc, char** argv) {
  po::options_description d("shardrec export options");
  d.add_options()("data", po::value<std::string>()->required(), "dataset (.h5) whose raw ids to use")(
      "params", po::value<std::string>()->required(), "parameters (params.h5 of a run)")(
      "out,o", po::value<std::string>()->required(), "output file")(
      "format", po::value<std::string>()->default_value("h5"),
      "h5 (/user|item/{embedding,raw_id}) or tsv (prefix: OUT.user.tsv, OUT.item.tsv)");
  po::variables_map vm;
  if (!parse(argc, argv, "usage: [mpirun -np N] shardrec export --data DATA.h5 --params PARAMS.h5 --out FILE", d, vm))
    return 0;
  const std::string fmt = vm["format"].as<std::string>();
  if (fmt != "h5" && fmt != "tsv") fail("option --format: '" + fmt + "': expected h5 or tsv");
  return run_mpi(
      [&](dist::Comm& comm) {
        const std::string data = vm["data"].as<std::string>(), out = vm["out"].as<std::string>();
        auto m = load_model(data, vm["params"].as<std::string>(), "mod", comm);
        if (fmt == "h5") {
          io::export_tables(out, {&m.model->user, &m.model->item}, {"user", "item"}, data, comm, 1 << 16,
                            dense_params(*m.model), {{"model", m.cfg.model}, {"features", m.cfg.features}});
        } else {
          // TSV goes through a temporary HDF5 export, rewritten by rank 0 one row at a time.
          const std::string tmp = out + ".export-tmp.h5";
          io::export_tables(tmp, {&m.model->user, &m.model->item}, {"user", "item"}, data, comm);
          if (comm.rank() == 0) {
            auto f = io::H5File::open_read(tmp);
            for (const char* kind : {"user", "item"}) {
              const std::string base = std::string("/") + kind;
              const auto shape = f.shape(base + "/embedding");
              const auto ids = f.read_strings(base + "/raw_id", 0, shape[0]);
              std::vector<float> row(shape[1]);
              std::string text;
              for (int64_t r = 0; r < shape[0]; ++r) {
                f.read_rows<float>(base + "/embedding", r, 1, row.data());
                text += ids[r];
                for (float v : row) {
                  char buf[32];
                  std::snprintf(buf, sizeof buf, "\t%.9g", v);
                  text += buf;
                }
                text += "\n";
              }
              write_text(out + "." + kind + ".tsv", text);
            }
            f.close();
            fs::remove(tmp);
          }
        }
        if (comm.rank() == 0) std::printf("wrote %s\n", out.c_str());
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
