// Checkpoints: a run stopped at a step and resumed from its checkpoint ends with bitwise the
// parameters of an uninterrupted run, on 1 rank, from 2 ranks into 3 and from 3 into 1 (ranks as
// threads), for MF, VBPR, GMF and NeuMF (plain and Inverse Gradient training); damaged files, other models and datasets and incompatible configs are refused with
// the file left as it was; a NaN gradient stops training naming the tensor.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/error.h"
#include "core/mf_model.h"
#include "core/ncf_model.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "core/checkpoint_state.h"
#include "io/dataset.h"
#include "io/export.h"
#include "io/features.h"
#include "io/hdf5_util.h"

namespace shardrec {
namespace {

namespace fs = std::filesystem;
using testing::error_of;
using testing::full_table;

using Loader = std::function<io::DataShard(dist::Comm&)>;

struct Final {
  std::vector<float> user, item, W, b;
  std::vector<double> losses;  // of the epochs this run completed
  int best_epoch = 0;
  bool interrupted = false;
  int64_t steps_per_epoch = 0;
};

// Trains on `world` ranks; load: resume from this checkpoint first; stop_at > 0: write `save`
// after that many steps and stop there.
Final run(int world, const TrainConfig& c, const Loader& loader, const std::string& load = "",
          int64_t stop_at = 0, const std::string& save = "") {
  Final out;
  dist::run_ranks(world, [&](dist::Comm& comm) {
    auto shard = loader(comm);
    Trainer t(c, shard, comm);
    testing::checkpoint_and_resume(t, c, shard.info, comm, load, stop_at, save);
    auto fit = t.fit();
    auto u = full_table(t.model().user, comm);
    auto i = full_table(t.model().item, comm);
    if (comm.rank() != 0) return;
    out.user = u;
    out.item = i;
    out.W = t.model_as<MFModel>().W;
    out.b = t.model_as<MFModel>().b;
    for (auto& e : fit.epochs) out.losses.push_back(e.loss);
    out.best_epoch = fit.best_epoch;
    out.interrupted = fit.interrupted;
    out.steps_per_epoch = t.steps_per_epoch();
  });
  return out;
}

TrainConfig base_config() {
  TrainConfig c;
  c.data = "<memory>";
  c.dim = 12;
  c.batch = 64;
  c.epochs = 5;
  c.eval_every = 1;
  c.patience = 3;
  c.opt.lr = 0.02f;
  c.eval.ks = {5, 10};
  return c;
}

std::string vbpr_dataset(const std::string& name) {
  const int users = 90, items = 40, groups = 4;
  auto d = testing::planted_dataset(users, items, groups, 5);
  const std::string path = testing::fresh_path("checkpoint", name);
  const int64_t F = groups + 2;
  std::vector<float> feat(items * F, 0.0f);
  for (int i = 0; i < items; ++i) {
    feat[i * F + i % groups] = 1.0f;
    feat[i * F + groups + i % 2] = 0.5f;
  }
  io::write_dataset(d, path, "test_checkpoint", [&](io::H5File& f) {
    io::write_modality(f, "group", feat, items, F, 0, "test");
  });
  return path;
}

// Stops runs at each step of `stops` on n ranks and resumes them on m (1 -> 1, 2 -> 3, 3 -> 1):
// the checkpoint is whole, the resumed run logs the uninterrupted run's remaining epochs with the
// same losses and best epoch, and `same(first, resumed, ref)` checks the parameters.
template <class Result>
void stop_and_resume(const std::string& name, const Result& ref, const std::vector<int64_t>& stops,
                     const std::function<Result(int, const std::string&, int64_t, const std::string&)>& train,
                     const std::function<void(const Result&, const Result&, const Result&)>& same) {
  const int64_t S = ref.steps_per_epoch;
  for (const int64_t stop : stops) {
    for (auto [n, m] : {std::pair{1, 1}, std::pair{2, 3}, std::pair{3, 1}}) {
      SCOPED_TRACE(name + " stop at " + std::to_string(stop) + ", " + std::to_string(n) + " -> " +
                   std::to_string(m) + " ranks");
      const std::string ck = testing::fresh_path("checkpoint", "resume-" + name + ".h5");
      const Result first = train(n, "", stop, ck);
      ASSERT_TRUE(first.interrupted);
      ASSERT_TRUE(fs::exists(ck));
      for (const auto& e : fs::directory_iterator(fs::path(ck).parent_path()))  // no temporary left
        EXPECT_EQ(e.path().string().find(ck + ".tmp"), std::string::npos) << e.path();
      EXPECT_LT(first.losses.size(), ref.losses.size());
      const Result second = train(m, ck, 0, "");
      EXPECT_FALSE(second.interrupted);
      same(first, second, ref);
      EXPECT_EQ(second.best_epoch, ref.best_epoch);
      // The resumed run logs the epochs from the one in progress on, with the same losses.
      const size_t done = static_cast<size_t>(stop / S) - (stop % S == 0 ? 1 : 0);
      ASSERT_EQ(second.losses.size(), ref.losses.size() - done);
      for (size_t k = 0; k < second.losses.size(); ++k) EXPECT_EQ(second.losses[k], ref.losses[done + k]);
    }
  }
}

struct Variant {
  const char* name;
  OptimizerConfig::Kind opt;
  const char* loss;
  const char* strategy;
  bool vbpr;
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

class ResumeTest : public ::testing::TestWithParam<Variant> {};

TEST_P(ResumeTest, StopAndResumeEqualsUninterruptedForAnyRanks) {
  const Variant v = GetParam();
  TrainConfig c = base_config();
  c.opt.kind = v.opt;
  c.loss = v.loss;
  c.strategy = v.strategy;
  Loader loader;
  const auto mem = testing::planted_dataset(120, 60, 4, 3);
  if (v.vbpr) {
    c.data = vbpr_dataset(std::string("vbpr-") + v.name + ".h5");
    c.model = "vbpr";
    c.features = "group";
    c.dim = 6;
    loader = [&](dist::Comm& comm) { return io::load_shard(c.data, comm); };
  } else {
    loader = [&](dist::Comm& comm) { return io::shard_from_memory(mem, comm); };
  }
  const Final ref = run(1, c, loader);
  ASSERT_FALSE(ref.interrupted);
  ASSERT_GE(ref.losses.size(), 4u);
  const int64_t S = ref.steps_per_epoch;
  ASSERT_GT(S, 4);
  // Mid-epoch (epoch 3, a few steps in) and at an epoch's last step (before its validation).
  stop_and_resume<Final>(v.name, ref, {2 * S + 3, S},
                         [&](int world, const std::string& load, int64_t stop, const std::string& save) {
                           return run(world, c, loader, load, stop, save);
                         },
                         [](const Final& first, const Final& second, const Final& ref) {
                           EXPECT_NE(first.item, ref.item);  // stopped before the end
                           EXPECT_EQ(second.user, ref.user);
                           EXPECT_EQ(second.item, ref.item);
                           EXPECT_EQ(second.W, ref.W);
                           EXPECT_EQ(second.b, ref.b);
                         });
}

INSTANTIATE_TEST_SUITE_P(
    Variants, ResumeTest,
    ::testing::Values(Variant{"adam_dense_bpr", OptimizerConfig::Kind::kAdamDense, "bpr", "plain", false},
                      Variant{"adagrad_bce_mirror", OptimizerConfig::Kind::kAdagrad, "bce", "mirror", false},
                      Variant{"vbpr_adam", OptimizerConfig::Kind::kAdam, "bpr", "plain", true}),
    [](const auto& info) { return std::string(info.param.name); });

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes a checkpoint after `steps` steps of base_config on 2 ranks.
std::string make_checkpoint(const std::string& name, const io::PreparedDataset& d, const TrainConfig& c,
                            int64_t steps = 5) {
  const std::string ck = testing::fresh_path("checkpoint", name);
  run(2, c, [&](dist::Comm& comm) { return io::shard_from_memory(d, comm); }, "", steps, ck);
  return ck;
}

// The error of loading `ck` into a trainer for `c` and `d` on 2 ranks.
std::string load_error(const std::string& ck, const io::PreparedDataset& d, const TrainConfig& c) {
  std::string err;
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    auto e = error_of([&] { load_checkpoint(ck, t, c, shard.info, comm); });
    if (comm.rank() == 0) err = e;
  });
  return err;
}

// Byte offset of a dataset's data in an HDF5 file.
haddr_t data_offset(const std::string& path, const std::string& ds) {
  std::lock_guard<std::recursive_mutex> lk(io::hdf5_mutex());
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, ds.c_str(), H5P_DEFAULT);
  haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

TEST(Checkpoint, CorruptedOrTruncatedFileIsRefusedAndLeftUntouched) {
  const auto d = testing::planted_dataset(60, 30, 3, 8);
  const TrainConfig c = base_config();
  const std::string ck = make_checkpoint("corrupt.h5", d, c);
  // One flipped bit in the item table's rows.
  {
    const haddr_t off = data_offset(ck, "/tables/item/embedding");
    ASSERT_NE(off, HADDR_UNDEF);
    std::fstream f(ck, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(off) + 17);
    char b = 0;
    f.read(&b, 1);
    b ^= 0x10;
    f.seekp(static_cast<std::streamoff>(off) + 17);
    f.write(&b, 1);
  }
  const std::string before = file_bytes(ck);
  const std::string err = load_error(ck, d, c);
  EXPECT_NE(err.find(ck), std::string::npos) << err;
  EXPECT_NE(err.find("/tables/item/embedding fails its checksum"), std::string::npos) << err;
  EXPECT_EQ(file_bytes(ck), before);

  // Truncated to half its size.
  const std::string ck2 = make_checkpoint("truncated.h5", d, c);
  fs::resize_file(ck2, fs::file_size(ck2) / 2);
  const std::string before2 = file_bytes(ck2);
  const std::string err2 = load_error(ck2, d, c);
  EXPECT_NE(err2.find(ck2), std::string::npos) << err2;
  EXPECT_NE(err2.find("truncated"), std::string::npos) << err2;
  EXPECT_EQ(file_bytes(ck2), before2);

  // Not HDF5 at all.
  const std::string junk = testing::fresh_path("checkpoint", "junk.h5");
  std::ofstream(junk) << "not a checkpoint\n";
  EXPECT_NE(load_error(junk, d, c).find("not HDF5"), std::string::npos);
}

TEST(Checkpoint, OtherModelDatasetOrConfigIsRefused) {
  const auto d = testing::planted_dataset(60, 30, 3, 8);
  const TrainConfig c = base_config();
  const std::string ck = make_checkpoint("compat.h5", d, c);
  const std::string before = file_bytes(ck);
  TrainConfig other = c;
  other.dim = 16;
  other.opt.lr = 0.5f;
  std::string err = load_error(ck, d, other);
  EXPECT_NE(err.find("incompatible configuration"), std::string::npos) << err;
  EXPECT_NE(err.find("dim = 12 there, 16 here"), std::string::npos) << err;
  EXPECT_NE(err.find("lr = "), std::string::npos) << err;
  // More epochs is a compatible change.
  TrainConfig longer = c;
  longer.epochs = 9;
  EXPECT_EQ(load_error(ck, d, longer), "(no error)");
  // Another dataset (more users).
  const auto bigger = testing::planted_dataset(70, 30, 3, 8);
  err = load_error(ck, bigger, c);
  EXPECT_NE(err.find("written for another dataset: num_users = 60 there, 70"), std::string::npos) << err;
  // A parameters file (another schema) is not a checkpoint.
  const std::string params = testing::fresh_path("checkpoint", "params.h5");
  const std::string data = testing::fresh_path("checkpoint", "data.h5");
  io::write_dataset(d, data, "test_checkpoint");
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    io::export_tables(params, {&t.model().user, &t.model().item}, {"user", "item"}, data, comm);
  });
  err = load_error(params, d, c);
  EXPECT_NE(err.find("not a shardrec checkpoint"), std::string::npos) << err;
  EXPECT_EQ(file_bytes(ck), before);
}

