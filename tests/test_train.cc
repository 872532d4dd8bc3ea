// Training: the optimizers' arithmetic, the sharded reduction, learning on planted data, and
// bitwise world-size invariance (ranks as threads) for every optimizer, loss and placement.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>

#include "base/error.h"
#include "base/thread_pool.h"
#include "kernels/embedding_ops.h"
#include "core/cpu_engine.h"
#include "core/mf_model.h"
#include "core/epoch_order.h"
#include "core/landscape.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"

namespace shardrec {
namespace {

using testing::full_table;

struct RunOut {
  std::vector<float> user, item;
  std::vector<double> losses;
  EvalResult test;
};

RunOut train_on(int world, const TrainConfig& cfg, const io::PreparedDataset& d) {
  RunOut out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(cfg, shard, comm);
    auto fit = t.fit();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    auto test = evaluate(t.model_as<MFModel>(), shard, 2, cfg.eval, comm);
    if (comm.rank() == 0) {
      out.user = u;
      out.item = i;
      for (auto& e : fit.epochs) out.losses.push_back(e.loss);
      out.test = test;
    }
  });
  return out;
}

TrainConfig small_config() {
  TrainConfig c;
  c.data = "<memory>";
  c.dim = 12;
  c.batch = 64;
  c.epochs = 3;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.eval.ks = {5, 10};
  return c;
}

struct Variant {
  const char* name;
  OptimizerConfig::Kind opt;
  const char* loss;
  int negatives;
  float l2;
  const char* item_sharding;
  const char* strategy = "plain";
};

class WorldInvariance : public ::testing::TestWithParam<Variant> {};

TEST_P(WorldInvariance, ParametersAreBitwiseIdenticalFor1To4Ranks) {
  const Variant v = GetParam();
  auto d = testing::planted_dataset(37, 29, 4, 5);
  TrainConfig c = small_config();
  c.opt.kind = v.opt;
  c.loss = v.loss;
  c.negatives = v.negatives;
  c.l2 = v.l2;
  c.item_sharding = v.item_sharding;
  c.strategy = v.strategy;
  c.mg_beta = 2;
  c.batch = 50;  // does not divide the number of rows: the last step is partial
  const RunOut ref = train_on(1, c, d);
  // Training moved the parameters (so the comparison is not between two initial states).
  TrainConfig c0 = c;
  c0.epochs = 0;
  EXPECT_NE(train_on(1, c0, d).item, ref.item);
  // Ranks, and threads inside each rank (--threads): 2-4 ranks of 1 thread, 1-3 ranks of 2 and 3.
  std::vector<std::pair<int, int>> layouts = {{2, 1}, {3, 1}, {4, 1}};
  for (int threads : {2, 3})
    for (int world = 1; world <= 3; ++world) layouts.push_back({world, threads});
  for (const auto& [world, threads] : layouts) {
    TrainConfig ct = c;
    ct.threads = threads;
    const RunOut got = train_on(world, ct, d);
    ASSERT_EQ(got.user.size(), ref.user.size());
    EXPECT_EQ(0, std::memcmp(got.user.data(), ref.user.data(), ref.user.size() * sizeof(float)))
        << v.name << " user table differs with " << world << " ranks x " << threads << " threads";
    EXPECT_EQ(0, std::memcmp(got.item.data(), ref.item.data(), ref.item.size() * sizeof(float)))
        << v.name << " item table differs with " << world << " ranks x " << threads << " threads";
    EXPECT_EQ(got.losses, ref.losses) << world << " ranks x " << threads << " threads";
    EXPECT_EQ(got.test.values, ref.test.values) << world << " ranks x " << threads << " threads";
  }
}

