// The backends against each other. The same test bodies run on the CPU and on CUDA (value-
// parameterised on the device); CUDA cases are skipped, with the reason shown, where the build has
// no CUDA backend or no GPU is visible. What they pin down:
//   - every backend is world-size invariant (1, 2, 3 ranks bitwise equal) and bitwise reproducible
//     run to run;
//   - CUDA matches the CPU reference within a stated tolerance (only expf/log1p differ);
//   - the CUDA kernels that involve no transcendental function (route/gather, the key-ordered
//     reduction fused with each optimizer, scoring and top-K) are bitwise equal to the CPU code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <tuple>

#include "base/error.h"
#include "core/mf_model.h"
#include "core/gpu_backend.h"
#include "core/ncf_model.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "core/checkpoint_state.h"
#include "shardrec_config.h"

#if SHARDREC_HAVE_CUDA
#include "dist/cuda_comm.h"
#include "dist/device_embedding.h"
#include "dist/nccl_comm.h"
#include "kernels/dense_ops.h"
#include "kernels/sparse_ops.h"
#endif

namespace shardrec {
namespace {

using testing::full_table;

enum class Dev { kCpu, kCuda };
const char* dev_name(Dev d) { return d == Dev::kCpu ? "cpu" : "cuda"; }

// Empty when the device can run here; otherwise why not.
std::string unavailable(Dev d) {
  if (d == Dev::kCpu) return "";
  if (!SHARDREC_HAVE_CUDA) return "this build has no CUDA backend (SHARDREC_CUDA=OFF or no toolkit)";
  if (cuda_device_count() == 0) return "no GPU is visible to this process";
  return "";
}
#define SKIP_UNLESS(dev)                                      \
  do {                                                        \
    const std::string why_ = unavailable(dev);                \
    if (!why_.empty()) GTEST_SKIP() << dev_name(dev) << ": " << why_; \
  } while (0)

struct RunOut {
  std::vector<float> user, item;
  std::vector<double> losses;
};

RunOut train_on(int world, const TrainConfig& cfg, const io::PreparedDataset& d) {
  RunOut out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(cfg, shard, comm);
    auto fit = t.fit();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    if (comm.rank() == 0) {
      out.user = u;
      out.item = i;
      for (auto& e : fit.epochs) out.losses.push_back(e.loss);
    }
  });
  return out;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

struct Case {
  const char* name;
  OptimizerConfig::Kind opt;
  const char* loss;
  int negatives;
  float l2;
  const char* strategy;
};

void PrintTo(const Case& k, std::ostream* o) { *o << k.name; }
void PrintTo(Dev d, std::ostream* o) { *o << dev_name(d); }

// Users 0..3 have seen all items but `missing` (the sampler's dense-user fallback runs), the others
// a few.
io::PreparedDataset dense_users(int items, int missing) {
  io::PreparedDataset d;
  const int users = 10;
  for (int u = 0; u < users; ++u) d.user_raw.push_back("u" + std::to_string(u));
  for (int i = 0; i < items; ++i) d.item_raw.push_back("i" + std::to_string(i));
  for (int u = 0; u < users; ++u) {
    const int n = u < 4 ? items - missing : 5;
    for (int k = 0; k < n; ++k) {
      d.train.user.push_back(u);
      d.train.item.push_back((k * 7 + u) % items);
    }
    d.valid.user.push_back(u);
    d.valid.item.push_back(u % items);
  }
  return d;
}

TrainConfig config_for(const Case& k, Dev dev) {
  TrainConfig c;
  c.data = "<memory>";
  c.dim = 12;  // not a multiple of 8: the dot products' tail path runs too
  c.batch = 50;
  c.epochs = 3;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.opt.kind = k.opt;
  c.loss = k.loss;
  c.negatives = k.negatives;
  c.l2 = k.l2;
  c.strategy = k.strategy;
  c.mg_beta = 2;
  c.device = dev_name(dev);
  return c;
}

// GPU parameters may part from the CPU's by the expf/log1p ulps, grown over 3 epochs of updates.
constexpr double kCpuTolerance = 2e-5;

class BackendTraining : public ::testing::TestWithParam<std::tuple<Dev, Case>> {};

TEST_P(BackendTraining, ReproducibleWorldSizeInvariantAndCloseToTheCpuReference) {
  const auto [dev, k] = GetParam();
  SKIP_UNLESS(dev);
  auto d = testing::planted_dataset(37, 29, 4, 5);
  const RunOut cpu = train_on(1, config_for(k, Dev::kCpu), d);
  const TrainConfig c = config_for(k, dev);
  const RunOut one = train_on(1, c, d);
  const RunOut again = train_on(1, c, d);
  EXPECT_TRUE(bitwise_equal(one.item, again.item)) << "two runs on " << dev_name(dev) << " differ";
  EXPECT_TRUE(bitwise_equal(one.user, again.user));
  for (int world = 2; world <= 3; ++world) {
    const RunOut got = train_on(world, c, d);
    EXPECT_TRUE(bitwise_equal(got.user, one.user)) << k.name << " user table, " << world << " ranks";
    EXPECT_TRUE(bitwise_equal(got.item, one.item)) << k.name << " item table, " << world << " ranks";
    EXPECT_EQ(got.losses, one.losses);
  }
  const double du = max_abs_diff(one.user, cpu.user), di = max_abs_diff(one.item, cpu.item);
  if (dev == Dev::kCpu) {
    EXPECT_TRUE(bitwise_equal(one.item, cpu.item));
  } else {
    EXPECT_LE(du, kCpuTolerance) << k.name;
    EXPECT_LE(di, kCpuTolerance) << k.name;
    ASSERT_EQ(one.losses.size(), cpu.losses.size());
    for (size_t e = 0; e < cpu.losses.size(); ++e) EXPECT_NEAR(one.losses[e], cpu.losses[e], 1e-5);
  }
  // Training moved the parameters away from their initial values.
  TrainConfig c0 = c;
  c0.epochs = 0;
  EXPECT_GT(max_abs_diff(train_on(1, c0, d).item, one.item), 1e-4);
  std::printf("[ %s %s ] max |param - cpu|: user %.3g item %.3g\n", dev_name(dev), k.name, du, di);
}

const Case kCases[] = {
    {"sgd_bpr", OptimizerConfig::Kind::kSgd, "bpr", 1, 0.0f, "plain"},
    {"adagrad_bpr_l2", OptimizerConfig::Kind::kAdagrad, "bpr", 2, 0.01f, "plain"},
    {"adam_bce_neg3", OptimizerConfig::Kind::kAdam, "bce", 3, 0.0f, "plain"},
    {"adam_dense_bpr", OptimizerConfig::Kind::kAdamDense, "bpr", 1, 0.001f, "plain"},
    {"adam_dense_bpr_mirror", OptimizerConfig::Kind::kAdamDense, "bpr", 1, 0.0f, "mirror"},
    {"sgd_bce_mirror", OptimizerConfig::Kind::kSgd, "bce", 2, 0.0f, "mirror"},
};

INSTANTIATE_TEST_SUITE_P(Devices, BackendTraining,
                         ::testing::Combine(::testing::Values(Dev::kCpu, Dev::kCuda), ::testing::ValuesIn(kCases)),
                         [](const auto& info) {
                           return std::string(dev_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
                         });

class BackendSampling : public ::testing::TestWithParam<Dev> {};

TEST_P(BackendSampling, DenseUsersDrawTheCpuNegatives) {
  const Dev dev = GetParam();
  SKIP_UNLESS(dev);
  // 199 of 201 items seen: 64 rejections in a row are likely, so the fallback draws most negatives.
  const auto d = dense_users(201, 2);
  TrainConfig c = config_for(kCases[0], dev);
  c.negatives = 3;
  c.epochs = 2;
  c.opt.lr = 0.05f;
  TrainConfig cc = c;
  cc.device = "cpu";
  const RunOut ref = train_on(1, cc, d);
  const RunOut got = train_on(2, c, d);
  EXPECT_LE(max_abs_diff(got.item, ref.item), dev == Dev::kCpu ? 0.0 : kCpuTolerance);
  EXPECT_LE(max_abs_diff(got.user, ref.user), dev == Dev::kCpu ? 0.0 : kCpuTolerance);
}

INSTANTIATE_TEST_SUITE_P(Devices, BackendSampling, ::testing::Values(Dev::kCpu, Dev::kCuda),
                         [](const auto& info) { return std::string(dev_name(info.param)); });

class BackendEvaluation : public ::testing::TestWithParam<Dev> {};

TEST_P(BackendEvaluation, FullRankingGivesTheCpuMetricsForAnyRanks) {
  const Dev dev = GetParam();
  SKIP_UNLESS(dev);
  auto d = testing::planted_dataset(41, 33, 4, 8);
  TrainConfig c = config_for(kCases[2], Dev::kCpu);
  c.eval.ks = {1, 5, 40};  // 40 > the items a user can rank: padded lists
  std::map<std::string, double> ref;
  for (int world = 1; world <= 3; ++world) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      Trainer t(c, shard, comm);
      t.fit();
      EvalConfig e = c.eval;
      e.device = dev_name(dev);
      e.score_budget = 200;  // several rounds
      const auto cpu_res = evaluate(t.model_as<MFModel>(), shard, 2, c.eval, comm);
      const auto got = evaluate(t.model_as<MFModel>(), shard, 2, e, comm);
      if (comm.rank() != 0) return;
      EXPECT_EQ(got.values, cpu_res.values) << world << " ranks";
      if (world == 1) ref = got.values;
      EXPECT_EQ(got.values, ref) << world << " ranks";
      EXPECT_GT(got.get("recall@5"), 0.0);
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, BackendEvaluation, ::testing::Values(Dev::kCpu, Dev::kCuda),
                         [](const auto& info) { return std::string(dev_name(info.param)); });

class BackendErrors : public ::testing::TestWithParam<Dev> {};

TEST_P(BackendErrors, AUserWhoSawEveryItemIsAClearError) {
  const Dev dev = GetParam();
  SKIP_UNLESS(dev);
  const auto d = dense_users(30, 0);
  const std::string e = testing::error_of([&] { train_on(2, config_for(kCases[0], dev), d); });
  EXPECT_NE(e.find("interacted with every item"), std::string::npos) << e;
}

TEST_P(BackendErrors, DivergenceNamesStepAndRank) {
  const Dev dev = GetParam();
  SKIP_UNLESS(dev);
  auto d = testing::planted_dataset(20, 15, 3, 2);
  TrainConfig c = config_for(kCases[0], dev);
  c.opt.lr = 1e30f;
  c.epochs = 4;
  const std::string e = testing::error_of([&] { train_on(2, c, d); });
  EXPECT_NE(e.find("training diverged"), std::string::npos) << e;
  EXPECT_NE(e.find("on rank"), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(Devices, BackendErrors, ::testing::Values(Dev::kCpu, Dev::kCuda),
                         [](const auto& info) { return std::string(dev_name(info.param)); });

// ---- The pointwise models (GMF, NeuMF; Inverse Learning) on both backends -----------------------

struct PwCase {
  const char* name;
  const char* model;
  const char* loss;
  const char* strategy;
  bool reference;
  int users, batch;  // users 400 and batch 700: passes of several fixed-shape GEMM chunks
};
void PrintTo(const PwCase& k, std::ostream* o) { *o << k.name; }

const PwCase kPwCases[] = {
    {"gmf_bce", "gmf", "bce", "plain", false, 45, 23},
    {"neumf_idl", "neumf", "idl", "plain", false, 45, 23},
    {"neumf_bce_neg", "neumf", "bce-neg", "plain", false, 45, 23},
    {"gmf_ig", "gmf", "idl", "ig", false, 45, 23},
    {"neumf_ig", "neumf", "idl", "ig", false, 45, 23},
    {"neumf_ig_reference", "neumf", "idl", "ig", true, 45, 23},
    {"neumf_idl_big_batches", "neumf", "idl", "plain", false, 400, 700},
};

struct PwOut {
  std::vector<float> user, item, dense;
  std::vector<uint8_t> decisions;
  std::vector<double> losses;
};

PwOut train_pointwise_on(int world, const TrainConfig& c, const io::PreparedDataset& d) {
  PwOut out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    auto fit = t.fit();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    if (comm.rank() == 0) {
      out = {u, i, t.model_as<NcfModel>().dense, t.ig_stats().decisions, {}};
      for (auto& e : fit.epochs) out.losses.push_back(e.loss);
    }
  });
  return out;
}

TrainConfig pointwise_config(const PwCase& k, Dev dev) {
  TrainConfig c;
  c.data = "<memory>";
  c.model = k.model;
  c.loss = k.loss;
  c.strategy = k.strategy;
  c.il_reference = k.reference;
  c.dim = 6;
  c.mlp_layers = 2;  // MLP 24 -> 12 -> 6
  c.batch = k.batch;
  c.epochs = 2;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.ig_sample_lr = 0.05f;
  c.ig_train_ratio = 0.6f;
  c.il_unlabeled = 3;  // big batches: 700 x 4 rows, two GEMM chunks on one rank
  c.device = dev_name(dev);
  return c;
}

// cuBLAS sums the layers' dot products in its own order, so GPU parameters part from the CPU's by
// float rounding, grown over 2 epochs of Adam.
constexpr double kPointwiseTolerance = 2e-4;

class PointwiseBackends : public ::testing::TestWithParam<std::tuple<Dev, PwCase>> {};

TEST_P(PointwiseBackends, ReproducibleWorldSizeInvariantAndCloseToTheCpuReference) {
  const auto [dev, k] = GetParam();
  SKIP_UNLESS(dev);
  const auto d = testing::labeled_dataset(k.users, k.users * 3 / 4, 3, 4);
  const TrainConfig c = pointwise_config(k, dev);
  const PwOut one = train_pointwise_on(1, c, d);
  ASSERT_FALSE(one.losses.empty());
  for (double l : one.losses) EXPECT_TRUE(std::isfinite(l));
  // Run to run, and 2 or 3 ranks: bitwise the same tables, dense layers and IG decisions.
  for (int world : {1, 2, 3}) {
    const PwOut w = train_pointwise_on(world, c, d);
    EXPECT_TRUE(bitwise_equal(w.user, one.user)) << world << " ranks: user, max diff " << max_abs_diff(w.user, one.user);
    EXPECT_TRUE(bitwise_equal(w.item, one.item)) << world << " ranks: item, max diff " << max_abs_diff(w.item, one.item);
    EXPECT_TRUE(bitwise_equal(w.dense, one.dense)) << world << " ranks: dense, max diff "
                                                   << max_abs_diff(w.dense, one.dense);
    EXPECT_EQ(w.decisions, one.decisions) << world << " ranks";
  }
  // Against the CPU reference.
  TrainConfig cc = c;
  cc.device = "cpu";
  const PwOut cpu = train_pointwise_on(1, cc, d);
  const double du = max_abs_diff(one.user, cpu.user), di = max_abs_diff(one.item, cpu.item),
               dd = max_abs_diff(one.dense, cpu.dense);
  std::printf("[ %s %s ] max |param - cpu|: user %.3g item %.3g dense %.3g\n", dev_name(dev), k.name, du, di, dd);
  EXPECT_LT(du, kPointwiseTolerance);
  EXPECT_LT(di, kPointwiseTolerance);
  EXPECT_LT(dd, kPointwiseTolerance);
  EXPECT_EQ(one.decisions, cpu.decisions);
  if (std::string(k.strategy) == "ig") {  // the meta-step does choose candidates here
    EXPECT_GT(std::count_if(one.decisions.begin(), one.decisions.end(), [](uint8_t x) { return x != 0; }), 0);
  }
  for (size_t e = 0; e < cpu.losses.size(); ++e) EXPECT_NEAR(one.losses[e], cpu.losses[e], 1e-4) << "epoch " << e + 1;
  // It trains.
  TrainConfig c0 = c;
  c0.epochs = 0;
  EXPECT_NE(train_pointwise_on(1, c0, d).dense, one.dense);
}

INSTANTIATE_TEST_SUITE_P(Devices, PointwiseBackends,
                         ::testing::Combine(::testing::Values(Dev::kCpu, Dev::kCuda), ::testing::ValuesIn(kPwCases)),
                         [](const auto& info) {
                           return std::string(dev_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
                         });

// The unlabeled draws on both backends for users who rated all items but one (the samplers'
// dense-user fallback runs) and a user who rated every item (a clear error).
class PointwiseSampling : public ::testing::TestWithParam<Dev> {};

io::PreparedDataset labeled_dense_users(int items, int missing) {
  io::PreparedDataset d = dense_users(items, missing);
  for (auto* part : {&d.train, &d.valid, &d.test})
    for (size_t r = 0; r < part->size(); ++r) part->rating.push_back(r % 3 == 0 ? 1.0f : 4.0f);
  d.label_threshold = 2.0;
  return d;
}

TEST_P(PointwiseSampling, DenseUsersDrawTheCpuUnlabeledItems) {
  const Dev dev = GetParam();
  SKIP_UNLESS(dev);
  const auto d = labeled_dense_users(30, 1);  // 64 rejections in a row: 11% of these users' draws
  PwCase k{"gmf_idl_dense", "gmf", "idl", "plain", false, 0, 7};
  TrainConfig c = pointwise_config(k, dev);
  c.dim = 4;
  const PwOut one = train_pointwise_on(1, c, d), two = train_pointwise_on(2, c, d);
  EXPECT_TRUE(bitwise_equal(one.item, two.item));
  c.device = "cpu";
  const PwOut cpu = train_pointwise_on(1, c, d);
  // A draw that differed would move other item rows by about the learning rate.
  EXPECT_LT(max_abs_diff(one.item, cpu.item), 1e-6);
  EXPECT_LT(max_abs_diff(one.user, cpu.user), 1e-6);
  const std::string e = testing::error_of([&] { train_pointwise_on(2, pointwise_config(k, dev), labeled_dense_users(30, 0)); });
  EXPECT_NE(e.find("rated every item"), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(Devices, PointwiseSampling, ::testing::Values(Dev::kCpu, Dev::kCuda),
                         [](const auto& info) { return std::string(dev_name(info.param)); });

// VBPR on both backends: q = [e, W f + b] with the projection on cuBLAS and its gradient summed
// exactly like the CPU's (dist/dense_allreduce.h), with and without the mirror step and L2.
class VbprBackends : public ::testing::TestWithParam<std::tuple<Dev, const char*>> {};

TEST_P(VbprBackends, ReproducibleWorldSizeInvariantAndCloseToTheCpuReference) {
  const auto [dev, strategy] = GetParam();
  SKIP_UNLESS(dev);
  TrainConfig c;
  c.data = testing::vbpr_dataset(std::string("device_") + dev_name(dev) + "_" + strategy, 60, 40, 4, 3);
  c.model = "vbpr";
  c.features = "group";
  c.dim = 6;
  c.batch = 37;
  c.epochs = 2;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.l2 = 1e-3f;
  c.strategy = strategy;
  c.mg_beta = 2;
  c.device = dev_name(dev);
  struct Out {
    std::vector<float> user, item, W, b;
  };
  // load: resume from this checkpoint; stop_at: checkpoint to `save` at that step and stop.
  auto run = [&](int world, const TrainConfig& cfg, const std::string& load = "", int64_t stop_at = 0,
                 const std::string& save = "") {
    Out out;
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::load_shard(cfg.data, comm);
      Trainer t(cfg, shard, comm);
      testing::checkpoint_and_resume(t, cfg, shard.info, comm, load, stop_at, save);
      t.fit();
      auto u = full_table(t.model().user, comm);
      auto i = full_table(t.model().item, comm);
      if (comm.rank() == 0) out = {u, i, t.model_as<MFModel>().W, t.model_as<MFModel>().b};
    });
    return out;
  };
  const Out one = run(1, c);
  for (int world : {1, 2, 3}) {
    const Out w = run(world, c);
    EXPECT_TRUE(bitwise_equal(w.user, one.user)) << world << " ranks: user";
    EXPECT_TRUE(bitwise_equal(w.item, one.item)) << world << " ranks: item";
    EXPECT_TRUE(bitwise_equal(w.W, one.W)) << world << " ranks: W, max diff " << max_abs_diff(w.W, one.W);
    EXPECT_TRUE(bitwise_equal(w.b, one.b)) << world << " ranks: b";
  }
  TrainConfig cc = c;
  cc.device = "cpu";
  const Out cpu = run(1, cc);
  const double du = max_abs_diff(one.user, cpu.user), di = max_abs_diff(one.item, cpu.item),
               dw = max_abs_diff(one.W, cpu.W), db = max_abs_diff(one.b, cpu.b);
  std::printf("[ %s vbpr %s ] max |param - cpu|: user %.3g item %.3g W %.3g b %.3g\n", dev_name(dev), strategy, du, di,
              dw, db);
  EXPECT_LT(std::max({du, di, dw, db}), kPointwiseTolerance);
  TrainConfig c0 = c;
  c0.epochs = 0;
  EXPECT_NE(run(1, c0).W, one.W);  // it trains the projection
  // A checkpoint mid-epoch 2 on 2 ranks, resumed on 3: bitwise the uninterrupted run (W, b and
  // their Adam state live on the host, the rows' on the device).
  const std::string ck = testing::fresh_path("device_checkpoint", std::string("vbpr-") + dev_name(dev) + "-" + strategy + ".h5");
  int64_t steps = 0;
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::load_shard(c.data, comm);
    steps = Trainer(c, shard, comm).steps_per_epoch();
  });
  run(2, c, "", steps + 2, ck);
  const Out resumed = run(3, c, ck);
  EXPECT_TRUE(bitwise_equal(resumed.user, one.user)) << "resumed: user";
  EXPECT_TRUE(bitwise_equal(resumed.item, one.item)) << "resumed: item";
  EXPECT_TRUE(bitwise_equal(resumed.W, one.W)) << "resumed: W";
  EXPECT_TRUE(bitwise_equal(resumed.b, one.b)) << "resumed: b";
}

INSTANTIATE_TEST_SUITE_P(Devices, VbprBackends,
                         ::testing::Combine(::testing::Values(Dev::kCpu, Dev::kCuda),
                                            ::testing::Values("plain", "mirror")),
                         [](const auto& info) {
                           return std::string(dev_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param);
                         });

TEST(Device, ResolveNamesTheOptionAndFallsBackToCpu) {
  EXPECT_EQ(resolve_device("cpu"), "cpu");
  const std::string a = resolve_device("auto");
  EXPECT_EQ(a, cuda_device_count() > 0 ? "cuda" : "cpu");
  EXPECT_NE(testing::error_of([] { resolve_device("tpu"); }).find("option --device"), std::string::npos);
  if (cuda_device_count() == 0) {
    const std::string e = testing::error_of([] { resolve_device("cuda"); });
    EXPECT_NE(e.find("--device cuda"), std::string::npos) << e;
  }
}

#if SHARDREC_HAVE_CUDA

// DeviceEmbedding against ShardedEmbedding, 1 to 3 thread ranks sharing the GPU (host-staged
// exchange): gathered rows and updated tables are bitwise equal for every optimizer.
class DeviceTable : public ::testing::TestWithParam<OptimizerConfig::Kind> {};

TEST_P(DeviceTable, RouteGatherApplyAreBitwiseTheCpuTable) {
  SKIP_UNLESS(Dev::kCuda);
  OptimizerConfig opt;
  opt.kind = GetParam();
  opt.lr = 0.05f;
  opt.weight_decay = 0.01f;
  const int64_t rows = 41;
  const int dim = 20;
  for (int world = 1; world <= 3; ++world) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      cudaSetDevice(0);
      auto sharding = dist::Sharding::modulo(rows, world);
      dist::ShardedEmbedding cpu("t", 3, rows, dim, sharding, comm.rank(), 7, dist::InitSpec{}, opt);
      dist::ShardedEmbedding back("t", 3, rows, dim, sharding, comm.rank(), 7, dist::InitSpec{}, opt);
      shardrec::cuda::Stream stream;
      dist::DeviceEmbedding gpu(cpu, stream.get());
      dist::CudaAwareComm dcomm(comm, nullptr);
      for (int step = 0; step < 4; ++step) {
        // Every rank draws its own ids (duplicates included) and keys unique within the step.
        CounterRng r(11 + step, comm.rank(), 0);
        const size_t n = 30 + comm.rank() * 7;
        std::vector<int64_t> ids(n);
        std::vector<uint64_t> keys(n);
        std::vector<float> grads(n * dim);
        for (size_t i = 0; i < n; ++i) {
          ids[i] = static_cast<int64_t>(r.below(rows / 2 + 1));  // a hot half: many duplicates
          keys[i] = (static_cast<uint64_t>(i) * world + comm.rank()) * 3 + 1;
        }
        for (auto& g : grads) g = static_cast<float>(r.uniform() - 0.5);
        auto route = cpu.route(comm, ids);
        std::vector<float> want(n * dim), got(n * dim);
        cpu.gather(comm, route, want.data());
        shardrec::cuda::DeviceBuffer<int64_t> d_ids(n);
        shardrec::cuda::DeviceBuffer<uint64_t> d_keys(n);
        shardrec::cuda::DeviceBuffer<float> d_grads(n * dim), d_out(n * dim);
        cudaMemcpy(d_ids.data(), ids.data(), n * 8, cudaMemcpyHostToDevice);
        cudaMemcpy(d_keys.data(), keys.data(), n * 8, cudaMemcpyHostToDevice);
        cudaMemcpy(d_grads.data(), grads.data(), n * dim * 4, cudaMemcpyHostToDevice);
        // A pageable-memory cudaMemcpy may return before its DMA lands, and the table's stream does
        // not wait for the legacy stream: finish the uploads first.
        cudaDeviceSynchronize();
        dist::DeviceRouting dr;
        gpu.route(dcomm, d_ids.data(), n, false, dr);
        gpu.gather(dcomm, dr, d_out.data());
        cudaDeviceSynchronize();  // the gather ran on the table's own stream
        cudaMemcpy(got.data(), d_out.data(), n * dim * 4, cudaMemcpyDeviceToHost);
        EXPECT_TRUE(bitwise_equal(got, want)) << "gather, step " << step << ", " << world << " ranks";
        cpu.apply(comm, route, keys, grads.data());
        // Odd steps give the key bound (one packed sort), even steps do not (two stable sorts).
        gpu.apply(dcomm, dr, d_keys.data(), d_grads.data(), step % 2 ? uint64_t{1} << 12 : 0);
        gpu.download(back);
        EXPECT_TRUE(bitwise_equal(back.local_data(), cpu.local_data()))
            << OptimizerConfig::kind_name(opt.kind) << " apply, step " << step << ", rank " << comm.rank() << " of "
            << world << ", max diff " << max_abs_diff(back.local_data(), cpu.local_data());
      }
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, DeviceTable,
                         ::testing::Values(OptimizerConfig::Kind::kSgd, OptimizerConfig::Kind::kAdagrad,
                                           OptimizerConfig::Kind::kAdam, OptimizerConfig::Kind::kAdamDense),
                         [](const auto& info) { return OptimizerConfig::kind_name(info.param); });

TEST(DeviceKernels, ScoreTopKEqualsTheCpuRanking) {
  SKIP_UNLESS(Dev::kCuda);
  const int nu = 5, ni = 300, dim = 13, k = 10;
  CounterRng r(3, 0, 0);
  std::vector<float> U(nu * dim), I(ni * dim);
  for (auto& x : U) x = static_cast<float>(r.uniform() - 0.5);
  for (auto& x : I) x = static_cast<float>(r.uniform() - 0.5);
  for (int c = 0; c < dim; ++c) I[7 * dim + c] = I[3 * dim + c];  // a tie: the smaller id first
  std::vector<int64_t> ids(ni), ptr = {0};
  for (int j = 0; j < ni; ++j) ids[j] = 1000 + 2 * j;  // a shard's global ids
  std::vector<int64_t> ex;
  for (int u = 0; u < nu; ++u) {
    for (int j = u; j < ni; j += 37) ex.push_back(ids[j]);
    ptr.push_back(static_cast<int64_t>(ex.size()));
  }
  shardrec::cuda::DeviceBuffer<float> dU(U.size()), dI(I.size()), ds(nu * k);
  shardrec::cuda::DeviceBuffer<int64_t> dids(ni), dptr(ptr.size()), dex(ex.size()), dtop(nu * k);
  cudaMemcpy(dU.data(), U.data(), U.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dI.data(), I.data(), I.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dids.data(), ids.data(), ni * 8, cudaMemcpyHostToDevice);
  cudaMemcpy(dptr.data(), ptr.data(), ptr.size() * 8, cudaMemcpyHostToDevice);
  cudaMemcpy(dex.data(), ex.data(), ex.size() * 8, cudaMemcpyHostToDevice);
  cudaDeviceSynchronize();  // pageable uploads may still be in flight (see above)
  shardrec::cuda::Stream st;
  kernels::cuda::score_topk(dU.data(), nu, dI.data(), dids.data(), ni, dim, dptr.data(), dex.data(), k, ds.data(),
                            dtop.data(), st.get());
  std::vector<float> gs(nu * k);
  std::vector<int64_t> gi(nu * k);
  cudaMemcpy(gs.data(), ds.data(), gs.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(gi.data(), dtop.data(), gi.size() * 8, cudaMemcpyDeviceToHost);
  for (int u = 0; u < nu; ++u) {
    std::vector<std::pair<float, int64_t>> all;
    for (int j = 0; j < ni; ++j) {
      if (std::binary_search(ex.begin() + ptr[u], ex.begin() + ptr[u + 1], ids[j])) continue;
      all.push_back({kernels::dot(&U[u * dim], &I[j * dim], dim), ids[j]});
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int t = 0; t < k; ++t) {
      EXPECT_EQ(gi[u * k + t], all[t].second) << "user " << u << " rank " << t;
      EXPECT_EQ(std::memcmp(&gs[u * k + t], &all[t].first, 4), 0) << "score bits, user " << u << " rank " << t;
    }
  }
}

// The dense layers' kernels: the weight gradient's fixed-point sums are bitwise DenseGradAccum's,
// and a GEMM row does not depend on how many rows run with it (world-size invariance of the
// pointwise models on the GPU rests on both).
TEST(DeviceKernels, DenseLayersAreRowIndependentAndSumLikeTheCpu) {
  SKIP_UNLESS(Dev::kCuda);
  const int in = 24, out = 12;
  const size_t M = 2 * kernels::cuda::kRows + 37;  // three chunks, the last one padded
  CounterRng r(5, 1, 2);
  std::vector<float> X(M * in), W(out * in), b(out), A(M * out);
  for (auto& x : X) x = static_cast<float>(r.normal());
  for (auto& x : W) x = static_cast<float>(r.normal() * 0.3);
  for (auto& x : b) x = static_cast<float>(r.normal() * 0.1);
  for (size_t k = 0; k < A.size(); ++k) A[k] = k % 5 == 0 ? 0.0f : static_cast<float>(r.normal());  // ReLU zeros
  const size_t Mp = kernels::cuda::padded_rows(M);
  shardrec::cuda::DeviceBuffer<float> dX(Mp * in), dW(W.size()), db(out), dZ(Mp * out), dZ1(kernels::cuda::kRows * out),
      dA(Mp * out);
  shardrec::cuda::DeviceBuffer<int64_t> acc(out * in + out);
  shardrec::cuda::DeviceBuffer<int> bad(1);
  cudaMemcpy(dX.data(), X.data(), X.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dW.data(), W.data(), W.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(db.data(), b.data(), b.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dA.data(), A.data(), A.size() * 4, cudaMemcpyHostToDevice);
  cudaMemset(acc.data(), 0, (out * in + out) * 8);
  cudaMemset(bad.data(), 0, 4);
  cudaDeviceSynchronize();
  shardrec::cuda::Stream st;
  kernels::cuda::Blas blas(st.get());
  kernels::cuda::linear_forward(blas, dX.data(), in, M, in, dW.data(), db.data(), out, true, dZ.data(), out);
  // Rows 1000..1006 alone (one chunk) give the same bits as within all M rows.
  kernels::cuda::linear_forward(blas, dX.data() + 1000 * in, in, 7, in, dW.data(), db.data(), out, true, dZ1.data(), out);
  kernels::cuda::fixed_outer_sum(dA.data(), out, out, dX.data(), in, in, M, 44, 64.0, acc.data(), bad.data(), st.get());
  kernels::cuda::fixed_outer_sum(dA.data(), out, out, nullptr, 0, 1, M, 44, 64.0, acc.data() + out * in, bad.data(),
                                 st.get());
  st.sync();
  std::vector<float> Z(M * out), Z1(7 * out);
  std::vector<int64_t> got(out * in + out);
  int bad_h = 1;
  cudaMemcpy(Z.data(), dZ.data(), Z.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(Z1.data(), dZ1.data(), Z1.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(got.data(), acc.data(), got.size() * 8, cudaMemcpyDeviceToHost);
  cudaMemcpy(&bad_h, bad.data(), 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(bad_h, 0);
  EXPECT_EQ(std::memcmp(Z1.data(), Z.data() + 1000 * out, Z1.size() * 4), 0) << "a row's bits depend on its batch";
  double worst = 0;
  for (size_t s = 0; s < M; ++s)
    for (int o = 0; o < out; ++o) {
      const float z = std::max(0.0f, b[o] + kernels::dot(&W[o * in], &X[s * in], in));
      worst = std::max(worst, std::fabs(static_cast<double>(z) - Z[s * out + o]));
    }
  EXPECT_LT(worst, 1e-5) << "cuBLAS forward against the CPU's dot";
  DenseGradAccum host(out * in + out);
  for (size_t s = 0; s < M; ++s) {
    host.add_outer(0, &A[s * out], out, &X[s * in], in);
    host.add(out * in, &A[s * out], out);
  }
  EXPECT_EQ(std::memcmp(got.data(), host.data(), got.size() * 8), 0) << "fixed-point sums differ from DenseGradAccum";
  // A contribution out of range is reported.
  std::vector<float> huge(M * out, 1e3f);
  cudaMemcpy(dA.data(), huge.data(), huge.size() * 4, cudaMemcpyHostToDevice);
  kernels::cuda::fixed_outer_sum(dA.data(), out, out, dX.data(), in, in, M, 44, 64.0, acc.data(), bad.data(), st.get());
  st.sync();
  cudaMemcpy(&bad_h, bad.data(), 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(bad_h, 1);
}

// Runs everywhere (no GPU needed): host buffers pass through to the host communicator.
TEST(DeviceComm, HostBuffersTakeTheHostCommunicator) {
  dist::run_ranks(3, [&](dist::Comm& host) {
    dist::CudaAwareComm c(host, nullptr);
    const int me = c.rank();
    std::vector<int64_t> v = {me + 1, 10 * (me + 1)};
    c.allreduce_sum(v.data(), 2);
    EXPECT_EQ(v, (std::vector<int64_t>{6, 60}));
    std::vector<int32_t> send(3), recv(3);
    for (int k = 0; k < 3; ++k) send[k] = 100 * me + k;
    std::vector<size_t> b(3, 4), d = {0, 4, 8};
    c.alltoallv(send.data(), b.data(), d.data(), recv.data(), b.data(), d.data());
    for (int k = 0; k < 3; ++k) EXPECT_EQ(recv[k], 100 * k + me);
    uint64_t x = me == 1 ? 77 : 0;
    c.broadcast(&x, sizeof x, 1);
    EXPECT_EQ(x, 77u);
    EXPECT_EQ(c.stats().alltoallv_calls, 1u);
    EXPECT_EQ(c.stats().alltoallv_bytes_sent, 8u);  // to the two other ranks (dist::CommStats)
    EXPECT_EQ(c.stats().allreduce_calls, 1u);
  });
}

TEST(DeviceComm, NcclOneRankAndStagedExchangesMoveTheBytes) {
  SKIP_UNLESS(Dev::kCuda);
  dist::run_ranks(1, [&](dist::Comm& comm) {
    cudaSetDevice(0);
    dist::NcclComm nccl(comm, 0, 60);
    for (dist::NcclComm* use : {&nccl, static_cast<dist::NcclComm*>(nullptr)}) {
      dist::CudaAwareComm c(comm, use);
      std::vector<int64_t> h = {5, -7, 9};
      shardrec::cuda::DeviceBuffer<int64_t> d(3), e(3);
      cudaMemcpy(d.data(), h.data(), 24, cudaMemcpyHostToDevice);
      cudaDeviceSynchronize();
      c.allreduce_sum(d.data(), 3, dist::Memory::kDevice);
      const size_t sb = 24, sd = 0;
      c.alltoallv(d.data(), &sb, &sd, e.data(), &sb, &sd, dist::Memory::kDevice);
      std::vector<int64_t> back(3);
      cudaMemcpy(back.data(), e.data(), 24, cudaMemcpyDeviceToHost);
      EXPECT_EQ(back, h) << (use ? "nccl" : "staged");
      EXPECT_EQ(c.stats().alltoallv_calls, 1u);
    }
  });
}

#endif  // SHARDREC_HAVE_CUDA

// ---- Checkpoints on either backend. A run stopped by its step hook (which writes a checkpoint)
// and resumed from that file, on the same or another number of ranks, must end bitwise like an
// uninterrupted run: parameters, optimizer state and step counters (downloaded from the device),
// and the losses of the epochs after the resume (the epoch's loss sum so far is in the file).

// A table's per-row values in id order, on every rank: `local` holds `width` floats for each of
// this rank's rows (the rows themselves, Adam's moments, or 1 for Adagrad's accumulators; 0: the
// optimizer keeps none, empty result).
std::vector<float> by_id(const dist::ShardedEmbedding& t, const std::vector<float>& local, int width,
                         dist::Comm& comm) {
  if (width == 0) return {};
  EXPECT_EQ(local.size(), static_cast<size_t>(t.local_rows()) * width) << t.name();
  std::vector<int64_t> ids;
  for (int64_t l = 0; l < t.local_rows(); ++l) ids.push_back(t.sharding().global_id(comm.rank(), l));
  auto all_ids = dist::allgather(comm, ids);
  auto all = dist::allgather(comm, local);
  std::vector<float> out(static_cast<size_t>(t.rows()) * width);
  for (int k = 0; k < comm.size(); ++k)
    for (size_t i = 0; i < all_ids[k].size(); ++i)
      std::memcpy(&out[all_ids[k][i] * width], &all[k][i * width], width * sizeof(float));
  return out;
}

struct CkptRun {
  std::vector<float> user, item, user_m, user_v, item_m, item_v;
  int64_t user_step = 0, item_step = 0;
  std::vector<double> losses;  // the epochs this run completed
  bool interrupted = false;
  int64_t steps_per_epoch = 0;
};

// Trains on `world` thread ranks; load: resume from this checkpoint first; stop_at > 0: the step
// hook writes `save` after that many steps (since the start of training) and stops there.
CkptRun train_ckpt(int world, const TrainConfig& c, const io::PreparedDataset& d, const std::string& load = "",
                   int64_t stop_at = 0, const std::string& save = "") {
  CkptRun out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    testing::checkpoint_and_resume(t, c, shard.info, comm, load, stop_at, save);
    auto fit = t.fit();
    t.sync_state_to_host();  // the optimizer state too (the GPU backend keeps it on the device)
    const auto& m = t.model();
    using K = OptimizerConfig::Kind;
    const int wm = c.opt.kind == K::kAdam || c.opt.kind == K::kAdamDense ? c.dim : 0;
    const int wv = c.opt.kind == K::kSgd ? 0 : c.opt.kind == K::kAdagrad ? 1 : c.dim;
    CkptRun r;
    r.user = by_id(m.user, m.user.local_data(), c.dim, comm);
    r.item = by_id(m.item, m.item.local_data(), c.dim, comm);
    r.user_m = by_id(m.user, m.user.optimizer().state_m(), wm, comm);
    r.item_m = by_id(m.item, m.item.optimizer().state_m(), wm, comm);
    r.user_v = by_id(m.user, m.user.optimizer().state_v(), wv, comm);
    r.item_v = by_id(m.item, m.item.optimizer().state_v(), wv, comm);
    r.user_step = m.user.optimizer().step();
    r.item_step = m.item.optimizer().step();
    for (auto& e : fit.epochs) r.losses.push_back(e.loss);
    r.interrupted = fit.interrupted;
    r.steps_per_epoch = t.steps_per_epoch();
    if (comm.rank() == 0) out = std::move(r);
  });
  return out;
}

class BackendCheckpoint : public ::testing::TestWithParam<std::tuple<Dev, Case>> {};

TEST_P(BackendCheckpoint, StopAndResumeEqualsUninterruptedForAnyRanks) {
  const auto [dev, k] = GetParam();
  SKIP_UNLESS(dev);
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  const TrainConfig c = config_for(k, dev);
  const CkptRun ref = train_ckpt(1, c, d);
  ASSERT_FALSE(ref.interrupted);
  ASSERT_EQ(ref.losses.size(), 3u);
  const int64_t S = ref.steps_per_epoch;
  ASSERT_GT(S, 3);
  // The optimizer kept state, and its step counters count every update (one a step, plain).
  const bool plain = std::string(k.strategy) == "plain";
  if (plain) {
    EXPECT_EQ(ref.user_step, 3 * S);
  }
  EXPECT_GE(ref.item_step, 3 * S);
  if (k.opt != OptimizerConfig::Kind::kSgd) {
    EXPECT_FALSE(ref.item_v.empty());
  }
  // Mid-epoch (epoch 2, two steps in) and at the last step of epoch 1 (its loss not yet taken).
  for (const int64_t stop : {S + 2, S}) {
    for (auto [n, m] : {std::pair{1, 1}, std::pair{2, 3}, std::pair{3, 1}}) {
      SCOPED_TRACE(std::string(dev_name(dev)) + " " + k.name + ": stop at step " + std::to_string(stop) + ", " +
                   std::to_string(n) + " -> " + std::to_string(m) + " ranks");
      const std::string ck = testing::fresh_path(
          "device_checkpoint", std::string(dev_name(dev)) + "-" + k.name + "-" + std::to_string(n) + ".h5");
      const CkptRun first = train_ckpt(n, c, d, "", stop, ck);
      ASSERT_TRUE(first.interrupted);
      ASSERT_TRUE(std::filesystem::exists(ck));
      if (plain) {
        EXPECT_EQ(first.user_step, stop);  // stopped exactly at the hook's step
      }
      EXPECT_EQ(first.losses.size(), static_cast<size_t>((stop - 1) / S));
      const CkptRun resumed = train_ckpt(m, c, d, ck);
      ASSERT_FALSE(resumed.interrupted);
      EXPECT_FALSE(bitwise_equal(first.item, resumed.item)) << "the resumed run did not train";
      EXPECT_TRUE(bitwise_equal(resumed.user, ref.user)) << "user rows, max diff " << max_abs_diff(resumed.user, ref.user);
      EXPECT_TRUE(bitwise_equal(resumed.item, ref.item)) << "item rows, max diff " << max_abs_diff(resumed.item, ref.item);
      EXPECT_TRUE(bitwise_equal(resumed.user_m, ref.user_m)) << "user optimizer m";
      EXPECT_TRUE(bitwise_equal(resumed.user_v, ref.user_v)) << "user optimizer v / accumulators";
      EXPECT_TRUE(bitwise_equal(resumed.item_m, ref.item_m)) << "item optimizer m";
      EXPECT_TRUE(bitwise_equal(resumed.item_v, ref.item_v)) << "item optimizer v / accumulators";
      EXPECT_EQ(resumed.user_step, ref.user_step);
      EXPECT_EQ(resumed.item_step, ref.item_step);
      // The resumed run logs the epoch it resumed in and those after: the uninterrupted run's last ones.
      ASSERT_EQ(resumed.losses.size(), ref.losses.size() - static_cast<size_t>((stop - 1) / S));
      EXPECT_TRUE(std::equal(resumed.losses.begin(), resumed.losses.end(), ref.losses.end() - resumed.losses.size()));
    }
  }
}

const Case kCheckpointCases[] = {
    {"adam_bce_neg3", OptimizerConfig::Kind::kAdam, "bce", 3, 0.0f, "plain"},
    {"adagrad_bpr_l2", OptimizerConfig::Kind::kAdagrad, "bpr", 2, 0.01f, "plain"},
    {"adam_dense_bpr", OptimizerConfig::Kind::kAdamDense, "bpr", 1, 0.001f, "plain"},
    {"adam_dense_bpr_mirror", OptimizerConfig::Kind::kAdamDense, "bpr", 1, 0.0f, "mirror"},
    {"sgd_bpr", OptimizerConfig::Kind::kSgd, "bpr", 1, 0.0f, "plain"},
};

INSTANTIATE_TEST_SUITE_P(Devices, BackendCheckpoint,
                         ::testing::Combine(::testing::Values(Dev::kCpu, Dev::kCuda),
                                            ::testing::ValuesIn(kCheckpointCases)),
                         [](const auto& info) {
                           return std::string(dev_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
                         });

// GMF/NeuMF: a run stopped by the step hook (for ig also inside its meta phase) and resumed on
// other ranks ends bitwise like the uninterrupted run on the same backend: tables, dense
// parameters with their optimizer state, IG decisions and epoch losses.
class PointwiseCheckpoint : public ::testing::TestWithParam<std::tuple<Dev, PwCase>> {};

TEST_P(PointwiseCheckpoint, StopAndResumeEqualsUninterruptedForAnyRanks) {
  const auto [dev, k] = GetParam();
  SKIP_UNLESS(dev);
  const auto d = testing::labeled_dataset(k.users, k.users * 3 / 4, 3, 4);
  const TrainConfig c = pointwise_config(k, dev);
  const auto ref = testing::run_pointwise(1, c, d);
  ASSERT_FALSE(ref.interrupted);
  ASSERT_EQ(ref.losses.size(), 2u);
  const int64_t S = ref.steps_per_epoch, S0 = ref.phase0_steps;
  ASSERT_GT(S, 2);
  std::vector<int64_t> stops = {S + 1, S};
  if (std::string(k.strategy) == "ig") {
    ASSERT_GT(S - S0, 1);
    stops.push_back(S + S0 + 1);  // inside the meta phase
  }
  for (const int64_t stop : stops) {
    for (auto [n, m] : {std::pair{1, 1}, std::pair{2, 3}, std::pair{3, 1}}) {
      SCOPED_TRACE(std::string(dev_name(dev)) + " " + k.name + ": stop at step " + std::to_string(stop) + ", " +
                   std::to_string(n) + " -> " + std::to_string(m) + " ranks");
      const std::string ck = testing::fresh_path(
          "device_checkpoint", std::string("pw-") + dev_name(dev) + "-" + k.name + "-" + std::to_string(n) + ".h5");
      const auto first = testing::run_pointwise(n, c, d, "", stop, ck);
      ASSERT_TRUE(first.interrupted);
      EXPECT_EQ(first.losses.size(), static_cast<size_t>((stop - 1) / S));
      const auto resumed = testing::run_pointwise(m, c, d, ck);
      ASSERT_FALSE(resumed.interrupted);
      EXPECT_TRUE(bitwise_equal(resumed.user, ref.user)) << "user rows, max diff " << max_abs_diff(resumed.user, ref.user);
      EXPECT_TRUE(bitwise_equal(resumed.item, ref.item)) << "item rows, max diff " << max_abs_diff(resumed.item, ref.item);
      EXPECT_TRUE(bitwise_equal(resumed.dense, ref.dense)) << "dense, max diff " << max_abs_diff(resumed.dense, ref.dense);
      EXPECT_TRUE(bitwise_equal(resumed.dense_m, ref.dense_m)) << "dense optimizer m";
      EXPECT_TRUE(bitwise_equal(resumed.dense_v, ref.dense_v)) << "dense optimizer v";
      EXPECT_EQ(resumed.ig.decisions, ref.ig.decisions);
      ASSERT_EQ(resumed.losses.size(), ref.losses.size() - static_cast<size_t>((stop - 1) / S));
      EXPECT_TRUE(std::equal(resumed.losses.begin(), resumed.losses.end(), ref.losses.end() - resumed.losses.size()));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, PointwiseCheckpoint,
                         ::testing::Combine(::testing::Values(Dev::kCpu, Dev::kCuda),
                                            ::testing::Values(kPwCases[1], kPwCases[4], kPwCases[5])),
                         [](const auto& info) {
                           return std::string(dev_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param).name;
                         });

// GMF/NeuMF: a checkpoint written on one backend resumes on the other: the result stays within the
// pointwise tolerance of both uninterrupted runs, with the same IG decisions.
class PointwiseCrossDevice : public ::testing::TestWithParam<PwCase> {};

TEST_P(PointwiseCrossDevice, CpuCheckpointResumesOnCudaAndBack) {
  const PwCase k = GetParam();
  SKIP_UNLESS(Dev::kCuda);
  const auto d = testing::labeled_dataset(k.users, k.users * 3 / 4, 3, 4);
  const TrainConfig cpu = pointwise_config(k, Dev::kCpu), gpu = pointwise_config(k, Dev::kCuda);
  const auto ref_cpu = testing::run_pointwise(1, cpu, d), ref_gpu = testing::run_pointwise(1, gpu, d);
  const int64_t stop = ref_cpu.steps_per_epoch + 1;
  for (const bool to_gpu : {true, false}) {
    SCOPED_TRACE(std::string(k.name) + (to_gpu ? ": cpu -> cuda" : ": cuda -> cpu"));
    const std::string ck =
        testing::fresh_path("device_checkpoint", std::string("pw-cross-") + k.name + (to_gpu ? "-c2g" : "-g2c") + ".h5");
    const auto first = testing::run_pointwise(2, to_gpu ? cpu : gpu, d, "", stop, ck);
    ASSERT_TRUE(first.interrupted);
    const auto resumed = testing::run_pointwise(to_gpu ? 1 : 3, to_gpu ? gpu : cpu, d, ck);
    ASSERT_FALSE(resumed.interrupted);
    for (const auto* ref : {&ref_cpu, &ref_gpu}) {
      EXPECT_LT(max_abs_diff(resumed.user, ref->user), kPointwiseTolerance);
      EXPECT_LT(max_abs_diff(resumed.item, ref->item), kPointwiseTolerance);
      EXPECT_LT(max_abs_diff(resumed.dense, ref->dense), kPointwiseTolerance);
      EXPECT_EQ(resumed.ig.decisions, ref->ig.decisions);
    }
    EXPECT_FALSE(bitwise_equal(first.dense, resumed.dense)) << "the resumed run did not train";
  }
}

INSTANTIATE_TEST_SUITE_P(Pointwise, PointwiseCrossDevice, ::testing::Values(kPwCases[1], kPwCases[4]),
                         [](const auto& info) { return std::string(info.param.name); });

// A checkpoint written on one backend resumes on the other (--device may change on resume): the
// result stays within the backends' tolerance of both uninterrupted runs.
class CrossDeviceCheckpoint : public ::testing::TestWithParam<Case> {};

TEST_P(CrossDeviceCheckpoint, CpuCheckpointResumesOnCudaAndBack) {
  const Case k = GetParam();
  SKIP_UNLESS(Dev::kCuda);
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  const TrainConfig cpu = config_for(k, Dev::kCpu), gpu = config_for(k, Dev::kCuda);
  const CkptRun ref_cpu = train_ckpt(1, cpu, d), ref_gpu = train_ckpt(1, gpu, d);
  const int64_t stop = ref_cpu.steps_per_epoch + 2;
  for (const bool to_gpu : {true, false}) {
    SCOPED_TRACE(std::string(k.name) + (to_gpu ? ": cpu -> cuda" : ": cuda -> cpu"));
    const std::string ck =
        testing::fresh_path("device_checkpoint", std::string("cross-") + k.name + (to_gpu ? "-c2g" : "-g2c") + ".h5");
    const CkptRun first = train_ckpt(2, to_gpu ? cpu : gpu, d, "", stop, ck);
    ASSERT_TRUE(first.interrupted);
    const CkptRun resumed = train_ckpt(to_gpu ? 1 : 3, to_gpu ? gpu : cpu, d, ck);
    ASSERT_FALSE(resumed.interrupted);
    EXPECT_EQ(resumed.user_step, ref_cpu.user_step);
    EXPECT_EQ(resumed.item_step, ref_cpu.item_step);
    for (const CkptRun* ref : {&ref_cpu, &ref_gpu}) {
      EXPECT_LE(max_abs_diff(resumed.user, ref->user), kCpuTolerance);
      EXPECT_LE(max_abs_diff(resumed.item, ref->item), kCpuTolerance);
      ASSERT_EQ(resumed.losses.size(), 2u);  // epochs 2 and 3
      for (size_t e = 0; e < 2; ++e) EXPECT_NEAR(resumed.losses[e], ref->losses[e + 1], 1e-5);
    }
    // Not vacuous: the resumed run trained on, away from the checkpoint's parameters.
    EXPECT_FALSE(bitwise_equal(resumed.item, first.item));
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, CrossDeviceCheckpoint, ::testing::ValuesIn(kCheckpointCases),
                         [](const auto& info) { return std::string(info.param.name); });

// Runs everywhere: how the exchange runs (--gpu-comm) may change on resume, bitwise; the model's
// config may not, and the refusal names what may change.
TEST(DeviceCheckpoint, DeviceOptionsMayChangeOnResumeTheModelConfigMayNot) {
  const auto d = testing::planted_dataset(37, 29, 4, 5);
  const TrainConfig c = config_for(kCheckpointCases[0], Dev::kCpu);
  const CkptRun ref = train_ckpt(2, c, d);
  const std::string ck = testing::fresh_path("device_checkpoint", "gpu-comm.h5");
  ASSERT_TRUE(train_ckpt(2, c, d, "", ref.steps_per_epoch + 1, ck).interrupted);
  TrainConfig other = c;
  other.gpu_comm = "host";
  const CkptRun resumed = train_ckpt(3, other, d, ck);
  EXPECT_TRUE(bitwise_equal(resumed.item, ref.item));
  EXPECT_TRUE(bitwise_equal(resumed.item_m, ref.item_m));
  other.dim = c.dim + 1;
  const std::string e = testing::error_of([&] { train_ckpt(1, other, d, ck); });
  EXPECT_NE(e.find("incompatible configuration: dim = 12 there, 13 here"), std::string::npos) << e;
  EXPECT_NE(e.find("--device"), std::string::npos) << e;
}


#if SHARDREC_HAVE_CUDA

// DeviceEmbedding::download_state / upload_state against the CPU table, 1 and 2 thread ranks: the
// state brought down after some updates (rows, Adam's m and v or Adagrad's accumulators, step
// counter) is bitwise the CPU table's, and a fresh device table that takes it up continues
// bitwise like the CPU table.
class DeviceTableState : public ::testing::TestWithParam<OptimizerConfig::Kind> {};

TEST_P(DeviceTableState, DownloadAndUploadCarryTheWholeState) {
  SKIP_UNLESS(Dev::kCuda);
  OptimizerConfig opt;
  opt.kind = GetParam();
  opt.lr = 0.05f;
  const int64_t rows = 37;
  const int dim = 12;
  for (int world = 1; world <= 2; ++world) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      cudaSetDevice(0);
      auto sharding = dist::Sharding::modulo(rows, world);
      auto table = [&] { return dist::ShardedEmbedding("t", 5, rows, dim, sharding, comm.rank(), 9, dist::InitSpec{}, opt); };
      dist::ShardedEmbedding cpu = table(), host = table(), fresh = table();
      shardrec::cuda::Stream stream;
      dist::CudaAwareComm dcomm(comm, nullptr);
      // One update of the CPU table and of `gpu` with the same ids, keys and gradients.
      auto update = [&](int step, dist::DeviceEmbedding& gpu) {
        CounterRng r(21 + step, comm.rank(), 0);
        const size_t n = 25 + comm.rank() * 5;
        std::vector<int64_t> ids(n);
        std::vector<uint64_t> keys(n);
        std::vector<float> grads(n * dim);
        for (size_t i = 0; i < n; ++i) {
          ids[i] = static_cast<int64_t>(r.below(rows / 2 + 1));
          keys[i] = (static_cast<uint64_t>(i) * world + comm.rank()) * 3 + 1;
        }
        for (auto& g : grads) g = static_cast<float>(r.uniform() - 0.5);
        auto route = cpu.route(comm, ids);
        cpu.apply(comm, route, keys, grads.data());
        shardrec::cuda::DeviceBuffer<int64_t> d_ids(n);
        shardrec::cuda::DeviceBuffer<uint64_t> d_keys(n);
        shardrec::cuda::DeviceBuffer<float> d_grads(n * dim);
        cudaMemcpy(d_ids.data(), ids.data(), n * 8, cudaMemcpyHostToDevice);
        cudaMemcpy(d_keys.data(), keys.data(), n * 8, cudaMemcpyHostToDevice);
        cudaMemcpy(d_grads.data(), grads.data(), n * dim * 4, cudaMemcpyHostToDevice);
        cudaDeviceSynchronize();  // pageable uploads may still be in flight (see DeviceTable)
        dist::DeviceRouting dr;
        gpu.route(dcomm, d_ids.data(), n, false, dr);
        gpu.apply(dcomm, dr, d_keys.data(), d_grads.data());
      };
      auto same_state = [&](const dist::ShardedEmbedding& got, const char* what) {
        EXPECT_TRUE(bitwise_equal(got.local_data(), cpu.local_data())) << what << ": rows, " << world << " ranks";
        EXPECT_TRUE(bitwise_equal(got.optimizer().state_m(), cpu.optimizer().state_m())) << what << ": m";
        EXPECT_TRUE(bitwise_equal(got.optimizer().state_v(), cpu.optimizer().state_v())) << what << ": v";
        EXPECT_EQ(got.optimizer().step(), cpu.optimizer().step()) << what << ": step counter";
      };
      dist::DeviceEmbedding gpu(cpu, stream.get());
      for (int step = 0; step < 3; ++step) update(step, gpu);
      gpu.download_state(host);
      same_state(host, "downloaded");
      ASSERT_EQ(host.optimizer().step(), 3);
      // A fresh device table (the trainer's, before a resume) takes the state up and goes on.
      dist::DeviceEmbedding resumed(fresh, stream.get());
      resumed.upload_state(host);
      for (int step = 3; step < 6; ++step) update(step, resumed);
      dist::ShardedEmbedding back = table();
      resumed.download_state(back);
      same_state(back, "uploaded and updated");
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, DeviceTableState,
                         ::testing::Values(OptimizerConfig::Kind::kSgd, OptimizerConfig::Kind::kAdagrad,
                                           OptimizerConfig::Kind::kAdam, OptimizerConfig::Kind::kAdamDense),
                         [](const auto& info) { return OptimizerConfig::kind_name(info.param); });

#endif  // SHARDREC_HAVE_CUDA

}  // namespace
}  // namespace shardrec