TEST(Checkpoint, CheckpointerKeepsTheNewestAndStopsOnTheSignal) {
  const auto d = testing::planted_dataset(60, 30, 3, 8);
  TrainConfig c = base_config();
  c.eval_every = 0;
  const std::string dir = testing::temp_dir("checkpoint/policy");
  fs::remove_all(dir);
  // A leftover of a write that crashed is not a checkpoint and is never picked.
  fs::create_directories(dir);
  std::ofstream(dir + "/ckpt-0000009999.h5.tmp") << "half written";
  int64_t stopped_at = 0;
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    volatile std::sig_atomic_t flag = 0;  // per rank: the signal reaches ranks at different steps
    io::CheckpointPolicy p;
    p.dir = dir;
    p.every_steps = 3;
    p.keep = 2;
    p.signal_flag = &flag;
    io::Checkpointer ck(p, comm);
    auto sd = state_dict(t);
    t.set_step_hook([&](Trainer& tr) {
      if (comm.rank() == 1 && tr.global_step() == 10) flag = 1;  // only one rank sees it
      return ck(*sd);
    });
    auto fit = t.fit();
    EXPECT_TRUE(fit.interrupted);
    if (comm.rank() == 0) stopped_at = t.global_step();
  });
  EXPECT_EQ(stopped_at, 10);  // all ranks stopped at the step the signal was seen
  const auto all = io::list_checkpoints(dir);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(fs::path(all[0]).filename(), "ckpt-0000000009.h5");
  EXPECT_EQ(fs::path(all[1]).filename(), "ckpt-0000000010.h5");
}

