// shardrec landscape: the training loss around trained parameters (1-D/2-D, CSV) and a sharpness
// number.
#include <cstdio>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/config.h"
#include "core/landscape.h"
#include "core/trainer.h"
#include "io/dataset.h"
#include "io/export.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"

namespace shardrec::cli {

int cmd_landscape(int argc, char** argv) {
  TrainConfig c;  // its data, loss, negatives, batch and seed
  c.batch = 8192;  // rows per step of the loss evaluation
  std::string params, out;
  int dims = 1, steps = 21, sharp_dirs = 8;
  double radius = 1.0, sharp_radius = 0.1;
  uint64_t dir_seed = 7;
  Options opts = for_command(config_options(c), kLandscape);
  opts.insert(opts.end(), {
      params_option(params),
      Option("out", out, "CSV of the surface (a, b, loss)").abbrev('o').required(),
      Option("dims", dims, "1 (a line) or 2 (a grid)").range(1, 2),
      Option("steps", steps, "points per axis").at_least(1),
      Option("radius", radius, "the axes run over [-radius, radius] in filter-normalised units"),
      Option("dir-seed", dir_seed, "seed of the random directions"),
      Option("sharpness-dirs", sharp_dirs, "directions for the sharpness number").at_least(1),
      Option("sharpness-radius", sharp_radius, "radius of the sharpness number"),
  });
  const char* usage = "usage: [mpirun -np N] shardrec landscape --data DATA.h5 --params PARAMS.h5 --out SURFACE.csv [options]";
  const Args args = parse(argc, argv, usage, opts);
  if (args.help) return 0;
  if (out == "-") fail("option --out: landscape writes two files (OUT and OUT.json); give a file name");
  output_target(out);  // a bad target fails before the computation
  output_target(out + ".json");
  c.eval_every = 0;
  c.epochs = 0;
  read_model_config(params, c);
  c.validate();
  return run_mpi(
      [&](dist::Comm& comm) {
        check_inputs(comm, c.data, params);
        const auto data = io::load_shard(c.data, comm);
        const Log log(args.log_level, comm.rank() == 0);
        debug_partition(log, data, comm);
        Trainer t(c, data, comm);
        io::load_tables(params, {&t.model().user, &t.model().item}, comm, t.model().exported_dense());
        const auto surface = loss_surface(t, dims, steps, radius, dir_seed);
        const auto sharp = sharpness(t, sharp_dirs, sharp_radius, dir_seed);
        if (comm.rank() == 0) {
          std::string csv = "a,b,loss\n";
          for (const auto& p : surface) csv += json_number(p.a) + "," + json_number(p.b) + "," + json_number(p.loss) + "\n";
          AtomicFiles files;  // the surface and its summary appear together
          files.add(out).write(csv);
          const std::string summary = "{\"base_loss\": " + json_number(sharp.base_loss) + ", \"sharpness_radius\": " +
                                      json_number(sharp_radius) + ", \"sharpness_mean\": " + json_number(sharp.mean_increase) +
                                      ", \"sharpness_max\": " + json_number(sharp.max_increase) + ", \"directions\": " +
                                      std::to_string(sharp_dirs) + "}\n";
          files.add(out + ".json").write(summary);
          files.commit();
          if (log.summary())  // the same numbers as OUT.json
            std::printf("wrote %s (%zu points) and %s.json\nloss %.6f; increase at radius %g over %d directions: mean %.6f, max %.6f\n",
                      out.c_str(), surface.size(), out.c_str(), sharp.base_loss, sharp_radius, sharp_dirs,
                      sharp.mean_increase, sharp.max_increase);
        }
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
