// shardrec recommend: the top K items per user by full ranking of trained parameters of any model,
// without the user's training items, with raw ids in and out. Scored where the item rows live and
// merged at the users' owners (core/model.h's model_top_k over core/evaluator.h's top_k), so the
// lists are the same for any number of ranks: by the model's retrieval vectors where it has a dot
// form (the score printed is the model's, with its constant term), else by the model's own
// forward pass over every item (exact scoring, brute force).
//
// With --index FILE.faiss (export --format faiss) the candidates come from the FAISS index
// instead, for the models with a dot form: each rank searches the index (every rank reads the
// whole file) with the retrieval vectors of its own users, one user at a time, for K plus the
// number of the user's masked items, drops the masked ones and keeps the first K in the same total
// order (score desc, item id asc); the score printed is the index's inner product plus the model's
// constant. A flat index gives exact recommend's lists; hnsw and ivf approximate them.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "core/config.h"
#include "core/cpu_engine.h"
#include "core/evaluator.h"
#include "core/model.h"
#include "io/dataset.h"
#include "io/checkpoint.h"
#include "io/faiss_index.h"
#include "io/hdf5_util.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"
#include "launch/ranked_lists.h"

namespace shardrec::cli {

namespace {

// The top K of this rank's users from the FAISS index at `path` (see the top of the file).
// Collective only in its checks: every rank refuses alike.
void index_top_k(const Model& model, const std::string& model_name, const io::DataShard& data,
                 const std::string& params, const std::string& path, int ef_search, int nprobe,
                 const std::vector<int64_t>& mine, int K, bool mask_valid, dist::Comm& comm, const TopKSink& sink) {
  io::agree(comm, [&] {
    std::string why;
    if (!model.dot_form(&why))
      fail("option --index: " + params + " holds " + model_name +
           " parameters, which have no dot-product form (" + why +
           "), so no index of item vectors ranks them; recommend without --index scores them exactly");
  });
  const RetrievalVectors rv = model.retrieval_vectors();
  std::unique_ptr<io::FaissIndex> index;
  io::agree(comm, [&] {
    index = std::make_unique<io::FaissIndex>(path);
    const int64_t items = data.info.num_items;
    if (index->dim() != rv.dim || index->rows() != items) {
      std::string msg = "option --index: ";
      msg += path;
      msg += " holds ";
      msg += std::to_string(index->rows());
      msg += " vectors of dimension ";
      msg += std::to_string(index->dim());
      msg += ", but the item table of ";
      msg += params;
      msg += " has ";
      msg += std::to_string(items);
      msg += " rows of retrieval dimension ";
      msg += std::to_string(rv.dim);
      msg += " (export --format faiss with these --data and --params writes a matching one)";
      fail(msg);
    }
    index->set_search(ef_search, nprobe);
  });
  const dist::Sharding& us = model.rows_user().sharding();
  std::vector<int64_t> ids, keep_ids;
  std::vector<float> scores, keep_scores;
  std::vector<int32_t> masked;
  std::vector<ScoredItem> c;
  for (int64_t u : mine) {
    masked.clear();
    const auto tr = data.split[0].items_of(u);
    masked.insert(masked.end(), tr.begin(), tr.end());
    if (mask_valid) {
      const auto va = data.split[1].items_of(u);
      masked.insert(masked.end(), va.begin(), va.end());
    }
    std::sort(masked.begin(), masked.end());
    masked.erase(std::unique(masked.begin(), masked.end()), masked.end());
    const int64_t want = std::min<int64_t>(index->rows(), static_cast<int64_t>(K) + static_cast<int64_t>(masked.size()));
    if (want <= 0) {
      sink(u, {}, {});
      continue;
    }
    const float* q = rv.user.data() + static_cast<size_t>(us.local_index(u)) * static_cast<size_t>(rv.dim);
    index->search(q, static_cast<int>(want), ids, scores);
    c.clear();
    for (size_t j = 0; j < ids.size(); ++j)
      if (!std::binary_search(masked.begin(), masked.end(), static_cast<int32_t>(ids[j])))
        c.push_back({scores[j] + rv.offset, ids[j]});
    const size_t keep = std::min<size_t>(static_cast<size_t>(K), c.size());
    std::partial_sort(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(keep), c.end(), ranks_before);
    c.resize(keep);
    keep_ids.resize(c.size());
    keep_scores.resize(c.size());
    for (size_t j = 0; j < c.size(); ++j) {
      keep_ids[j] = c[j].item;
      keep_scores[j] = c[j].score;
    }
    sink(u, keep_ids, keep_scores);
  }
}

}  // namespace

int cmd_recommend(int argc, char** argv) {
  TrainConfig c;  // its data
  c.threads = 0;  // the default: the cores the launcher gave the rank (cpu_threads)
  std::string params, users = "all", out = "-", fmt = "tsv", index_path;
  int k = 20, ef_search = 0, nprobe = 0;
  bool mask_valid = false;
  Options opts = for_command(config_options(c), kExport);
  opts.insert(opts.end(), {
      params_option(params),
      Option("k", k, "items per user").range(1, 100000),
      Option("users", users, "all, or a file of raw user ids (one per line)"),
      Option("mask-valid", mask_valid, "also leave out the user's validation items (training items always are)"),
      Option("out", out, "output file (- for standard output)").abbrev('o'),
      Option("format", fmt, "tsv or csv (user, rank, item, score, with a header), or jsonl (one user a line)")
          .choices({"tsv", "csv", "jsonl"}),
      Option("score-budget", c.eval.score_budget, "floats of scores held at once per rank").at_least(1),
      Option("index", index_path,
             "a FAISS index of the item vectors (export --format faiss: OUT.item.faiss) to take the candidates "
             "from instead of exact scoring (models with a dot-product form); flat: exact, hnsw/ivf: approximate"),
      Option("ef-search", ef_search,
             "with an hnsw --index: candidates kept while searching (0: the value stored in the index)")
          .at_least(0),
      Option("nprobe", nprobe, "with an ivf --index: lists visited per search (0: the value stored in the index)")
          .at_least(0),
  });
  const Args args =
      parse(argc, argv, "usage: [mpirun -np N] shardrec recommend --data DATA.h5 --params PARAMS.h5 [options]", opts);
  if (args.help) return 0;
  if (out != "-") output_target(out);  // a bad target fails before the work
  if (!index_path.empty() && !io::have_faiss())
    fail("option --index: this shardrec was built without FAISS (Debian: libfaiss-dev, which "
         "launch/install-deps.sh installs; then rebuild)");
  if (index_path.empty() && (ef_search != 0 || nprobe != 0))
    fail(std::string("option --") + (ef_search != 0 ? "ef-search" : "nprobe") +
         ": a search parameter of a FAISS index, so it needs --index");
  return run_mpi(
      [&](dist::Comm& comm) {
        check_inputs(comm, c.data, params);
        auto m = load_params(c.data, params, comm, cpu_threads(c));
        const Log log(args.log_level, comm.rank() == 0);
        debug_partition(log, m.data, comm);
        const io::DatasetInfo& info = m.data.info;
        const auto f = io::H5File::open_read(c.data);
        // Raw user ids: rank 0 writes them; with a --users list every rank maps it through them.
        const bool all = users == "all";
        const auto user_raw = all && comm.rank() != 0 ? std::vector<std::string>{}
                                                      : io::read_raw_ids(f, info, "user", 0, info.num_users);
        // Every rank reads the list (the same file), then keeps the users it owns.
        std::vector<int64_t> chosen;
        io::agree(comm, [&] {  // a bad list stops every rank with one message
          if (all) {
            chosen.resize(info.num_users);
            for (int64_t u = 0; u < info.num_users; ++u) chosen[u] = u;
          } else {
            chosen = listed_ids("users", users, user_raw, "user");
          }
        });
        const io::UserSlice& tr = m.data.train();
        std::vector<int64_t> mine;
        for (int64_t u : chosen)
          if (u >= tr.user_lo && u < tr.user_hi) mine.push_back(u);
        RankedLists lists;
        Progress progress = log.progress("recommend", "users");
        c.eval.progress = &progress;
        if (index_path.empty())
          model_top_k(*m.model, m.data, mine, k, mask_valid, c.eval, comm, lists.sink());
        else
          index_top_k(*m.model, m.cfg.model, m.data, params, index_path, ef_search, nprobe, mine, k, mask_valid, comm,
                      lists.sink());
        // Rank 0 writes the item ids (and, without a list, the users': it alone read them).
        const auto item_raw = comm.rank() == 0 ? io::read_raw_ids(f, info, "item", 0, info.num_items)
                                               : std::vector<std::string>{};
        write_ranked_lists(comm, lists, {"user", "item", "items"}, user_raw, item_raw, fmt, out);
        if (out != "-" && log.summary())
          std::printf("wrote %s: top %d items for %zu users\n", out.c_str(), k, chosen.size());
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