// Threads at a size where their ranges overlap in time (steps of thousands of samples): every
// optimizer and strategy gives the bits of one thread.
TEST(Threads, ParametersAreBitwiseIdenticalFor1To3ThreadsAtScale) {
  auto d = testing::planted_dataset(600, 300, 4, 40);
  for (const auto& [kind, strategy] : {std::pair{OptimizerConfig::Kind::kSgd, "plain"},
                                        std::pair{OptimizerConfig::Kind::kAdam, "mirror"},
                                        std::pair{OptimizerConfig::Kind::kAdamDense, "plain"}}) {
    TrainConfig c = small_config();
    c.dim = 48;
    c.batch = 4000;
    c.epochs = 2;
    c.negatives = 2;
    c.opt.kind = kind;
    c.strategy = strategy;
    c.mg_beta = 2;
    const RunOut ref = train_on(1, c, d);
    for (const auto& [world, threads] : {std::pair{1, 2}, std::pair{1, 3}, std::pair{2, 2}}) {
      TrainConfig ct = c;
      ct.threads = threads;
      const RunOut got = train_on(world, ct, d);
      EXPECT_EQ(0, std::memcmp(got.user.data(), ref.user.data(), ref.user.size() * sizeof(float)))
          << strategy << " " << world << " ranks x " << threads << " threads";
      EXPECT_EQ(0, std::memcmp(got.item.data(), ref.item.data(), ref.item.size() * sizeof(float)))
          << strategy << " " << world << " ranks x " << threads << " threads";
      EXPECT_EQ(got.losses, ref.losses);
    }
  }
}

// The pool itself: every index exactly once, each thread one contiguous range (the split by
// index; short loops on the caller alone), and an exception in any range reaches the caller
// after all ranges ended.
TEST(ThreadPool, SplitsByIndexAndPassesErrorsOn) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 7, 40, 1000}) {
      std::vector<int> visits(n, 0);
      std::vector<std::pair<size_t, size_t>> range(threads, {0, 0});
      pool.run(n, [&](size_t lo, size_t hi, int t) {
        range[t] = {lo, hi};
        for (size_t i = lo; i < hi; ++i) ++visits[i];
      }, 1);
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(visits[i], 1) << threads << " " << n << " " << i;
      if (n >= static_cast<size_t>(threads)) {
        for (int t = 0; t < threads; ++t) {
          EXPECT_EQ(range[t], std::make_pair(ThreadPool::begin(n, t, threads), ThreadPool::begin(n, t + 1, threads)));
        }
      }
    }
    EXPECT_THROW(pool.run(100, [&](size_t lo, size_t, int) {
      if (lo >= 50 || threads == 1) fail("range starting at " + std::to_string(lo));
    }, 1), Error);
    int sum = 0;  // still usable afterwards
    std::mutex mu;
    pool.run(100, [&](size_t lo, size_t hi, int) {
      std::lock_guard<std::mutex> lock(mu);
      sum += static_cast<int>(hi - lo);
    }, 1);
    EXPECT_EQ(sum, 100);
  }
}