TEST(Checkpoint, CheckpointerWritesEveryMinutesWhenDue) {
  const auto d = testing::planted_dataset(60, 30, 3, 8);
  TrainConfig c = base_config();
  c.eval_every = 0;
  c.epochs = 1;
  const std::string dir = testing::temp_dir("checkpoint/minutes");
  fs::remove_all(dir);
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    io::CheckpointPolicy p;
    p.dir = dir;
    p.every_minutes = 1e-9;  // due at every step
    p.keep = 100;
    io::Checkpointer ck(p, comm);
    checkpoint_steps(t, ck);
    EXPECT_FALSE(t.fit().interrupted);
    if (comm.rank() == 0) {
      EXPECT_EQ(static_cast<int64_t>(io::list_checkpoints(dir).size()), t.steps_per_epoch());
    }
  });
  // A long interval writes none in a short run.
  fs::remove_all(dir);
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    io::CheckpointPolicy p;
    p.dir = dir;
    p.every_minutes = 60;
    io::Checkpointer ck(p, comm);
    checkpoint_steps(t, ck);
    t.fit();
  });
  EXPECT_TRUE(io::list_checkpoints(dir).empty());
}

TEST(Checkpoint, ParsesCheckpointEvery) {
  int64_t s = 0;
  double m = 0;
  io::parse_checkpoint_every("500", &s, &m);
  EXPECT_EQ(s, 500);
  EXPECT_EQ(m, 0);
  io::parse_checkpoint_every("1.5m", &s, &m);
  EXPECT_EQ(s, 0);
  EXPECT_EQ(m, 1.5);
  io::parse_checkpoint_every("20steps", &s, &m);
  EXPECT_EQ(s, 20);
  EXPECT_NE(error_of([&] { io::parse_checkpoint_every("10h", &s, &m); }).find("--checkpoint-every"), std::string::npos);
  EXPECT_NE(error_of([&] { io::parse_checkpoint_every("0", &s, &m); }).find("--checkpoint-every"), std::string::npos);
}

