// `shardrec plan`: what a configuration costs per rank before it runs. Memory of the tables,
// optimizer state, data slices and step buffers; bytes each rank sends per step in each
// collective; and a step-time estimate from stated bandwidths. The byte model follows
// dist/sharded_embedding.cc exactly (tested against the communicator's counters):
//   users are local (range partition = data partition): no traffic;
//   item ids: one all-to-all of counts (8 B per peer) and one of unique remote ids (8 B each, +8
//     B for the gradient-record count that rides along);
//   rows: one all-to-all of unique remote ids x 4d bytes;
//   gradients: one all-to-all of remote occurrences x (16 + 4d) bytes.
// "Unique" is bounded by the occurrences; the plan reports that upper bound.
// Models change the row widths and what else moves:
//   mf:    user and item rows d wide;
//   vbpr:  user rows 2d, item rows d, plus F frozen feature floats per item that travel with the
//          item rows once per step; the projection W (d x F) and b (d) are replicated, and their
//          exact gradient sums (8 B per parameter) are allreduced every step;
//   gmf, neumf: rows d (+ the MLP embedding, d * 2^(L-1), for neumf); a labeled row scores
//          1 + unlabeled items (loss idl or bce-neg; bce scores the labeled item only); the MLP
//          and prediction layer are replicated and their exact sums allreduced every step;
//          strategy ig: of each epoch, ig_train_ratio of the rows take plain BCE steps and the
//          rest meta-steps (rows gathered twice: theta and the candidate moves; records sent
//          twice: the candidate reduction and the main step; dense sums allreduced twice).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shardrec {

struct PlanInput {
  int64_t users = 0, items = 0, train_rows = 0, heldout_rows = 0;
  std::string model = "mf";  // mf, vbpr, gmf, neumf
  std::string loss = "";     // gmf/neumf: bce, idl or bce-neg ("" = bce)
  int feature_dim = 0;       // vbpr: F, the item features' width
  int mlp_layers = 3;        // neumf
  int graph_layers = 3;      // lightgcn: propagation layers K
  int unlabeled = 1;         // gmf/neumf: unlabeled draws per labeled row (idl, bce-neg)
  double ig_train_ratio = 0.9;
  int dim = 64, negatives = 1;
  int64_t batch = 2048;
  int world = 1;
  std::string optimizer = "adam_dense";
  std::string strategy = "plain";
  int mg_beta = 3;
  int64_t score_budget = 1 << 24;
  double mem_per_rank = 0;        // bytes available per rank; 0 = no check
  double bandwidth = 10e9;        // bytes/s per rank into the network
  double latency = 5e-6;          // seconds per message
  double samples_per_s = 5e5;     // compute rate of one rank (measured: docs/benchmarks.md)
  double graph_adds_per_s = 1.9e10;  // propagation: row additions (floats) per second per rank (measured)
  // The CPU engine sends the next step's ids with this step's rows and gradients; the CUDA
  // backend routes each step in full (two more all-to-alls).
  bool routes_ahead = true;
};

struct PlanRank {
  double tables = 0, optimizer = 0, data = 0, buffers = 0, total = 0;  // bytes
  double graph = 0;  // graph models: edges, halo and propagation buffers (in total)
  double dense = 0;  // replicated dense parameters with their optimizer state and exact sums (in total)
};

struct PlanCollective {
  std::string name;
  double bytes_per_step = 0;  // sent by one rank (to other ranks)
  int calls_per_step = 0;
  bool allreduce = false;  // an allreduce (not an all-to-all-v)
};

struct Plan {
  PlanRank rank;  // the largest rank (ceil shares)
  std::vector<PlanCollective> collectives;
  double bytes_per_step = 0;
  double step_seconds = 0, compute_seconds = 0, comm_seconds = 0;
  double epoch_seconds = 0;
  int64_t steps_per_epoch = 0;
  bool fits = true;
  std::string advice;  // what to change when it does not fit
};

Plan make_plan(const PlanInput& in);
std::string format_plan(const PlanInput& in, const Plan& p);

}  // namespace shardrec