// --threads 0: the cores the launcher gave the rank, shared out among ranks that are not bound to
// cores of their own.
TEST(Threads, DefaultIsTheCoresTheLauncherGaveTheRank) {
  EXPECT_EQ(auto_threads(2, 2, 0, 0), 2);    // no launcher: every core of the process
  EXPECT_EQ(auto_threads(2, 2, 1, 0), 2);    // mpirun -np 1 --map-by slot:PE=2
  EXPECT_EQ(auto_threads(1, 2, 2, 0), 1);    // mpirun -np 2 --bind-to core
  EXPECT_EQ(auto_threads(2, 2, 2, 0), 1);    // mpirun -np 2 --bind-to none: one core each
  EXPECT_EQ(auto_threads(2, 2, 3, 0), 1);    // -np 3 bound to one socket of 2 cores: no more than 1
  EXPECT_EQ(auto_threads(8, 16, 2, 0), 8);   // one rank per socket of 8
  EXPECT_EQ(auto_threads(16, 16, 2, 0), 8);  // two unbound ranks on 16 cores
  EXPECT_EQ(auto_threads(16, 16, 1, 4), 4);  // srun --cpus-per-task=4 in a wider cpuset
  EXPECT_EQ(auto_threads(0, 4, 0, 0), 1);    // nothing known: one thread
  TrainConfig c;
  c.threads = 3;
  EXPECT_EQ(cpu_threads(c), 3);  // given: as given
  c.threads = 0;
  EXPECT_GE(cpu_threads(c), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, WorldInvariance,
    ::testing::Values(Variant{"sgd_bpr", OptimizerConfig::Kind::kSgd, "bpr", 1, 0.0f, "mod"},
                      Variant{"adagrad_bce_2neg", OptimizerConfig::Kind::kAdagrad, "bce", 2, 0.0f, "mod"},
                      Variant{"adam_lazy_l2", OptimizerConfig::Kind::kAdam, "bpr", 1, 0.01f, "mod"},
                      Variant{"adam_dense_3neg", OptimizerConfig::Kind::kAdamDense, "bpr", 3, 0.0f, "mod"},
                      Variant{"items_range", OptimizerConfig::Kind::kAdamDense, "bce", 1, 0.0f, "range"},
                      Variant{"items_on_rank0", OptimizerConfig::Kind::kSgd, "bpr", 1, 0.0f, "table:0"},
                      Variant{"mirror_adam_dense", OptimizerConfig::Kind::kAdamDense, "bpr", 1, 0.0f, "mod", "mirror"},
                      Variant{"mirror_adagrad_bce", OptimizerConfig::Kind::kAdagrad, "bce", 2, 0.01f, "mod", "mirror"}),
    [](const auto& info) { return std::string(info.param.name); });

// Mirror Gradient's algebra, checked against the plain step it is built from.
class TwiceOnMirrorBatches final : public Strategy {
 public:
  explicit TwiceOnMirrorBatches(int beta) : beta_(beta) {}
  void step(int64_t batch, StepOps& ops) override {
    ops.forward_backward(1.0f, true);
    ops.apply();
    if (batch % beta_ == 0) {
      ops.forward_backward(1.0f, false);
      ops.apply();
    }
  }
  std::string describe() const override { return "twice"; }

 private:
  int beta_;
};

struct StrategyRun {
  std::vector<float> item;
  double loss;
  dist::CommStats stats;
  int64_t adam_steps;
};

StrategyRun run_strategy(int world, TrainConfig c, const io::PreparedDataset& d,
                         std::function<std::unique_ptr<Strategy>()> make = {}) {
  StrategyRun out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    if (make) t.set_strategy(make());
    comm.reset_stats();
    const double loss = t.train_epoch(1);
    const auto stats = comm.stats();
    auto item = full_table(t.model().item, comm);
    if (comm.rank() == 0) {
      out = {item, loss, stats, t.model().item.optimizer().step()};
    }
  });
  return out;
}

TEST(MirrorGradient, WithoutTheMirrorTermItIsPlainSgd) {
  auto d = testing::planted_dataset(40, 30, 3, 2);
  TrainConfig c = small_config();
  c.opt.kind = OptimizerConfig::Kind::kSgd;
  c.batch = 32;
  const auto plain = run_strategy(2, c, d);
  c.strategy = "mirror";
  c.mg_alpha1 = 1.0f;
  c.mg_alpha2 = 0.0f;  // the second pass computes zero gradients: SGD leaves the rows alone
  const auto mg = run_strategy(2, c, d);
  EXPECT_EQ(mg.item, plain.item);
  EXPECT_EQ(mg.loss, plain.loss);
}

TEST(MirrorGradient, NegativeAlpha2IsASecondPlainStepOnTheSameBatch) {
  // theta' = theta - a1*lr*g(theta); theta'' = theta' + a2*lr*g(theta'): with a1 = 1, a2 = -1
  // this is two plain steps on the same batch (same negatives), for any optimizer.
  auto d = testing::planted_dataset(40, 30, 3, 2);
  for (auto kind : {OptimizerConfig::Kind::kSgd, OptimizerConfig::Kind::kAdam}) {
    TrainConfig c = small_config();
    c.opt.kind = kind;
    c.batch = 32;
    c.strategy = "mirror";
    c.mg_alpha1 = 1.0f;
    c.mg_alpha2 = -1.0f;
    c.mg_beta = 3;
    const auto mg = run_strategy(3, c, d);
    const auto twice = run_strategy(3, c, d, [] { return std::make_unique<TwiceOnMirrorBatches>(3); });
    EXPECT_EQ(mg.item, twice.item) << OptimizerConfig::kind_name(kind);
    EXPECT_EQ(mg.loss, twice.loss);
  }
}