// Scales the gradients of one step by NaN: the loss stays finite, the gradients do not.
class NanAtStep final : public Strategy {
 public:
  explicit NanAtStep(int64_t at) : at_(at) {}
  void step(int64_t batch, StepOps& ops) override {
    ops.forward_backward(batch == at_ ? std::nanf("") : 1.0f, true);
    ops.apply();
  }
  std::string describe() const override { return "nan-at-step"; }

 private:
  int64_t at_;
};

// ---- Pointwise models (GMF, NeuMF) ---------------------------------------------------------------

using PwFinal = testing::PointwiseRun;
using testing::run_pointwise;

TrainConfig pointwise_config(const std::string& model, const std::string& strategy, bool reference) {
  TrainConfig c;
  c.data = "<memory>";
  c.model = model;
  c.dim = 4;
  c.mlp_layers = 2;
  c.loss = "idl";
  c.strategy = strategy;
  c.il_reference = reference;
  c.batch = 23;
  c.epochs = 3;
  c.eval_every = 1;
  c.patience = 3;
  c.opt.lr = 0.01f;
  c.ig_sample_lr = 0.05f;
  c.ig_train_ratio = 0.6f;
  c.eval.ks = {3};
  c.valid_metric = "auc";
  return c;
}

struct PwVariant {
  const char* name;
  const char* model;
  const char* strategy;
  bool reference;
};
void PrintTo(const PwVariant& v, std::ostream* os) { *os << v.name; }

