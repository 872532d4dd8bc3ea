// shardrec similar-items: the K nearest items of each query item by the model's item retrieval
// vectors (Model::retrieval_vectors: mf the item row, vbpr q = [e, W f + b], gmf w_p * q_i), inner
// product or cosine, the item itself left out, raw ids in and out. A model without a dot-product
// form (Model::dot_form) is refused with its reason.
// It is recommend's problem with items as the users: an MF model whose user table holds the query
// items' vectors (range-sharded) and whose item table holds every item's vector, with each query's
// own item as its only "training" item. core/evaluator.h's top_k then scores where the vectors
// live and merges with the total order (score desc, item id asc), so the lists are the same for
// any number of ranks.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "core/config.h"
#include "core/cpu_engine.h"
#include "core/evaluator.h"
#include "core/mf_model.h"
#include "core/model.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/hdf5_util.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"
#include "launch/ranked_lists.h"

namespace shardrec::cli {

namespace {

// Scales each row of n x d to unit length (a zero row stays zero: it scores 0 with every item).
void normalise_rows(std::vector<float>& v, int d) {
  for (size_t at = 0; at < v.size(); at += d) {
    double ss = 0;
    for (int c = 0; c < d; ++c) ss += static_cast<double>(v[at + c]) * v[at + c];
    if (ss == 0) continue;
    const double inv = 1.0 / std::sqrt(ss);
    for (int c = 0; c < d; ++c) v[at + c] = static_cast<float>(v[at + c] * inv);
  }
}

}  // namespace

int cmd_similar_items(int argc, char** argv) {
  TrainConfig c;  // its data
  c.threads = 0;  // the default: the cores the launcher gave the rank (cpu_threads)
  std::string params, items = "all", out = "-", fmt = "tsv", metric = "cosine";
  int k = 20;
  Options opts = for_command(config_options(c), kExport);
  opts.insert(opts.end(), {
      params_option(params),
      Option("k", k, "similar items per item").range(1, 100000),
      Option("items", items, "all, or a file of raw item ids (one per line)"),
      Option("metric", metric, "ip (inner product of the scoring vectors) or cosine (of the same vectors)")
          .choices({"ip", "cosine"}),
      Option("out", out, "output file (- for standard output)").abbrev('o'),
      Option("format", fmt, "tsv or csv (item, rank, similar, score, with a header), or jsonl (one item a line)")
          .choices({"tsv", "csv", "jsonl"}),
      Option("score-budget", c.eval.score_budget, "floats of scores held at once per rank").at_least(1),
  });
  const Args args = parse(
      argc, argv, "usage: [mpirun -np N] shardrec similar-items --data DATA.h5 --params PARAMS.h5 [options]", opts);
  if (args.help) return 0;
  if (out != "-") output_target(out);  // a bad target fails before the work
  return run_mpi(
      [&](dist::Comm& comm) {
        check_inputs(comm, c.data, params);
        auto m = load_params(c.data, params, comm, cpu_threads(c));
        const Log log(args.log_level, comm.rank() == 0);
        io::agree(comm, [&] {  // every rank refuses alike, with one message
          std::string why;
          if (!m.model->dot_form(&why))
            fail("similar-items: " + params + " holds " + m.cfg.model +
                 " parameters, which have no item vector whose dot product ranks items against an item (" + why +
                 "); similar-items needs a model with a dot-product form");
        });
        RetrievalVectors rv = m.model->retrieval_vectors();
        const io::DatasetInfo& info = m.data.info;
        const int64_t N = info.num_items;
        const int d = rv.dim;  // the retrieval width (2 x dim for vbpr)
        const auto f = io::H5File::open_read(c.data);
        const bool all = items == "all";
        const auto item_raw = all && comm.rank() != 0 ? std::vector<std::string>{}
                                                      : io::read_raw_ids(f, info, "item", 0, N);
        std::vector<int64_t> chosen;
        io::agree(comm, [&] {  // a bad list stops every rank with one message
          if (all) {
            chosen.resize(N);
            for (int64_t i = 0; i < N; ++i) chosen[i] = i;
          } else {
            chosen = listed_ids("items", items, item_raw, "item");
          }
        });

        // The item-item model: items sharded as the loaded model's (mod), queries by range.
        TrainConfig ic;
        ic.model = "mf";
        ic.dim = d;
        ic.item_sharding = "mod";
        ic.opt.kind = OptimizerConfig::Kind::kSgd;  // never stepped; SGD keeps no state
        const dist::Sharding queries = dist::Sharding::parse("range", N, comm.size());
        MFModel ii(ic, queries, N, comm.rank());
        std::vector<float> q = std::move(rv.item);
        if (metric == "cosine") normalise_rows(q, d);
        ii.item.local_data() = std::move(q);
        rv = {};
        m.model.reset();  // its tables are no longer needed
        // Each rank's query rows: the vectors of its id range, gathered from the items' owners.
        const int64_t lo = queries.bounds()[comm.rank()], hi = queries.bounds()[comm.rank() + 1];
        std::vector<int64_t> range(hi - lo);
        for (int64_t i = lo; i < hi; ++i) range[i - lo] = i;
        ii.item.gather(comm, ii.item.route(comm, range), ii.user.local_data().data());
        // Each query's own item is its one masked ("training") item.
        io::DataShard qd;
        qd.info = info;
        qd.users = queries;
        for (auto& s : qd.split) {
          s.user_lo = lo;
          s.user_hi = hi;
          s.ptr.assign(hi - lo + 1, 0);
        }
        for (int64_t i = lo; i < hi; ++i) {
          qd.split[0].item.push_back(static_cast<int32_t>(i));
          qd.split[0].ptr[i - lo + 1] = i - lo + 1;
        }
        std::vector<int64_t> mine;
        for (int64_t i : chosen)
          if (i >= lo && i < hi) mine.push_back(i);
        RankedLists lists;
        Progress progress = log.progress("similar-items", "items");
        c.eval.progress = &progress;
        top_k(ii, qd, mine, k, false, c.eval, comm, lists.sink());
        write_ranked_lists(comm, lists, {"item", "similar", "similar"}, item_raw, item_raw, fmt, out);
        if (log.summary() && out != "-")
          std::printf("wrote %s: %d most similar items (%s) for %zu items\n", out.c_str(), k, metric.c_str(),
                      chosen.size());
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
