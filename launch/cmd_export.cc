// shardrec export: trained parameters with raw ids (h5), or the vectors a retrieval system needs
// (tsv, npy; faiss: npy with the item vectors in a FAISS index): a user vector and an item vector
// whose dot product is the model's score (docs/data-format.md, "Exported vectors"):
//   mf:   the user and item rows;
//   vbpr: the user row (2d) and the item scoring vector q = [e, W f + b] (2d);
//   gmf:  p_u and w_p * q_i (elementwise); the logit is their dot product plus the bias b_p, a
//         constant that does not change a ranking;
//   neumf has no such form (its MLP of [a_u, c_i] does not factor) and is refused.
#include <cstdio>
#include <memory>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/config.h"
#include "core/model_kind.h"
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

// The tables of gmf/neumf parameters as stored (rows of the GMF and MLP embeddings), the dense
// vector and the root attributes, read without building the model.
struct NcfParams {
  io::DataShard data;
  std::unique_ptr<dist::ShardedEmbedding> user, item;
  std::vector<float> dense;
  std::vector<std::pair<std::string, std::string>> attrs;
  int gmf_dim = 0;
};

NcfParams load_ncf(const std::string& data, const std::string& params, dist::Comm& comm) {
  NcfParams p;
  p.data = io::load_shard(data, comm);
  int64_t width = 0, n_dense = 0;
  {
    auto f = io::H5File::open_read(params);
    for (const char* a : {"model", "features", "dim", "mlp_layers"}) p.attrs.push_back({a, f.read_attr_str("/", a)});
    p.gmf_dim = std::stoi(f.read_attr_str("/", "dim"));
    width = f.shape("/item/embedding").at(1);
    n_dense = f.shape("/dense/ncf").at(0);
  }
  const int64_t items = p.data.info.num_items;
  p.user = read_only_table("user", 0, p.data.users.rows(), static_cast<int>(width), p.data.users, comm.rank());
  p.item = read_only_table("item", 1, items, static_cast<int>(width), dist::Sharding::modulo(items, comm.size()),
                           comm.rank());
  p.dense.resize(n_dense);
  io::load_tables(params, {p.user.get(), p.item.get()}, comm, {{"ncf", n_dense, 0, &p.dense}});
  return p;
}

}  // namespace

int cmd_export(int argc, char** argv) {
  TrainConfig c;  // its data
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
      Option("index-type", index.type, "faiss: flat (exact search) or hnsw (a graph: approximate, faster)")
          .choices({"flat", "hnsw"}),
      Option("hnsw-m", index.hnsw_m, "faiss hnsw: links per node").range(2, 512),
      Option("hnsw-ef-construction", index.ef_construction, "faiss hnsw: candidates kept while building").at_least(1),
      Option("hnsw-ef-search", index.ef_search, "faiss hnsw: candidates kept while searching (stored in the index)")
          .at_least(1),
  });
  if (parse(argc, argv, "usage: [mpirun -np N] shardrec export --data DATA.h5 --params PARAMS.h5 --out FILE", opts).help)
    return 0;
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
  std::string model = "mf";
  if (is_pointwise_params(params)) model = io::H5File::open_read(params).read_attr_str("/", "model");
  if (model == "neumf" && fmt != "h5")
    fail("export --format " + fmt + ": " + params +
         " holds neumf parameters, which have no dot-product form (the MLP over [a_u, c_i] does not factor into "
         "a user vector and an item vector); --format h5 exports the parameters themselves");
  return run_mpi(
      [&](dist::Comm& comm) {
        const std::string& data = c.data;
        check_inputs(comm, data, params);
        std::string what;
        const io::FaissSpec* faiss = fmt == "faiss" ? &index : nullptr;
        if (model_kind(model).pointwise) {
          NcfParams p = load_ncf(data, params, comm);
          if (fmt == "h5") {
            io::export_tables(out, {p.user.get(), p.item.get()}, kinds, data, comm, 1 << 16,
                              {{"ncf", static_cast<int64_t>(p.dense.size()), 0, &p.dense}}, p.attrs);
          } else {
            // gmf's dense vector is the prediction layer alone: w_p (dim floats), then b_p.
            const int d = p.gmf_dim;
            if (p.user->dim() != d || p.dense.size() != static_cast<size_t>(d) + 1)
              fail(params + ": gmf parameters with rows of " + std::to_string(p.user->dim()) + " floats and " +
                   std::to_string(p.dense.size()) + " dense values (want " + std::to_string(d) + " and " +
                   std::to_string(d + 1) + ")");
            for (int64_t l = 0; l < p.item->local_rows(); ++l)
              for (int k = 0; k < d; ++k) p.item->local_row(l)[k] *= p.dense[k];
            if (fmt == "tsv") io::export_tsv(out, {p.user.get(), p.item.get()}, kinds, data, comm);
            else io::export_npy(out, {p.user.get(), p.item.get()}, kinds, data, comm, 1 << 16, faiss);
            what = " (gmf: logit = user . item + " + json_number(p.dense[d]) + ")";
          }
        } else {
          auto m = load_model(data, params, "mod", comm);
          if (fmt == "h5") {
            io::export_tables(out, {&m.model->user, &m.model->item}, kinds, data, comm, 1 << 16,
                              m.model->exported_dense(), m.model->export_attrs(m.cfg));
          } else {
            // The item scoring vectors (vbpr: q = [e, W f + b]; mf: the rows themselves).
            std::unique_ptr<dist::ShardedEmbedding> q;
            const dist::ShardedEmbedding* item = &m.model->item;
            if (m.model->vbpr()) {
              q = read_only_table("item", 1, item->rows(), m.model->dim(), item->sharding(), comm.rank());
              q->local_data() = m.model->local_item_vectors();
              item = q.get();
            }
            if (fmt == "tsv") io::export_tsv(out, {&m.model->user, item}, kinds, data, comm);
            else io::export_npy(out, {&m.model->user, item}, kinds, data, comm, 1 << 16, faiss);
            if (m.model->vbpr()) what = " (vbpr: the 2d scoring vectors, score = user . item)";
          }
        }
        if (comm.rank() == 0) {
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