class PointwiseResumeTest : public ::testing::TestWithParam<PwVariant> {};

TEST_P(PointwiseResumeTest, StopAndResumeEqualsUninterruptedForAnyRanks) {
  const PwVariant v = GetParam();
  const TrainConfig c = pointwise_config(v.model, v.strategy, v.reference);
  const auto d = testing::labeled_dataset(80, 40, 4, 3);
  const PwFinal ref = run_pointwise(1, c, d);
  ASSERT_FALSE(ref.interrupted);
  ASSERT_EQ(ref.losses.size(), 3u);
  const int64_t S = ref.steps_per_epoch, S0 = ref.phase0_steps;
  const bool ig = std::string(v.strategy) == "ig";
  ASSERT_GT(S0, 2);
  if (ig) {
    ASSERT_GT(S - S0, 2);
    EXPECT_EQ(ref.ig.decisions.size(), static_cast<size_t>(3 * (S - S0)));
  }
  // Mid-epoch 2 (for ig: in its training-train phase and in its meta phase) and at epoch 1's
  // last step (before its validation).
  std::vector<int64_t> stops = {S + 2, S};
  if (ig) stops.push_back(S + S0 + 1);
  stop_and_resume<PwFinal>(v.name, ref, stops,
                           [&](int world, const std::string& load, int64_t stop, const std::string& save) {
                             return run_pointwise(world, c, d, load, stop, save);
                           },
                           [](const PwFinal&, const PwFinal& second, const PwFinal& ref) {
                             EXPECT_EQ(second.user, ref.user);
                             EXPECT_EQ(second.item, ref.item);
                             EXPECT_EQ(second.dense, ref.dense);
                             EXPECT_EQ(second.ig.decisions, ref.ig.decisions);
                             EXPECT_EQ(second.ig.forward, ref.ig.forward);
                             EXPECT_EQ(second.ig.inverse, ref.ig.inverse);
                             EXPECT_EQ(second.ig.mid, ref.ig.mid);
                           });
}

