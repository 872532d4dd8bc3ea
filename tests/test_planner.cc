// The plan's byte model against the communicator's counters of real training steps.
#include <gtest/gtest.h>

#include "base/error.h"
#include "core/planner.h"
#include "core/lightgcn_model.h"
#include "core/ncf_model.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"

namespace shardrec {
namespace {

TEST(Planner, BytesPerStepBoundAndTrackTheCounters) {
  auto d = testing::planted_dataset(400, 300, 5, 21);
  TrainConfig c;
  c.data = "<memory>";
  c.dim = 8;
  c.batch = 64;
  c.epochs = 1;
  c.eval_every = 0;
  c.negatives = 2;
  for (int world : {1, 2, 3, 4}) {
    uint64_t sent = 0;
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      Trainer t(c, shard, comm);
      comm.reset_stats();
      t.train_epoch(1);
      int64_t mine = static_cast<int64_t>(comm.stats().alltoallv_bytes_sent);
      comm.allreduce_sum(&mine, 1);
      if (comm.rank() == 0) sent = static_cast<uint64_t>(mine);
    });
    PlanInput in;
    in.users = 400;
    in.items = 300;
    in.train_rows = static_cast<int64_t>(d.train.size());
    in.dim = c.dim;
    in.negatives = c.negatives;
    in.batch = c.batch;
    in.world = world;
    const Plan p = make_plan(in);
    const double steps = static_cast<double>(p.steps_per_epoch);
    double upper = 0, records = 0;
    for (const auto& col : p.collectives) {
      if (col.name == "item ids (counts, with the rows)") continue;  // 8 B a peer, in the rows' exchange
      upper += col.bytes_per_step;
      if (col.name == "item gradient records") records = col.bytes_per_step;
    }
    const double measured = static_cast<double>(sent) / world / steps;  // per rank per step
    if (world == 1) {
      EXPECT_EQ(sent, 0u);  // everything is local
      EXPECT_EQ(upper, 0.0);
      continue;
    }
    // Ids and rows are de-duplicated, so the plan's figure is an upper bound; gradient records
    // are one per remote occurrence, which the plan's expectation should track closely.
    EXPECT_LE(measured, upper * 1.05) << world << " ranks";
    EXPECT_GE(measured, records * 0.9) << world << " ranks";
  }
}

// The CUDA backend routes each step in full: the same bytes, in two more all-to-alls a step.
TEST(Planner, RoutingAheadSavesTwoMessagesAStep) {
  PlanInput in;
  in.users = 1000;
  in.items = 500;
  in.train_rows = 20000;
  in.world = 4;
  in.optimizer = "sgd";
  const Plan ahead = make_plan(in);
  in.routes_ahead = false;
  const Plan full = make_plan(in);
  EXPECT_DOUBLE_EQ(full.bytes_per_step, ahead.bytes_per_step);
  int calls_ahead = 0, calls_full = 0;
  for (const auto& c : ahead.collectives) calls_ahead += c.calls_per_step;
  for (const auto& c : full.collectives) calls_full += c.calls_per_step;
  EXPECT_EQ(calls_ahead, 2);
  EXPECT_EQ(calls_full, 4);
  EXPECT_NEAR(full.comm_seconds - ahead.comm_seconds, 2 * (in.world - 1) * in.latency, 1e-12);
}

TEST(Planner, MemoryAndRefusalWithAdvice) {
  PlanInput in;
  in.users = 100000000;
  in.items = 10000000;
  in.train_rows = 2000000000;
  in.world = 8;
  in.mem_per_rank = 12.0 * (1 << 30);  // 8 ranks need about 13.2 GiB each
  const Plan p = make_plan(in);
  // 110M rows x 64 floats / 8 ranks = 3.28 GiB of tables, twice that of Adam state.
  EXPECT_NEAR(p.rank.tables / (1 << 30), 110e6 / 8 * 64 * 4 / (1 << 30), 0.05);
  EXPECT_NEAR(p.rank.optimizer, 2 * p.rank.tables, 1.0);
  EXPECT_FALSE(p.fits);
  EXPECT_NE(p.advice.find("use at least 16 ranks"), std::string::npos) << p.advice;
  in.world = 16;
  EXPECT_TRUE(make_plan(in).fits);
  in.world = 0;
  EXPECT_THROW(make_plan(in), Error);
}