TEST(MirrorGradient, SecondPassReusesTheRoutingAndAdvancesAdamTwice) {
  auto d = testing::planted_dataset(60, 40, 3, 6);
  TrainConfig c = small_config();
  c.batch = 40;
  const int64_t rows = static_cast<int64_t>(d.train.size());
  const int64_t steps = (rows + c.batch - 1) / c.batch;
  const int64_t mirror_steps = (steps + 2) / 3;  // batches 0, 3, 6, ...
  for (int world : {2, 3}) {
    c.strategy = "plain";
    const auto plain = run_strategy(world, c, d);
    c.strategy = "mirror";
    const auto mg = run_strategy(world, c, d);
    EXPECT_NE(mg.item, plain.item);
    // Per plain step: rows and gradients, which carry the next step's item ids (see StepRounds);
    // the epoch's first step also exchanges its ids' counts and its ids.
    EXPECT_EQ(plain.stats.alltoallv_calls, static_cast<uint64_t>(2 * steps + 1));
    EXPECT_EQ(plain.stats.alltoall_calls, 1u);
    // A mirror batch adds rows and gradients again, but no id exchange and no count exchange.
    EXPECT_EQ(mg.stats.alltoallv_calls, plain.stats.alltoallv_calls + 2 * mirror_steps);
    EXPECT_EQ(mg.stats.alltoall_calls, plain.stats.alltoall_calls);
    EXPECT_EQ(plain.adam_steps, steps);
    EXPECT_EQ(mg.adam_steps, steps + mirror_steps);
  }
}

TEST(StepRounds, APlainStepIsTwoExchangesOnAnyNumberOfRanks) {
  // The same bits on 1 to 4 ranks, and two exchanges a step: the rows and the gradients. The
  // next step's item ids travel with them (their counts with the rows, the ids with the
  // gradients); only the epoch's first step routes in full (counts, then ids).
  auto d = testing::planted_dataset(60, 40, 3, 6);
  TrainConfig c = small_config();
  c.batch = 24;
  const int64_t steps = (static_cast<int64_t>(d.train.size()) + c.batch - 1) / c.batch;
  const auto one = run_strategy(1, c, d);
  for (int world : {2, 3, 4}) {
    const auto r = run_strategy(world, c, d);
    EXPECT_EQ(r.item, one.item) << world;
    EXPECT_EQ(r.stats.alltoall_calls, 1u) << world;
    EXPECT_EQ(r.stats.alltoallv_calls, static_cast<uint64_t>(2 * steps + 1)) << world;
  }
}

TEST(Landscape, SurfaceAndSharpnessDoNotDependOnRanksOrMoveParameters) {
  auto d = testing::planted_dataset(50, 30, 3, 12);
  TrainConfig c = small_config();
  c.epochs = 5;
  std::vector<LandscapePoint> ref;
  Sharpness ref_sharp;
  for (int world : {1, 3}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      Trainer t(c, shard, comm);
      t.fit();
      const auto before = full_table(t.model().item, comm);
      const double base = t.training_loss();
      const auto surface = loss_surface(t, 2, 5, 1.0, 3);
      const auto sharp = sharpness(t, 3, 0.5, 3);
      EXPECT_EQ(full_table(t.model().item, comm), before);  // restored
      ASSERT_EQ(surface.size(), 25u);
      EXPECT_EQ(surface[12].a, 0.0);
      EXPECT_EQ(surface[12].b, 0.0);
      EXPECT_DOUBLE_EQ(surface[12].loss, base);  // the centre is the trained point
      EXPECT_EQ(sharp.base_loss, base);
      EXPECT_GT(sharp.mean_increase, 0.0);  // a trained point is near a minimum
      EXPECT_GT(surface[0].loss, base);
      if (comm.rank() != 0) return;
      if (world == 1) {
        ref = surface;
        ref_sharp = sharp;
      } else {
        for (size_t k = 0; k < ref.size(); ++k) EXPECT_EQ(surface[k].loss, ref[k].loss);
        EXPECT_EQ(sharp.mean_increase, ref_sharp.mean_increase);
      }
    });
  }
}

