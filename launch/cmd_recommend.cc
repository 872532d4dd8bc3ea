// shardrec recommend: the top K items per user by full ranking of trained parameters of any model,
// without the user's training items, with raw ids in and out. Scored where the item rows live and
// merged at the users' owners (core/model.h's model_top_k over core/evaluator.h's top_k), so the
// lists are the same for any number of ranks: by the model's retrieval vectors where it has a dot
// form (the score printed is the model's, with its constant term), else by the model's own
// forward pass over every item (exact scoring, brute force).
#include <cstdio>

#include "base/error.h"
#include "core/config.h"
#include "core/evaluator.h"
#include "core/model.h"
#include "io/dataset.h"
#include "io/checkpoint.h"
#include "io/hdf5_util.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"
#include "launch/ranked_lists.h"

namespace shardrec::cli {

int cmd_recommend(int argc, char** argv) {
  TrainConfig c;  // its data
  std::string params, users = "all", out = "-", fmt = "tsv";
  int k = 20;
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
  });
  const Args args =
      parse(argc, argv, "usage: [mpirun -np N] shardrec recommend --data DATA.h5 --params PARAMS.h5 [options]", opts);
  if (args.help) return 0;
  if (out != "-") output_target(out);  // a bad target fails before the work
  return run_mpi(
      [&](dist::Comm& comm) {
        check_inputs(comm, c.data, params);
        auto m = load_params(c.data, params, comm);
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
        model_top_k(*m.model, m.data, mine, k, mask_valid, c.eval, comm, lists.sink());
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