// The other models: wider rows, VBPR's feature rows, the pointwise models' unlabeled draws and
// the Inverse Gradient's meta-steps, against the counters of real epochs.
TEST(Planner, OtherModelsTrackTheCounters) {
  struct M {
    const char* model;
    const char* loss;
    const char* strategy;
  };
  const M cases[] = {{"vbpr", "bpr", "plain"}, {"vbpr", "bpr", "mirror"}, {"gmf", "bce", "plain"},
                     {"neumf", "idl", "plain"}, {"neumf", "idl", "ig"}};
  const auto labeled = testing::labeled_dataset(300, 200, 5, 21);
  const std::string vbpr_data = testing::vbpr_dataset("planner", 300, 200, 5, 21);
  for (const M& m : cases) {
    TrainConfig c;
    c.model = m.model;
    c.loss = m.loss;
    c.strategy = m.strategy;
    c.dim = 8;
    c.mlp_layers = 2;
    c.batch = 64;
    c.epochs = 1;
    c.eval_every = 0;
    c.il_unlabeled = 2;
    c.ig_train_ratio = 0.75f;
    c.mg_beta = 2;
    const bool vbpr = std::string(m.model) == "vbpr";
    c.data = vbpr ? vbpr_data : "<memory>";
    if (vbpr) c.features = "group";
    int64_t users = 0, items = 0, rows = 0;
    for (int world : {2, 3}) {
      uint64_t sent = 0;
      dist::run_ranks(world, [&](dist::Comm& comm) {
        auto shard = vbpr ? io::load_shard(c.data, comm) : io::shard_from_memory(labeled, comm);
        users = shard.info.num_users;
        items = shard.info.num_items;
        rows = shard.info.rows[0];
        comm.reset_stats();
        if (vbpr) {
          Trainer t(c, shard, comm);
          comm.reset_stats();
          t.train_epoch(1);
        } else {
          Trainer t(c, shard, comm);
          comm.reset_stats();
          t.train_epoch(1);
        }
        int64_t mine = static_cast<int64_t>(comm.stats().alltoallv_bytes_sent);
        comm.allreduce_sum(&mine, 1);
        if (comm.rank() == 0) sent = static_cast<uint64_t>(mine);
      });
      PlanInput in;
      in.model = m.model;
      in.loss = vbpr ? "" : m.loss;
      in.strategy = m.strategy;
      in.feature_dim = vbpr ? 5 + 3 : 0;  // vbpr_dataset: one-hot of 5 groups + 3 noise columns
      in.users = users;
      in.items = items;
      in.train_rows = rows;
      in.dim = c.dim;
      in.mlp_layers = c.mlp_layers;
      in.unlabeled = c.il_unlabeled;
      in.ig_train_ratio = c.ig_train_ratio;
      in.mg_beta = c.mg_beta;
      in.batch = c.batch;
      in.world = world;
      const Plan p = make_plan(in);
      double upper = 0, records = 0;
      for (const auto& col : p.collectives) {
        if (col.name == "item ids (counts, with the rows)" || col.allreduce) continue;
        upper += col.bytes_per_step;
        if (col.name == "item gradient records") records = col.bytes_per_step;
      }
      const double measured = static_cast<double>(sent) / world / static_cast<double>(p.steps_per_epoch);
      const std::string what = std::string(m.model) + " " + m.loss + " " + m.strategy + ", " + std::to_string(world) + " ranks";
      std::printf("[ %s ] bytes per rank per step: measured %.0f, plan's records %.0f, plan's bound %.0f\n",
                  what.c_str(), measured, records, upper);
      EXPECT_LE(measured, upper * 1.05) << what;
      EXPECT_GE(measured, records * 0.9) << what;
      EXPECT_GT(p.rank.dense, 0.0) << what;  // every one of these has replicated dense parameters
    }
  }
  // A NeuMF's dense parameters by hand: dim 8, 2 layers: MLP embedding 16, layers 32->16->8,
  // prediction over [8 gmf, 8 mlp] + bias.
  PlanInput in;
  in.model = "neumf";
  in.dim = 8;
  in.mlp_layers = 2;
  in.users = in.items = in.train_rows = 100;
  const double dense = (32 * 16 + 16) + (16 * 8 + 8) + (16 + 1);
  EXPECT_DOUBLE_EQ(make_plan(in).rank.dense, dense * 24);
  in.model = "vbpr";
  EXPECT_THROW(make_plan(in), Error);  // no --feature-dim
  in.model = "gmf";
  in.strategy = "mirror";
  EXPECT_THROW(make_plan(in), Error);
}

}  // namespace
}  // namespace shardrec