TEST(Training, LearnsPlantedStructure) {
  auto d = testing::planted_dataset(200, 120, 6, 9);
  TrainConfig c = small_config();
  c.dim = 16;
  c.epochs = 0;
  c.opt.lr = 0.02f;
  const double before = train_on(2, c, d).test.get("recall@10");
  c.epochs = 30;
  const RunOut after = train_on(2, c, d);
  EXPECT_LT(after.losses.back(), after.losses.front());
  EXPECT_LT(after.losses.back(), 0.5);
  // 120 items, 10 recommended: random ranking finds about 8% of held-out items; 20% of the
  // held-out items are random draws that no model can predict, which caps what is reachable.
  EXPECT_LT(before, 0.15);
  EXPECT_GT(after.test.get("recall@10"), 0.25);
  EXPECT_GT(after.test.get("auc"), 0.7);
}

TEST(Training, EarlyStoppingRestoresTheBestValidatedParameters) {
  auto d = testing::planted_dataset(80, 50, 4, 3);
  TrainConfig c = small_config();
  c.epochs = 40;
  c.eval_every = 1;
  c.patience = 2;
  c.opt.lr = 0.2f;  // overshoots, so validation stops improving early
  c.opt.kind = OptimizerConfig::Kind::kSgd;
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    auto fit = t.fit();
    ASSERT_TRUE(fit.stopped_early);
    EXPECT_EQ(static_cast<int>(fit.epochs.size()), fit.best_epoch + c.patience);
    const auto v = evaluate(t.model_as<MFModel>(), shard, 1, c.eval, comm);
    EXPECT_DOUBLE_EQ(v.get(c.valid_metric), fit.best_valid);
  });
}

// Optimizer arithmetic on one row, against the formulas written out.
TEST(Optimizer, AdamMatchesPyTorchsFormula) {
  OptimizerConfig c;
  c.kind = OptimizerConfig::Kind::kAdam;
  c.lr = 0.1f;
  RowOptimizer o(c, 1, 2);
  float w[2] = {1.0f, -1.0f};
  const float g[2] = {0.5f, -2.0f};
  double m[2] = {0, 0}, v[2] = {0, 0}, ref[2] = {1.0, -1.0};
  for (int t = 1; t <= 3; ++t) {
    o.begin_step();
    o.update(0, w, g);
    for (int k = 0; k < 2; ++k) {
      m[k] = 0.9 * m[k] + 0.1 * g[k];
      v[k] = 0.999 * v[k] + 0.001 * g[k] * g[k];
      const double mh = m[k] / (1 - std::pow(0.9, t)), vh = v[k] / (1 - std::pow(0.999, t));
      ref[k] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
      EXPECT_NEAR(w[k], ref[k], 1e-5);
    }
  }
}

TEST(Optimizer, DenseAdamMovesUntouchedRowsLazyAdamDoesNot) {
  for (auto kind : {OptimizerConfig::Kind::kAdam, OptimizerConfig::Kind::kAdamDense}) {
    OptimizerConfig c;
    c.kind = kind;
    c.lr = 0.1f;
    RowOptimizer o(c, 1, 1);
    float w = 1.0f, g = 1.0f;
    o.begin_step();
    o.update(0, &w, &g);
    const float after_touch = w;
    o.begin_step();
    o.update(0, &w, nullptr);  // a step where the row is not in the batch
    if (kind == OptimizerConfig::Kind::kAdam) EXPECT_EQ(w, after_touch);
    else EXPECT_LT(w, after_touch);  // momentum keeps moving it
  }
}

