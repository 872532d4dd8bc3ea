// shardrec plan: memory per rank, bytes per step and step time of a configuration, before running it.
#include <cstdio>
#include <string>

#include "core/config.h"
#include "core/planner.h"
#include "io/dataset.h"
#include "io/hdf5_util.h"
#include "launch/cli_util.h"
#include "launch/commands.h"
#include "launch/options.h"

namespace shardrec::cli {

namespace {
// The plan as one JSON object (plan --json): what was planned for, the largest rank's memory
// in bytes, the collectives of one step, and the time estimates.
std::string plan_json(const PlanInput& in, const Plan& p) {
  auto num = [](double v) { return json_number(v); };
  std::string s = "{\"model\": " + json_str(in.model) + ", \"world\": " + std::to_string(in.world) +
                  ", \"users\": " + std::to_string(in.users) + ", \"items\": " + std::to_string(in.items) +
                  ", \"train_rows\": " + std::to_string(in.train_rows) + ", \"dim\": " + std::to_string(in.dim) +
                  ", \"batch\": " + std::to_string(in.batch) + ", \"optimizer\": " + json_str(in.optimizer) +
                  ", \"strategy\": " + json_str(in.strategy) + ", \"memory_per_rank\": {\"tables\": " +
                  num(p.rank.tables) + ", \"optimizer\": " + num(p.rank.optimizer) + ", \"data\": " + num(p.rank.data) +
                  ", \"buffers\": " + num(p.rank.buffers) + ", \"dense\": " + num(p.rank.dense) +
                  ", \"graph\": " + num(p.rank.graph) +
                  ", \"total\": " + num(p.rank.total) + "}, \"collectives\": [";
  for (size_t k = 0; k < p.collectives.size(); ++k) {
    const auto& c = p.collectives[k];
    s += (k ? ", " : "") + std::string("{\"name\": ") + json_str(c.name) + ", \"bytes_per_step\": " +
         num(c.bytes_per_step) + ", \"calls_per_step\": " + std::to_string(c.calls_per_step) +
         ", \"allreduce\": " + (c.allreduce ? "true" : "false") + "}";
  }
  return s + "], \"bytes_per_step\": " + num(p.bytes_per_step) + ", \"steps_per_epoch\": " +
         std::to_string(p.steps_per_epoch) + ", \"step_seconds\": " + num(p.step_seconds) +
         ", \"compute_seconds\": " + num(p.compute_seconds) + ", \"comm_seconds\": " + num(p.comm_seconds) +
         ", \"epoch_seconds\": " + num(p.epoch_seconds) + ", \"fits\": " + (p.fits ? "true" : "false") +
         ", \"advice\": " + json_str(p.advice) + "}\n";
}
}  // namespace

int cmd_plan(int argc, char** argv) {
  TrainConfig c;  // the model options it shares with train
  PlanInput in;
  in.heldout_rows = -1;
  std::string preset = "cpu";
  double mem_gib = 0, bw_gbs = 0, lat_us = 0, rate = 0;
  bool json = false;
  Options opts = for_command(config_options(c), kPlan);
  opts.insert(opts.end(), {
      Option("users", in.users, "user table rows").at_least(0),
      Option("items", in.items, "item table rows").at_least(0),
      Option("train-rows", in.train_rows, "training interactions").at_least(0),
      Option("heldout-rows", in.heldout_rows, "valid + test interactions (default: a quarter of the training rows)"),
      Option("feature-dim", in.feature_dim, "vbpr: width of the item features").at_least(0),
      Option("world", in.world, "number of ranks").at_least(1),
      Option("mem-per-rank", mem_gib, "GiB available per rank (0: no check)").at_least(0),
      Option("preset", preset,
             "cpu (12.5 GB/s network, 5 us, 0.5M samples/s per rank) or gpu (100 GB/s, 10 us, 10M samples/s, "
             "4 all-to-alls a step: the CUDA backend routes each step in full)")
          .choices({"cpu", "gpu"}),
      Option("bandwidth", bw_gbs, "GB/s per rank (overrides the preset)"),
      Option("latency-us", lat_us, "microseconds per message (overrides)"),
      Option("samples-per-s", rate, "compute rate per rank (overrides)"),
      Option("json", json, "print the plan as one JSON object (bytes and seconds) instead of the table").flag(),
  });
  const Args args =
      parse(argc, argv, "usage: shardrec plan (--data DATA.h5 | --users U --items I --train-rows M) --world N [options]", opts);
  if (args.help) return 0;
  default_pointwise_loss(c, args);
  in.model = c.model;
  in.loss = c.loss;
  in.dim = c.dim;
  in.negatives = c.negatives;
  in.batch = c.batch;
  in.optimizer = OptimizerConfig::kind_name(c.opt.kind);
  in.strategy = c.strategy;
  in.mg_beta = c.mg_beta;
  in.mlp_layers = c.mlp_layers;
  in.graph_layers = c.graph_layers;
  in.unlabeled = c.il_unlabeled;
  in.ig_train_ratio = std::stod(format_number(c.ig_train_ratio));  // as written, not its float rounding
  if (!c.data.empty()) {
    auto f = io::H5File::open_read(c.data);
    const auto info = io::read_info(f);
    in.users = info.num_users;
    in.items = info.num_items;
    in.train_rows = info.rows[0];
    if (in.heldout_rows < 0) in.heldout_rows = info.rows[1] + info.rows[2];
  }
  if (in.heldout_rows < 0) in.heldout_rows = in.train_rows / 4;
  if (preset == "cpu") { in.bandwidth = 12.5e9; in.latency = 5e-6; in.samples_per_s = 5e5; }
  else { in.bandwidth = 100e9; in.latency = 10e-6; in.samples_per_s = 1e7; in.routes_ahead = false; }
  if (bw_gbs > 0) in.bandwidth = bw_gbs * 1e9;
  if (lat_us > 0) in.latency = lat_us * 1e-6;
  if (rate > 0) in.samples_per_s = rate;
  in.mem_per_rank = mem_gib * 1024.0 * 1024.0 * 1024.0;
  const Plan p = make_plan(in);
  std::fputs(json ? plan_json(in, p).c_str() : format_plan(in, p).c_str(), stdout);
  if (!p.fits) {
    std::fprintf(stderr, "error: the plan does not fit: %s\n", p.advice.c_str());
    return 3;
  }
  return 0;
}

}  // namespace shardrec::cli
