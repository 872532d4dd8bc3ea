// shardrec: prep | synth | train | eval | export. Run train/eval/export under mpirun for N ranks.
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/error.h"
#include "io/hdf5_util.h"
#include "launch/commands.h"
#include "launch/run_dir.h"
#include "shardrec_config.h"

namespace {
const char* kUsage =
    "shardrec " SHARDREC_VERSION " - sharded embedding training for recommendation\n"
    "\n"
    "usage: shardrec <command> [options]     (shardrec <command> --help for its options)\n"
    "\n"
    "  prep    turn raw interactions into a shardrec HDF5 dataset\n"
    "  synth   generate a synthetic dataset (popularity skew, planted structure)\n"
    "  train   train a model; run under mpirun -np N to shard it over N ranks\n"
    "  eval    evaluate trained parameters on the valid or test split\n"
    "  export  write trained tables with raw ids (HDF5 or TSV)\n"
    "  landscape  training loss around trained parameters (1-D/2-D, CSV) and a sharpness number\n"
    "  plan    memory per rank, bytes per step and step time of a configuration, before running it\n";
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("shardrec %s\n", SHARDREC_VERSION);
    return 0;
  }
  const std::string cmd = argv[1];
  using Fn = int (*)(int, char**);
  Fn fn = cmd == "prep"     ? shardrec::cli::cmd_prep
          : cmd == "synth"  ? shardrec::cli::cmd_synth
          : cmd == "train"  ? shardrec::cli::cmd_train
          : cmd == "eval"   ? shardrec::cli::cmd_eval
          : cmd == "export" ? shardrec::cli::cmd_export
          : cmd == "landscape" ? shardrec::cli::cmd_landscape
          : cmd == "plan" ? shardrec::cli::cmd_plan
                            : nullptr;
  if (!fn) {
    std::fprintf(stderr, "error: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  }
  if (cmd == "train") shardrec::cli::hold_stop_signals();  // a stop signal from now on is kept
  int rc = 1;
  try {
    rc = fn(argc - 1, argv + 1);
  } catch (const boost::program_options::error& e) {
    std::fprintf(stderr, "error: %s (see shardrec %s --help)\n", e.what(), cmd.c_str());
    rc = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    rc = 1;
  }
  // HDF5's exit handler would crash on a file whose close failed (io/hdf5_util.h).
  if (shardrec::io::hdf5_close_failed()) {
    std::fflush(nullptr);
    std::_Exit(rc);
  }
  return rc;
}
