#include "core/planner.h"

#include <algorithm>

#include <cmath>
#include <cstdio>

#include "base/error.h"
#include "core/model_kind.h"
#include "kernels/row_optimizer.h"

namespace shardrec {

namespace {
double ceil_div(double a, double b) { return std::ceil(a / b); }

// Optimizer state in floats per row of width d.
double state_floats(const std::string& opt, int d) { return traits_of(OptimizerConfig::parse_kind(opt)).state_floats(d); }

std::string mib(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  return buf;
}

}  // namespace

Plan make_plan(const PlanInput& in) {
  if (in.users <= 0 || in.items <= 0 || in.train_rows <= 0) fail("plan: users, items and train rows must be positive");
  if (in.world < 1) fail("plan: --world must be at least 1");
  if (in.dim < 1 || in.negatives < 1 || in.batch < 1) fail("plan: dim, negatives and batch must be positive");
  const ModelKind& kind = model_kind(in.model);
  const auto& st = kind.strategies;
  if (std::find(st.begin(), st.end(), in.strategy) == st.end())
    fail("plan: strategy " + in.strategy + " is not one that model " + in.model + " takes");
  const ModelShape sh = kind.shape(in);
  Plan p;
  const double N = in.world, d = sh.item_w, per = sh.per;
  const double urows = ceil_div(in.users, N), irows = ceil_div(in.items, N);
  const double sf = state_floats(in.optimizer, static_cast<int>(sh.user_w)),
               sfi = state_floats(in.optimizer, static_cast<int>(sh.item_w));
  p.rank.tables = (urows * sh.user_w + irows * (sh.item_w + sh.feat_w)) * 4;
  p.rank.optimizer = (urows * sf + irows * sfi) * 4;
  // Dense parameters: values, Adam's two moments, the gradient and its int64 exact sums.
  p.rank.dense = sh.dense * (4 + 8 + 4 + 8);
  // Data: training rows (4 B item id) and held-out rows, indptr per split (8 B per user), and the
  // epoch's sample order (8 B per training row).
  const double trows = ceil_div(in.train_rows, N), hrows = ceil_div(in.heldout_rows, N);
  p.rank.data = (trows + hrows) * 4 + 3 * (urows + 1) * 8 + trows * 8;
  // Step buffers: rows and gradients of the rank's samples (users and items), routing arrays,
  // gradient records out and in, and the evaluation's score block.
  const double b = ceil_div(in.batch, N);  // samples per rank per step (expected)
  const double occ = b * per;              // item occurrences
  const double remote = N > 1 ? occ * (N - 1) / N : 0.0;
  const double rec = 16 + 4 * d;
  const double q = sh.feat_w > 0 ? 2 * d : d;  // an item's scoring vector (vbpr: [e, W f + b])
  p.rank.buffers = 2 * (b * sh.user_w * 4 + occ * q * 4)  // U, gU, I (or Q), gI (or gQ)
                   + occ * sh.feat_w * 4                   // vbpr: the occurrences' feature rows
                   + occ * 40                              // ids, keys, owners, local rows, slots
                   + 2 * remote * rec                      // gradient records out and in
                   + 2 * remote * 4 * (d + sh.feat_w)      // rows out and in
                   + in.score_budget * 4.0;                // full-ranking scores
  // Graph models (dist/graph.h): a rank's edges at both ends (8 B offsets per row, 4 B per edge
  // end), and per product the rows its edges need, own and remote, in a send and a receive
  // buffer; distinct rows touched by E random edges over R rows: R (1 - exp(-E / R)).
  const int K = sh.graph_layers;
  const double edges = trows;  // at the users' owner; about as many at the items' owners
  auto touched = [](double rows, double e) { return rows * (1.0 - std::exp(-e / rows)); };
  const double nbr_rows = K > 0 ? touched(static_cast<double>(in.items), edges) +
                                      touched(static_cast<double>(in.users), ceil_div(in.train_rows, N))
                                : 0.0;
  const double halo_rows = nbr_rows * (N - 1) / N;
  if (K > 0)
    p.rank.graph = (urows + irows) * (8 + 4) + 2 * edges * 4 + nbr_rows * 8 + 2 * nbr_rows * d * 4 +
                   4 * (urows + irows) * d * 4;  // scoring rows, two layers, the row gradients
  // XSimGCL's contrast (core/xsimgcl.h): the step's distinct users and items over all ranks
  // (as R (1 - exp(-B / R)): uniform draws, so an upper estimate under popularity skew), their
  // two normalised rows everywhere, this rank's rows of the softmax kept, the layer's rows and
  // their gradients.
  const double au = sh.contrast ? touched(static_cast<double>(in.users), static_cast<double>(in.batch)) : 0.0;
  const double ai = sh.contrast ? touched(static_cast<double>(in.items), static_cast<double>(in.batch)) : 0.0;
  if (sh.contrast)
    p.rank.graph += (au + ai) * 2 * d * 4 + (au * au + ai * ai) / N * 4 + 2 * (urows + irows) * d * 4;
  p.rank.total = p.rank.tables + p.rank.optimizer + p.rank.data + p.rank.buffers + p.rank.dense + p.rank.graph;

  // IG: a share of the epoch's steps are meta-steps, which gather and send records twice.
  const double meta = in.strategy == "ig" ? 1.0 - in.ig_train_ratio : 0.0;
  // Training-train steps of IG score the labeled item only.
  const double occ_scale = in.strategy == "ig" ? in.ig_train_ratio / per + meta : 1.0;
  const double r_remote = remote * occ_scale;
  // The next step's ids travel with this step's rows (their counts) and gradient records (the
  // ids): no call of their own.
  const int own_call = in.routes_ahead ? 0 : 1;
  p.collectives = {
      {in.routes_ahead ? "item ids (counts, with the rows)" : "item id counts", N > 1 ? 8 * (N - 1) : 0, own_call},
      {in.routes_ahead ? "item ids (with the gradient records)" : "item ids",
       r_remote * 8 + (N > 1 ? 8 * (N - 1) : 0), own_call},
      {"item rows", r_remote * 4 * d, 1},
      {"item gradient records", r_remote * rec, 1},
  };
  if (sh.feat_w > 0) p.collectives.push_back({"item feature rows (vbpr)", remote * 4 * sh.feat_w, 1});
  if (sh.dense > 0 && N > 1)
    p.collectives.push_back({"dense exact gradient sums (allreduce)", sh.dense * 8 * (1 + meta), 1, true});
  if (meta > 0)
    p.collectives.push_back({"meta-steps: candidate rows + records (averaged)", remote * meta * (4 * d + rec), 2});
  double extra = 1.0;  // mirror batches repeat rows and gradients
  if (in.strategy == "mirror") {
    extra = 1.0 / in.mg_beta;
    p.collectives.push_back({"mirror pass: rows + gradients (every beta-th step, averaged)",
                             (remote * 4 * d + remote * rec) * extra, 2});
  }
  // Each pass propagates the whole graph: K products forward and K backward.
  const double passes = in.strategy == "mirror" ? 1.0 + 1.0 / in.mg_beta : 1.0;
  if (K > 0 && N > 1)
    p.collectives.push_back({"graph halo rows (2K products per pass)", halo_rows * 4 * d * 2 * K * passes,
                             static_cast<int>(2 * K)});
  if (sh.contrast && N > 1) {
    // Every rank sends its ids (users its own, items any), then its anchors' rows and softmax
    // normalisers, to the N - 1 others.
    const double ids = au / N + touched(static_cast<double>(in.items), b);
    p.collectives.push_back({"contrast: anchor ids, rows, normalisers (3 gathers per pass)",
                             ((ids * 8) + (au + ai) / N * (2 * d + 2) * 4) * (N - 1) * passes, 3});
  }
  for (const auto& c : p.collectives) p.bytes_per_step += c.bytes_per_step;
  if (in.strategy == "ig") {  // two phases, each with its own last partial batch
    const double tt = std::floor(static_cast<double>(in.train_rows) * in.ig_train_ratio);
    p.steps_per_epoch = static_cast<int64_t>(ceil_div(tt, in.batch) + ceil_div(in.train_rows - tt, in.batch));
  } else {
    p.steps_per_epoch = static_cast<int64_t>(ceil_div(in.train_rows, in.batch));
  }
  p.compute_seconds = b / in.samples_per_s * passes;
  if (K > 0) p.compute_seconds += 2.0 * K * passes * 2 * edges * d / in.graph_adds_per_s;
  // The contrast: similarities, then two weighted sums, for this rank's rows and columns
  // (recomputing other ranks' similarities for its columns), at the propagation's rate.
  if (sh.contrast)
    p.compute_seconds += (au * au + ai * ai) / N * d * (3.0 + (N - 1.0) / N) * 2 * passes / in.graph_adds_per_s;
  // Blocking all-to-alls a step: rows and gradients (the next step's ids travel with them, or
  // take two of their own).
  const double messages = (N > 1 ? N - 1 : 0) * (2 + 2 * own_call + (in.strategy == "mirror" ? 2.0 / in.mg_beta : 0) +
                                                 2.0 * K * passes);
  p.comm_seconds = p.bytes_per_step / in.bandwidth + messages * in.latency;
  p.step_seconds = p.compute_seconds + p.comm_seconds;
  p.epoch_seconds = p.step_seconds * p.steps_per_epoch;
  if (in.optimizer == "adam_dense")
    p.epoch_seconds += p.steps_per_epoch * (urows + irows) * d * 2e-9;  // every row, every step
  if (in.mem_per_rank > 0 && p.rank.total > in.mem_per_rank) {
    p.fits = false;
    // The smallest world that fits, if the tables are what does not fit.
    int need = in.world;
    for (int w = in.world; w <= (1 << 20); w *= 2) {
      PlanInput t = in;
      t.world = w;
      t.mem_per_rank = 0;
      if (make_plan(t).rank.total <= in.mem_per_rank) { need = w; break; }
    }
    p.advice = "needs " + mib(p.rank.total) + " per rank, " + mib(in.mem_per_rank) + " available: ";
    if (need > in.world) p.advice += "use at least " + std::to_string(need) + " ranks";
    else p.advice += "reduce the score budget or the batch";
    if (sf > 1) p.advice += ", or row-wise adagrad (optimizer state " + mib(p.rank.optimizer) + " -> " +
                            mib((urows + irows) * 4) + ")";
  }
  return p;
}

std::string format_plan(const PlanInput& in, const Plan& p) {
  char buf[512];
  std::string s;
  std::snprintf(buf, sizeof buf,
                "plan: %s, %lld users x %lld items, %lld training rows, dim %d, %s, batch %lld, %d rank(s), %s\n",
                in.model.c_str(), (long long)in.users, (long long)in.items, (long long)in.train_rows, in.dim,
                in.optimizer.c_str(), (long long)in.batch, in.world, in.strategy.c_str());
  s += buf;
  s += "memory per rank (largest): tables " + mib(p.rank.tables) + ", optimizer " + mib(p.rank.optimizer) +
       ", data " + mib(p.rank.data) + ", buffers " + mib(p.rank.buffers) +
       (p.rank.dense > 0 ? ", dense (replicated) " + mib(p.rank.dense) : std::string()) +
       (p.rank.graph > 0 ? ", graph " + mib(p.rank.graph) : std::string()) + " = " +
       mib(p.rank.total) + "\n";
  s += "bytes sent per rank per step:\n";
  for (const auto& c : p.collectives) {
    std::snprintf(buf, sizeof buf, "  %-60s %12.0f B\n", c.name.c_str(), c.bytes_per_step);
    s += buf;
  }
  std::snprintf(buf, sizeof buf,
                "  %-60s %12.0f B (upper bound: every id of a step distinct)\n"
                "step: %.3f ms compute + %.3f ms communication; %lld steps per epoch; epoch about %.1f s\n",
                "total", p.bytes_per_step, p.compute_seconds * 1e3, p.comm_seconds * 1e3,
                (long long)p.steps_per_epoch, p.epoch_seconds);
  s += buf;
  if (!p.fits) s += "does not fit: " + p.advice + "\n";
  return s;
}

}  // namespace shardrec