TEST(Optimizer, RowwiseAdagradUsesOneAccumulatorPerRow) {
  OptimizerConfig c;
  c.kind = OptimizerConfig::Kind::kAdagrad;
  c.lr = 1.0f;
  c.eps = 0.0f;
  RowOptimizer o(c, 1, 2);
  float w[2] = {0, 0};
  const float g[2] = {3.0f, 4.0f};  // mean(g^2) = 12.5
  o.begin_step();
  o.update(0, w, g);
  EXPECT_NEAR(w[0], -3.0 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(w[1], -4.0 / std::sqrt(12.5), 1e-6);
}

TEST(ShardedEmbedding, GatherAndReduceAcrossRanksMatchASingleTable) {
  // Ids with duplicates from every rank; SGD with lr 1 makes the update equal to minus the sum of
  // the contributions, which must be the same as a plain sum.
  const int64_t rows = 11;
  const int d = 3;
  OptimizerConfig opt;
  opt.kind = OptimizerConfig::Kind::kSgd;
  opt.lr = 1.0f;
  std::vector<float> ref_init;
  dist::run_ranks(1, [&](dist::Comm&) {
    dist::ShardedEmbedding t("t", 0, rows, d, dist::Sharding::modulo(rows, 1), 0, 7, {}, opt);
    ref_init = t.local_data();
  });
  for (int world : {1, 2, 3, 4}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      dist::ShardedEmbedding t("t", 0, rows, d, dist::Sharding::modulo(rows, world), comm.rank(), 7, {}, opt);
      std::vector<int64_t> ids = {3, 7, 3, static_cast<int64_t>(comm.rank()), 10};
      auto r = t.route(comm, ids);
      std::vector<float> got(ids.size() * d);
      t.gather(comm, r, got.data());
      for (size_t i = 0; i < ids.size(); ++i)
        for (int k = 0; k < d; ++k) EXPECT_EQ(got[i * d + k], ref_init[ids[i] * d + k]);
      std::vector<float> g(ids.size() * d, 0.25f);
      std::vector<uint64_t> keys(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) keys[i] = comm.rank() * 100 + i;
      t.apply(comm, r, keys, g.data());
      auto full = full_table(t, comm);
      for (int64_t id = 0; id < rows; ++id) {
        // Contributions per id: 3 appears twice per rank, 7 and 10 once, id r once on rank r.
        double count = (id == 3 ? 2.0 * world : 0) + (id == 7 || id == 10 ? world : 0) +
                       (id < world ? 1 : 0);
        for (int k = 0; k < d; ++k)
          EXPECT_FLOAT_EQ(full[id * d + k], ref_init[id * d + k] - 0.25f * count) << "id " << id;
      }
    });
  }
}

TEST(Kernels, Dot4IsBitIdenticalToDot) {
  for (int n : {1, 7, 8, 13, 64, 100}) {
    std::vector<float> a(4 * n), b(n);
    CounterRng r(5, n);
    for (auto& x : a) x = static_cast<float>(r.normal());
    for (auto& x : b) x = static_cast<float>(r.normal());
    const float* four[4] = {&a[0], &a[n], &a[2 * n], &a[3 * n]};
    float out[4];
    kernels::dot4(four, b.data(), n, out);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(out[k], kernels::dot(four[k], b.data(), n)) << n;
  }
}

// A rank's samples of every step, against the definition: position = perm(index), step =
// position / B, in position order; for dense steps (placed by position) and sparse ones (sorted).
TEST(EpochOrder, StepsHoldTheRowsOfTheirPositionsInOrder) {
  io::UserSlice tr;
  tr.row_lo = 1000;
  tr.ptr = {0};
  for (int u = 0; u < 40; ++u) {
    for (int k = 0; k < 1 + u % 7; ++k) tr.item.push_back(k);
    tr.ptr.push_back(static_cast<int64_t>(tr.item.size()));
  }
  // The pass's rows over all ranks: this rank holds all of them (dense steps) or 3% (sparse).
  for (uint64_t m : {static_cast<uint64_t>(tr.rows()), uint64_t{5000}})
  for (int64_t B : {7, 64, 1000, 4096}) {
    const Permutation perm(m, hash64(3, 4, static_cast<uint64_t>(B)));
    // Indices within the pass: 0..m-1 when the rank holds every row, row_lo + r otherwise.
    const int64_t lo = m == static_cast<uint64_t>(tr.rows()) ? 0 : tr.row_lo;
    EpochOrder order(perm, B, tr, static_cast<size_t>(tr.rows()), [](size_t k) { return static_cast<uint32_t>(k); },
                     [&](size_t k) { return lo + static_cast<int64_t>(k); });
    std::map<int64_t, std::vector<std::pair<uint64_t, uint32_t>>> want;  // step -> (position, row)
    for (int64_t r = 0; r < tr.rows(); ++r) {
      const uint64_t pos = perm(static_cast<uint64_t>(lo + r));
      want[static_cast<int64_t>(pos / B)].push_back({pos, static_cast<uint32_t>(r)});
    }
    ASSERT_EQ(order.steps(), static_cast<int64_t>((m + B - 1) / B));
    for (int64_t s = 0; s < order.steps(); ++s) {
      auto& w = want[s];
      std::sort(w.begin(), w.end());
      const auto got = order.step(s);
      ASSERT_EQ(got.size(), w.size()) << B << " " << s;
      for (size_t i = 0; i < w.size(); ++i) {
        EXPECT_EQ(got[i].off, w[i].first % B);
        EXPECT_EQ(got[i].row, w[i].second);
        EXPECT_GE(static_cast<int64_t>(got[i].row), tr.ptr[got[i].user]);  // the row's user
        EXPECT_LT(static_cast<int64_t>(got[i].row), tr.ptr[got[i].user + 1]);
      }
    }
  }
}

