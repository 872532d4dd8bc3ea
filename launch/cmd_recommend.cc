// shardrec recommend: the top K items per user by full ranking of trained parameters, without the
// user's training items, with raw ids in and out. Scored where the item rows live and merged at the
// users' owners (core/evaluator.h's top_k), so the lists are the same for any number of ranks.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <unordered_map>

#include "base/atomic_file.h"
#include "base/error.h"
#include "core/config.h"
#include "core/evaluator.h"
#include "io/dataset.h"
#include "io/checkpoint.h"
#include "io/hdf5_util.h"
#include "io/text.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"
#include "launch/params.h"

namespace shardrec::cli {

namespace {

// Dense ids of the raw user ids listed in `path` (one per line; blank lines and # comments
// skipped), sorted and unique; an id the dataset does not have is an error naming the line.
std::vector<int64_t> listed_users(const std::string& path, const std::vector<std::string>& raw) {
  std::unordered_map<std::string, int64_t> dense;
  for (size_t u = 0; u < raw.size(); ++u) dense.emplace(raw[u], static_cast<int64_t>(u));
  std::ifstream in(path);
  if (!in) fail("option --users: cannot read " + path);
  std::vector<int64_t> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (line.empty() || line[0] == '#') continue;
    auto it = dense.find(line);
    if (it == dense.end()) io::text::fail_at(path, n, "user " + io::text::show(line) + " is not in the dataset");
    out.push_back(it->second);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

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
  if (parse(argc, argv, "usage: [mpirun -np N] shardrec recommend --data DATA.h5 --params PARAMS.h5 [options]", opts)
          .help)
    return 0;
  if (out != "-") output_target(out);  // a bad target fails before the work
  if (is_pointwise_params(params))
    fail("recommend: " + params + " holds gmf/neumf parameters, which score a (user, item) pair through their MLP; "
         "full ranking by a dot product is for mf and vbpr parameters");
  return run_mpi(
      [&](dist::Comm& comm) {
        check_inputs(comm, c.data, params);
        auto m = load_model(c.data, params, "mod", comm);
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
            chosen = listed_users(users, user_raw);
          }
        });
        const io::UserSlice& tr = m.data.train();
        std::vector<int64_t> mine;
        for (int64_t u : chosen)
          if (u >= tr.user_lo && u < tr.user_hi) mine.push_back(u);
        // This rank's lists, flattened: user, count, then items and scores.
        std::vector<int64_t> rows;
        std::vector<float> scores;
        top_k(*m.model, m.data, mine, k, mask_valid, c.eval, comm,
              [&](int64_t u, std::span<const int64_t> items, std::span<const float> s) {
                rows.push_back(u);
                rows.push_back(static_cast<int64_t>(items.size()));
                rows.insert(rows.end(), items.begin(), items.end());
                scores.insert(scores.end(), s.begin(), s.end());
              });
        // Rank order is user order (users are range-sharded): rank 0 writes them in dense-id order.
        const auto all_rows = dist::allgather(comm, rows);
        const auto all_scores = dist::allgather(comm, scores);
        if (comm.rank() != 0) return 0;
        const auto item_raw = io::read_raw_ids(f, info, "item", 0, info.num_items);
        const char sep = fmt == "csv" ? ',' : '\t';
        std::string text = fmt == "jsonl" ? "" : std::string("user") + sep + "rank" + sep + "item" + sep + "score\n";
        for (int r = 0; r < comm.size(); ++r) {
          const auto& rv = all_rows[r];
          const float* sv = all_scores[r].data();
          for (size_t at = 0; at < rv.size();) {
            const std::string& user = user_raw[rv[at]];
            const int64_t n = rv[at + 1];
            const int64_t* items = &rv[at + 2];
            if (fmt == "jsonl") {
              std::string it, sc;
              for (int64_t j = 0; j < n; ++j) {
                it.append(j ? ", " : "").append(json_str(item_raw[items[j]]));
                sc.append(j ? ", " : "").append(json_number(sv[j]));
              }
              text += "{\"user\": " + json_str(user) + ", \"items\": [" + it + "], \"scores\": [" + sc + "]}\n";
            } else {
              for (int64_t j = 0; j < n; ++j)
                text.append(user).append(1, sep).append(std::to_string(j + 1)).append(1, sep)
                    .append(item_raw[items[j]]).append(1, sep).append(json_number(sv[j])).append("\n");
            }
            sv += n;
            at += 2 + static_cast<size_t>(n);
          }
        }
        write_output(out, text);
        if (out != "-") std::printf("wrote %s: top %d items for %zu users\n", out.c_str(), k, chosen.size());
        return 0;
      },
      argc, argv);
}

}  // namespace shardrec::cli
