// shardrec <command>: the commands, --help and --version. Run train/eval/export under mpirun for N ranks.
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "io/hdf5_util.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/run_dir.h"
#include "shardrec_commit.h"
#include "shardrec_config.h"

namespace {
struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* summary;
  bool mpi;  // runs under run_mpi (launch/cli_util.h): its ranks agree on errors
};
const Command kCommands[] = {
    {"prep", shardrec::cli::cmd_prep, "turn raw interactions into a shardrec HDF5 dataset; under mpirun -np N the ranks share the reading", true},
    {"synth", shardrec::cli::cmd_synth, "generate a synthetic dataset (popularity skew, planted structure)", false},
    {"train", shardrec::cli::cmd_train, "train a model; run under mpirun -np N to shard it over N ranks", true},
    {"eval", shardrec::cli::cmd_eval, "evaluate trained parameters on the valid or test split", true},
    {"export", shardrec::cli::cmd_export, "write trained parameters (HDF5) or retrieval vectors (TSV, .npy) with raw ids", true},
    {"recommend", shardrec::cli::cmd_recommend, "top-K items per user from trained parameters of any model (training items left out)", true},
    {"similar-items", shardrec::cli::cmd_similar_items, "nearest items by the item retrieval vectors (models with a dot-product form)", true},
    {"landscape", shardrec::cli::cmd_landscape, "training loss around trained parameters (1-D/2-D, CSV) and a sharpness number", true},
    {"plan", shardrec::cli::cmd_plan, "memory per rank, bytes per step and step time of a configuration, before running it", false},
};

std::string usage() {
  std::string u = "shardrec " SHARDREC_VERSION " - sharded embedding training for recommendation\n\n"
                  "usage: shardrec <command> [options]     (shardrec <command> --help for its options)\n\n";
  for (const auto& c : kCommands) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-10s %s\n", c.name, c.summary);
    u += line;
  }
  return u;
}

// shardrec 0.1.0 (commit 1a2b3c4d5e6f, Release; CUDA backend: sm 80;90 | not built; FAISS: yes | no)
std::string version() {
  std::string v = "shardrec " SHARDREC_VERSION " (commit " SHARDREC_COMMIT ", " SHARDREC_BUILD_TYPE "; CUDA backend: ";
  v += SHARDREC_HAVE_CUDA ? std::string("built for sm ") + SHARDREC_CUDA_ARCHS + ", NCCL" : std::string("not built");
  return v + (SHARDREC_HAVE_FAISS ? "; FAISS: yes)" : "; FAISS: no)");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(usage().c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("%s\n", version().c_str());
    return 0;
  }
  const std::string cmd = argv[1];
  const Command* found = nullptr;
  std::vector<std::string> names;
  for (const auto& c : kCommands) {
    names.push_back(c.name);
    if (cmd == c.name) found = &c;
  }
  if (!found) {
    const std::string near = shardrec::cli::nearest(cmd, names);
    std::fprintf(stderr, "error: unknown command '%s'%s\n\n%s", cmd.c_str(),
                 near.empty() ? "" : ("; did you mean '" + near + "'?").c_str(), usage().c_str());
    return 2;
  }
  if (cmd == "train") shardrec::cli::hold_stop_signals();  // a stop signal from now on is kept
  int rc = 1;
  std::string error;
  try {
    rc = found->fn(argc - 1, argv + 1);
  } catch (const boost::program_options::error& e) {
    error = std::string(e.what()) + " (see shardrec " + cmd + " --help)";
    rc = 2;
  } catch (const std::exception& e) {
    error = e.what();
    rc = 1;
  }
  // Printed once for all ranks under mpirun (the ranks agree on it), else as is.
  if (!error.empty()) rc = shardrec::cli::report_error(found->mpi, rc, error, argc, argv);
  // HDF5's exit handler would crash on a file whose close failed (io/hdf5_util.h).
  if (shardrec::io::hdf5_close_failed()) {
    std::fflush(nullptr);
    std::_Exit(rc);
  }
  return rc;
}