namespace shardrec {
namespace {

// LightGCN: the plan's halo bytes per step track what the graph sends (2K products of its halo
// rows), and its memory grows by the graph's share; one rank sends nothing.
TEST(Planner, GraphHaloTracksTheGraph) {
  auto d = testing::planted_dataset(400, 300, 5, 21);
  TrainConfig c;
  c.data = "<memory>";
  c.model = "lightgcn";
  c.dim = 8;
  c.graph_layers = 2;
  for (int world : {1, 2, 4}) {
    int64_t halo_out = 0;
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      LightGcnModel m(c, shard, comm.rank());
      int64_t mine = m.graph(comm).halo_rows_out();
      comm.allreduce_sum(&mine, 1);
      if (comm.rank() == 0) halo_out = mine;
    });
    PlanInput in;
    in.model = "lightgcn";
    in.users = 400;
    in.items = 300;
    in.train_rows = static_cast<int64_t>(d.train.size());
    in.dim = c.dim;
    in.graph_layers = c.graph_layers;
    in.world = world;
    const Plan p = make_plan(in);
    double planned = 0;
    for (const auto& col : p.collectives)
      if (col.name.rfind("graph halo", 0) == 0) planned = col.bytes_per_step;
    const double measured = static_cast<double>(halo_out) / world * 4 * c.dim * 2 * c.graph_layers;
    EXPECT_GT(p.rank.graph, 0.0);
    if (world == 1) {
      EXPECT_EQ(halo_out, 0);
      EXPECT_EQ(planned, 0.0);
      continue;
    }
    EXPECT_GT(measured, 0.0);
    EXPECT_NEAR(planned / measured, 1.0, 0.35) << world << " ranks: planned " << planned << " measured " << measured;
  }
}

// XSimGCL: the plan's contrast bytes per step track what the training gathers (anchor ids, rows
// and normalisers), and its memory exceeds LightGCN's by the contrast's buffers.
TEST(Planner, ContrastTracksTheGatheredAnchors) {
  auto d = testing::planted_dataset(400, 300, 5, 21);
  for (int world : {2, 3}) {
    double per_step[2] = {0, 0};
    int64_t steps = 0;
    for (int k = 0; k < 2; ++k) {
      TrainConfig c;
      c.data = "<memory>";
      c.model = k == 0 ? "xsimgcl" : "lightgcn";
      c.dim = 8;
      c.graph_layers = 2;
      c.batch = 96;
      c.epochs = 1;
      c.eval_every = 0;
      dist::run_ranks(world, [&](dist::Comm& comm) {
        auto shard = io::shard_from_memory(d, comm);
        Trainer t(c, shard, comm);
        const uint64_t before = comm.stats().allgather_bytes_sent;
        t.fit();
        int64_t sent = static_cast<int64_t>(comm.stats().allgather_bytes_sent - before);
        comm.allreduce_sum(&sent, 1);
        if (comm.rank() == 0) {
          steps = (static_cast<int64_t>(d.train.size()) + c.batch - 1) / c.batch;
          per_step[k] = static_cast<double>(sent) / world / static_cast<double>(steps);
        }
      });
    }
    PlanInput in;
    in.model = "xsimgcl";
    in.users = 400;
    in.items = 300;
    in.train_rows = static_cast<int64_t>(d.train.size());
    in.dim = 8;
    in.graph_layers = 2;
    in.batch = 96;
    in.world = world;
    const Plan p = make_plan(in);
    double planned = 0;
    for (const auto& col : p.collectives)
      if (col.name.rfind("contrast", 0) == 0) planned = col.bytes_per_step;
    const double measured = per_step[0] - per_step[1];  // what LightGCN does not gather
    EXPECT_GT(measured, 0.0);
    EXPECT_NEAR(planned / measured, 1.0, 0.1) << world << " ranks: planned " << planned << " measured " << measured;
    PlanInput gcn = in;
    gcn.model = "lightgcn";
    EXPECT_GT(p.rank.graph, make_plan(gcn).rank.graph);
  }
}

}  // namespace
}  // namespace shardrec
