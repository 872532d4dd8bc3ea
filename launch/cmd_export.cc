// shardrec export: trained tables with raw ids, as HDF5 or TSV.
#include <cstdio>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/config.h"
#include "io/export.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"

namespace shardrec::cli {

int cmd_export(int argc, char** argv) {
  TrainConfig c;  // its data
  std::string params, out, fmt = "h5";
  Options opts = for_command(config_options(c), kExport);
  opts.insert(opts.end(), {
      params_option(params),
      Option("out", out, "output file").abbrev('o').required(),
      Option("format", fmt, "h5 (/user|item/{embedding,raw_id}) or tsv (prefix: OUT.user.tsv, OUT.item.tsv)")
          .choices({"h5", "tsv"}),
  });
  if (parse(argc, argv, "usage: [mpirun -np N] shardrec export --data DATA.h5 --params PARAMS.h5 --out FILE", opts).help)
    return 0;
  if (out == "-") fail("option --out: export writes files; give a file name (a prefix for tsv)");
  // A bad target fails before the work.
  if (fmt == "h5") output_target(out);
  else for (const char* kind : {"user", "item"}) output_target(out + "." + kind + ".tsv");
  return run_mpi(
      [&](dist::Comm& comm) {
        const std::string& data = c.data;
        check_inputs(comm, data, params);
        auto m = load_model(data, params, "mod", comm);
        if (fmt == "h5") {
          io::export_tables(out, {&m.model->user, &m.model->item}, {"user", "item"}, data, comm, 1 << 16,
                            m.model->exported_dense(), m.model->export_attrs(m.cfg));
          if (comm.rank() == 0) std::printf("wrote %s\n", out.c_str());
        } else {
          io::export_tsv(out, {&m.model->user, &m.model->item}, {"user", "item"}, data, comm);
          if (comm.rank() == 0) std::printf("wrote %s.user.tsv and %s.item.tsv\n", out.c_str(), out.c_str());
        }
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
