// shardrec export: trained tables with raw ids, as HDF5 or TSV.
#include <cstdio>
#include <filesystem>

#include "core/config.h"
#include "io/export.h"
#include "io/hdf5_util.h"
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
  return run_mpi(
      [&](dist::Comm& comm) {
        const std::string& data = c.data;
        auto m = load_model(data, params, "mod", comm);
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
            std::filesystem::remove(tmp);
          }
        }
        if (comm.rank() == 0) std::printf("wrote %s\n", out.c_str());
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
