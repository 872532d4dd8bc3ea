// shardrec export: trained parameters with raw ids (h5), or the vectors a retrieval system needs
// (tsv, npy; faiss: npy with the item vectors in a FAISS index): a user vector and an item vector
// whose dot product is the model's score, up to a constant of the model (Model::retrieval_vectors;
// docs/data-format.md, "Exported vectors"):
//   mf:   the user and item rows;
//   vbpr: the user row (2d) and the item scoring vector q = [e, W f + b] (2d);
//   gmf:  p_u and w_p * q_i (elementwise); the logit is their dot product plus the bias b_p, a
//         constant that does not change a ranking;
//   a model without such a form (Model::dot_form: neumf, whose MLP of [a_u, c_i] does not factor)
//   is refused with the model's reason.
// Any model's parameters are loaded through the registry (launch/params.h's load_params).
#include <cstdio>
#include <memory>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/config.h"
#include "core/cpu_engine.h"
#include "core/model.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/export.h"
#include "io/faiss_index.h"
#include "io/hdf5_util.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"

namespace shardrec::cli {

namespace {

// A table that is only read: SGD keeps no optimizer state.
std::unique_ptr<dist::ShardedEmbedding> read_only_table(const char* name, uint64_t key, int64_t rows, int dim,
                                                        const dist::Sharding& sharding, int rank) {
  OptimizerConfig sgd;
  sgd.kind = OptimizerConfig::Kind::kSgd;
  return std::make_unique<dist::ShardedEmbedding>(name, key, rows, dim, sharding, rank, 0, dist::InitSpec{}, sgd);
}

}  // namespace

int cmd_export(int argc, char** argv) {
  TrainConfig c;  // its data
  c.threads = 0;  // the default: the cores the launcher gave the rank (cpu_threads)
  std::string params, out, fmt = "h5";
  io::FaissSpec index;
  Options opts = for_command(config_options(c), kExport);
  opts.insert(opts.end(), {
      params_option(params),
      Option("out", out, "output file (h5), or the prefix of the files (tsv, npy)").abbrev('o').required(),
      Option("format", fmt,
             "h5: the parameters (/user|item/{embedding,raw_id}, /dense); tsv: OUT.user.tsv, OUT.item.tsv; npy: "
             "OUT.user.npy, OUT.user_ids.npy, OUT.item.npy, OUT.item_ids.npy; faiss: as npy, with the item "
             "vectors in an inner-product FAISS index OUT.item.faiss (id = row). tsv, npy and faiss hold the "
             "retrieval vectors: score = user . item (vbpr: the 2d scoring vectors; gmf: p_u and w_p*q_i, plus a "
             "constant)")
          .choices({"h5", "tsv", "npy", "faiss"}),
      Option("index-type", index.type,
             "faiss: flat (exact search), hnsw (a graph) or ivf (inverted lists over k-means centroids, trained on "
             "the item vectors with a fixed seed); hnsw and ivf are approximate, faster")
          .choices({"flat", "hnsw", "ivf"}),
      Option("hnsw-m", index.hnsw_m, "faiss hnsw: links per node").range(2, 512),
      Option("hnsw-ef-construction", index.ef_construction, "faiss hnsw: candidates kept while building").at_least(1),
      Option("hnsw-ef-search", index.ef_search, "faiss hnsw: candidates kept while searching (stored in the index)")
          .at_least(1),
      Option("ivf-nlist", index.ivf_nlist, "faiss ivf: lists (centroids); at most the number of items").at_least(1),
      Option("ivf-nprobe", index.ivf_nprobe, "faiss ivf: lists visited per search (stored in the index); at most "
             "--ivf-nlist").at_least(1),
  });
  const Args args =
      parse(argc, argv, "usage: [mpirun -np N] shardrec export --data DATA.h5 --params PARAMS.h5 --out FILE", opts);
  if (args.help) return 0;
  if (out == "-") fail("option --out: export writes files; give a file name (a prefix for tsv, npy and faiss)");
  if (fmt == "faiss" && !io::have_faiss())
    fail("option --format faiss: this shardrec was built without FAISS (Debian: libfaiss-dev, which "
         "launch/install-deps.sh installs; then rebuild)");
  const std::vector<std::string> kinds = {"user", "item"};
  std::vector<std::string> files;
  if (fmt == "h5") files = {out};
  else if (fmt == "tsv") files = {out + ".user.tsv", out + ".item.tsv"};
  else files = io::npy_paths(out, kinds, fmt == "faiss");
  for (const auto& f : files) output_target(f);  // a bad target fails before the work
  return run_mpi(
      [&](dist::Comm& comm) {
        const std::string& data = c.data;
        check_inputs(comm, data, params);
        std::string what;
        const io::FaissSpec* faiss = fmt == "faiss" ? &index : nullptr;
        auto m = load_params(data, params, comm, cpu_threads(c));
        const Log log(args.log_level, comm.rank() == 0);
        debug_partition(log, m.data, comm);
        Progress progress = log.progress("export " + fmt, "rows");
        std::vector<dist::ShardedEmbedding*> tables = m.model->params_tables();
        if (fmt == "h5") {
          io::export_tables(out, {tables.begin(), tables.end()}, kinds, data, comm, 1 << 16,
                            m.model->exported_dense(), m.model->export_attrs(m.cfg), &progress);
        } else {
          io::agree(comm, [&] {  // every rank refuses alike, with one message
            std::string why;
            if (!m.model->dot_form(&why))
              fail("export --format " + fmt + ": " + params + " holds " + m.cfg.model +
                   " parameters, which have no dot-product form (" + why +
                   "); --format h5 exports the parameters themselves");
            if (faiss)  // before any work (items first); write_faiss_index checks again, for its other callers
              for (size_t t : {1, 0})
                io::check_ivf(index, tables[t]->rows(), params + " (" + kinds[t] + " table)");
          });
          // The retrieval vectors, as tables sharded like the model's.
          RetrievalVectors rv = m.model->retrieval_vectors();
          auto u = read_only_table("user", 0, tables[0]->rows(), rv.dim, tables[0]->sharding(), comm.rank());
          auto i = read_only_table("item", 1, tables[1]->rows(), rv.dim, tables[1]->sharding(), comm.rank());
          u->local_data() = std::move(rv.user);
          i->local_data() = std::move(rv.item);
          m.model.reset();  // its tables are no longer needed
          if (fmt == "tsv") io::export_tsv(out, {u.get(), i.get()}, kinds, data, comm, 1 << 16, &progress);
          else io::export_npy(out, {u.get(), i.get()}, kinds, data, comm, 1 << 16, faiss, &progress);
          if (!rv.note.empty()) what = " (" + rv.note + ")";
        }
        if (log.summary()) {
          std::string names;
          for (size_t i = 0; i < files.size(); ++i)
            names += (i == 0 ? "" : i + 1 == files.size() ? " and " : ", ") + files[i];
          std::printf("wrote %s%s\n", names.c_str(), what.c_str());
        }
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