INSTANTIATE_TEST_SUITE_P(Variants, PointwiseResumeTest,
                         ::testing::Values(PwVariant{"gmf_idl_plain", "gmf", "plain", false},
                                           PwVariant{"neumf_idl_plain", "neumf", "plain", false},
                                           PwVariant{"gmf_idl_ig", "gmf", "ig", false},
                                           PwVariant{"neumf_idl_ig", "neumf", "ig", false},
                                           PwVariant{"neumf_idl_ig_reference", "neumf", "ig", true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Checkpoint, PointwiseDamagedOrIncompatibleIsRefused) {
  const auto d = testing::labeled_dataset(60, 30, 3, 8);
  const TrainConfig c = pointwise_config("neumf", "ig", false);
  const std::string ck = testing::fresh_path("checkpoint", "pw-compat.h5");
  run_pointwise(2, c, d, "", 7, ck);
  const std::string before = file_bytes(ck);
  EXPECT_EQ(load_error(ck, d, c), "(no error)");
  // Another strategy and model.
  TrainConfig other = c;
  other.strategy = "plain";
  std::string err = load_error(ck, d, other);
  EXPECT_NE(err.find("incompatible configuration"), std::string::npos) << err;
  EXPECT_NE(err.find("strategy = ig there, plain here"), std::string::npos) << err;
  other = c;
  other.model = "gmf";
  err = load_error(ck, d, other);
  EXPECT_NE(err.find("model = neumf there, gmf here"), std::string::npos) << err;
  // An MF checkpoint is not one for NeuMF.
  const std::string mf = make_checkpoint("pw-mf.h5", d, base_config());
  err = load_error(mf, d, c);
  EXPECT_NE(err.find("incompatible configuration"), std::string::npos) << err;
  // A flipped byte in the dense parameters fails their checksum.
  const std::string bad = testing::fresh_path("checkpoint", "pw-bad.h5");
  fs::copy_file(ck, bad);
  {
    const haddr_t off = data_offset(bad, "/dense/ncf");
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(off) + 5);
    char b = 0;
    f.read(&b, 1);
    b ^= 0x10;
    f.seekp(static_cast<std::streamoff>(off) + 5);
    f.write(&b, 1);
  }
  err = load_error(bad, d, c);
  EXPECT_NE(err.find("dataset /dense/ncf fails its checksum"), std::string::npos) << err;
  EXPECT_NE(err.find(bad), std::string::npos) << err;
  // Truncated.
  const std::string cut = testing::fresh_path("checkpoint", "pw-cut.h5");
  fs::copy_file(ck, cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  err = load_error(cut, d, c);
  EXPECT_NE(err.find("checkpoint " + cut), std::string::npos) << err;
  EXPECT_EQ(file_bytes(ck), before);
}

// The check runs inside each thread's range of samples: the message (its dataset row) must not
// depend on how many threads split the step.
TEST(Failures, NanGradientMessageIsTheSameForAnyThreads) {
  const auto d = testing::planted_dataset(60, 30, 3, 8);
  std::vector<std::string> first;
  for (int threads : {1, 2, 3}) {
    TrainConfig c = base_config();
    c.eval_every = 0;
    c.threads = threads;
    std::vector<std::string> errs(2);
    dist::run_ranks(2, [&](dist::Comm& comm) {
      auto shard = io::shard_from_memory(d, comm);
      Trainer t(c, shard, comm);
      t.set_strategy(std::make_unique<NanAtStep>(1));
      errs[comm.rank()] = error_of([&] { t.train_epoch(1); });
    });
    for (const auto& e : errs) EXPECT_NE(e.find("(dataset row "), std::string::npos) << e;
    if (first.empty())
      first = errs;
    else
      EXPECT_EQ(errs, first) << threads << " threads";
  }
}

TEST(Failures, NanGradientStopsTrainingNamingTensorStepAndRank) {
  const auto d = testing::planted_dataset(60, 30, 3, 8);
  TrainConfig c = base_config();
  c.eval_every = 0;
  std::vector<std::string> errs(2);
  dist::run_ranks(2, [&](dist::Comm& comm) {
    auto shard = io::shard_from_memory(d, comm);
    Trainer t(c, shard, comm);
    t.set_strategy(std::make_unique<NanAtStep>(2));
    errs[comm.rank()] = error_of([&] { t.train_epoch(1); });
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_NE(errs[r].find("training diverged: the gradient of user.embedding is NaN at epoch 1 step 2 on rank " +
                           std::to_string(r)),
              std::string::npos)
        << errs[r];
  }
}

}  // namespace
}  // namespace shardrec