TEST(Kernels, FirstNonfiniteFindsTheFirstNanOrInfAndNothingElse) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t n : {1, 7, 8, 9, 33, 100}) {
    std::vector<float> x(n, 1.0f);
    // Finite extremes are not flagged: the largest float, the smallest denormal, -0.
    x[0] = std::numeric_limits<float>::max();
    x[n / 2] = std::numeric_limits<float>::denorm_min();
    x[n - 1] = -0.0f;
    EXPECT_EQ(kernels::first_nonfinite(x.data(), n), n);
    for (float bad : {nan, inf, -inf})
      for (size_t at : {size_t{0}, n / 2, n - 1}) {
        std::vector<float> y = x;
        y[at] = bad;
        if (at + 1 < n) y[n - 1] = nan;  // a later one does not hide the first
        EXPECT_EQ(kernels::first_nonfinite(y.data(), n), at) << n << " " << bad;
      }
  }
}

TEST(ShardedEmbedding, IdOutsideTheTableIsAClearError) {
  OptimizerConfig opt;
  dist::run_ranks(1, [&](dist::Comm& comm) {
    dist::ShardedEmbedding t("item", 1, 5, 2, dist::Sharding::modulo(5, 1), 0, 1, {}, opt);
    std::vector<int64_t> ids = {1, 5};
    try {
      t.route(comm, ids);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("table item: id 5 outside its 5 rows"), std::string::npos);
    }
  });
}

TEST(Training, NegativesAreUniformOverUnseenItems) {
  // User 0 has seen 38 of 40 items (exercises the rejection loop and its direct fallback);
  // user 1 has seen one item.
  io::PreparedDataset d;
  const int items = 40;
  d.user_raw = {"a", "b"};
  for (int i = 0; i < items; ++i) d.item_raw.push_back(std::to_string(i));
  for (int i = 0; i < items - 2; ++i) { d.train.user.push_back(0); d.train.item.push_back(i); }
  d.train.user.push_back(1);
  d.train.item.push_back(5);
  TrainConfig c = small_config();
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    std::map<int64_t, int> dense, sparse;
    for (int row = 0; row < 2000; ++row) {
      ++dense[t.sampler().negative(1, row, 0, shard.train().items_of(0))];
      ++sparse[t.sampler().negative(1, row, 1, shard.train().items_of(1))];
    }
    ASSERT_EQ(dense.size(), 2u);
    EXPECT_GT(dense[38], 850);
    EXPECT_GT(dense[39], 850);
    EXPECT_EQ(sparse.count(5), 0u);
    EXPECT_EQ(sparse.size(), 39u);
    // The same keys give the same negative (no hidden state).
    EXPECT_EQ(t.sampler().negative(3, 17, 2, shard.train().items_of(1)),
              t.sampler().negative(3, 17, 2, shard.train().items_of(1)));
  });
}

}  // namespace
}  // namespace shardrec
