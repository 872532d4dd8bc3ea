#include "launch/run_dir.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/error.h"

namespace fs = std::filesystem;

namespace shardrec::cli {

namespace {
std::string host() {
  char h[256] = {0};
  ::gethostname(h, sizeof h - 1);
  return h;
}
// A signal handler can only reach a global.
extern "C" void on_checkpoint_signal(int sig) {
  if (sig == SIGINT && g_checkpoint_signal == SIGINT) {  // Ctrl-C twice: stop now
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
  g_checkpoint_signal = sig;
}
constexpr int kStopSignals[] = {SIGUSR1, SIGTERM, SIGINT};
}  // namespace

volatile std::sig_atomic_t g_checkpoint_signal = 0;

RunDirLock::RunDirLock(const std::string& dir) : path_(dir + "/.lock") {
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
RunDirLock::~RunDirLock() { std::remove(path_.c_str()); }

bool RunDirLock::stale() const {
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

int stop_exit_code(int sig) { return sig == SIGTERM ? kExitTerminated : sig == SIGINT ? kExitInterrupted : kExitRequeue; }
const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGUSR1"; }

void hold_stop_signals() {
  for (int s : kStopSignals) std::signal(s, on_checkpoint_signal);
}

void install_checkpoint_signal(const TrainConfig& c) {
  if (!c.run_dir.empty()) return hold_stop_signals();
  for (int s : kStopSignals) std::signal(s, SIG_DFL);
  if (g_checkpoint_signal) std::raise(static_cast<int>(g_checkpoint_signal));
}

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

std::unique_ptr<RunDirLock> open_run_dir(const TrainConfig& c, bool root, bool resuming, const std::string& ini) {
  if (c.run_dir.empty() || !root) return nullptr;
  std::error_code ec;
  fs::create_directories(c.run_dir, ec);
  if (ec) fail("run directory " + c.run_dir + ": " + ec.message());
  auto lock = std::make_unique<RunDirLock>(c.run_dir);
  // Probe: a directory that exists but cannot take files fails here, not after training.
  try {
    write_file(c.run_dir + "/.write-test", "");
  } catch (const std::exception&) {
    fail("run directory " + c.run_dir + ": files cannot be written there (read-only or full?)");
  }
  std::remove((c.run_dir + "/.write-test").c_str());
  // A resume rewrites them once the checkpoint has been accepted (setup_checkpoints).
  if (!resuming) {
    write_file(c.run_dir + "/config.ini", ini);
    write_file(c.run_dir + "/metrics.jsonl", "");
  }
  return lock;
}

double params_file_bytes(Model& m) {
  int64_t floats = m.user.rows() * m.user.dim() + m.item.rows() * m.item.dim();
  for (const auto& d : m.exported_dense()) floats += static_cast<int64_t>(d.data->size());
  return static_cast<double>(floats) * 4 * 1.5;
}

}  // namespace shardrec::cli
