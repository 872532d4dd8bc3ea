// VBPR: item vectors [e_i, W f_i + b] with feature rows sharded like the items and a replicated
// projection whose gradient is summed exactly. World-size invariance (with and without Mirror
// Gradient), the gradient of the projection against finite differences of the loss, and
// learning from features.
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "core/mf_model.h"
#include "core/robustness.h"
#include "core/trainer.h"
#include "dist/inproc_comm.h"
#include "fixtures.h"
#include "io/dataset.h"
#include "io/features.h"

namespace shardrec {
namespace {

using testing::full_table;

using testing::vbpr_dataset;

TrainConfig vbpr_config(const std::string& data) {
  TrainConfig c;
  c.data = data;
  c.model = "vbpr";
  c.features = "group";
  c.dim = 6;
  c.batch = 37;
  c.epochs = 2;
  c.eval_every = 0;
  c.opt.lr = 0.01f;
  c.eval.ks = {5};
  return c;
}

struct Out : testing::TrainRun {
  std::vector<float> W, b;
};

Out run(int world, const TrainConfig& c) {
  Out out;
  testing::train_ranks(out, world, c, nullptr, [&out](Trainer& t) {
    out.W = t.model_as<MFModel>().W;
    out.b = t.model_as<MFModel>().b;
  });
  return out;
}

TEST(Vbpr, BitwiseIdenticalFor1To4RanksWithAndWithoutMirrorGradient) {
  const std::string data = vbpr_dataset("invariance", 45, 31, 3, 4);
  for (const char* strategy : {"plain", "mirror"}) {
    TrainConfig c = vbpr_config(data);
    c.strategy = strategy;
    c.mg_beta = 2;
    const Out ref = run(1, c);
    ASSERT_EQ(ref.W.size(), 6u * 6u);  // d x F, F = 3 groups + 3 noise columns
    TrainConfig c0 = c;
    c0.epochs = 0;
    EXPECT_NE(run(1, c0).W, ref.W);  // the projection trains
    for (int world = 2; world <= 4; ++world) {
      const Out got = run(world, c);
      EXPECT_EQ(got.user, ref.user) << strategy << " " << world;
      EXPECT_EQ(got.item, ref.item) << strategy << " " << world;
      EXPECT_EQ(got.W, ref.W) << strategy << " " << world;
      EXPECT_EQ(got.b, ref.b) << strategy << " " << world;
      EXPECT_EQ(got.test.values, ref.test.values) << strategy << " " << world;
    }
  }
}

TEST(Vbpr, ProjectionGradientMatchesFiniteDifferences) {
  // With plain SGD, lr 1 and one step over every row, the step moves W by exactly -dL/dW, where
  // L is the mean loss over all rows with epoch 0's negatives: the loss training_loss() measures.
  const std::string data = vbpr_dataset("gradient", 30, 20, 2, 7);
  TrainConfig c = vbpr_config(data);
  c.opt.kind = OptimizerConfig::Kind::kSgd;
  c.opt.lr = 1.0f;
  c.batch = 1 << 20;  // one step covers every row
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::load_shard(data, comm);
    Trainer t(c, shard, comm);
    MFModel& m = t.model_as<MFModel>();
    const auto W0 = m.W;
    const auto users0 = m.user.local_data(), items0 = m.item.local_data();
    t.train_epoch(0);
    std::vector<double> grad(W0.size());
    for (size_t k = 0; k < W0.size(); ++k) grad[k] = static_cast<double>(W0[k]) - m.W[k];
    m.user.local_data() = users0;
    m.item.local_data() = items0;
    const float h = 1e-3f;
    int nonzero = 0;
    for (size_t k = 0; k < W0.size(); ++k) {
      m.W = W0;
      m.W[k] += h;
      const double up = t.training_loss();
      m.W[k] = W0[k] - h;
      const double down = t.training_loss();
      const double fd = (up - down) / (static_cast<double>(W0[k] + h) - static_cast<double>(W0[k] - h));
      EXPECT_NEAR(grad[k], fd, 2e-4 + 0.02 * std::abs(fd)) << "W[" << k << "]";
      nonzero += std::abs(grad[k]) > 1e-5;
    }
    EXPECT_GT(nonzero, static_cast<int>(W0.size()) / 2);  // not a vacuous comparison of zeros
  });
}

TEST(Vbpr, ALossOnlyPassLeavesTrainingUnchanged) {
  // training_loss() runs forward/backward without a step; the next training step must not see
  // anything of it (the projection's gradient sums belong to one pass).
  const std::string data = vbpr_dataset("lossonly", 30, 20, 2, 3);
  TrainConfig c = vbpr_config(data);
  std::vector<float> plain_W, probed_W;
  for (bool probe : {false, true}) {
    dist::run_ranks(2, [&](dist::Comm& comm) {
      auto shard = io::load_shard(data, comm);
      Trainer t(c, shard, comm);
      if (probe) t.training_loss();
      t.train_epoch(1);
      if (comm.rank() == 0) (probe ? probed_W : plain_W) = t.model_as<MFModel>().W;
    });
  }
  EXPECT_EQ(probed_W, plain_W);
}

TEST(Vbpr, LearnsFromFeatures) {
  const std::string data = vbpr_dataset("learn", 200, 120, 6, 9);
  TrainConfig c = vbpr_config(data);
  c.dim = 16;
  c.batch = 64;
  c.epochs = 30;
  c.opt.lr = 0.02f;
  c.eval.ks = {10};
  const Out after = run(2, c);
  EXPECT_GT(after.test.get("recall@10"), 0.25);
  EXPECT_GT(after.test.get("auc"), 0.7);
}

TEST(Vbpr, MissingModalityIsAClearError) {
  const std::string data = vbpr_dataset("missing", 20, 10, 2, 1);
  TrainConfig c = vbpr_config(data);
  c.features = "image";
  dist::run_ranks(1, [&](dist::Comm& comm) {
    auto shard = io::load_shard(data, comm);
    try {
      Trainer t(c, shard, comm);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no modality 'image'"), std::string::npos) << e.what();
    }
  });
}

}  // namespace
}  // namespace shardrec

namespace shardrec {
namespace {

TEST(Robustness, FeatureShiftsAreTheSameForAnyWorldAndDoWhatTheySay) {
  const std::string data = vbpr_dataset("shift", 30, 23, 3, 5);
  TrainConfig c = vbpr_config(data);
  std::vector<float> clean, noisy_ref, adjusted_ref;
  for (int world : {1, 3}) {
    dist::run_ranks(world, [&](dist::Comm& comm) {
      auto shard = io::load_shard(data, comm);
      Trainer t(c, shard, comm);
      MFModel& m = t.model_as<MFModel>();
      const auto base = m.features->local_data();
      const auto orig = full_table(*m.features, comm);
      perturb_features(m, {"noise", 0.0, 1}, comm);
      EXPECT_EQ(full_table(*m.features, comm), orig);  // strength 0 changes nothing
      perturb_features(m, {"noise", 0.5, 1}, comm);
      const auto noisy = full_table(*m.features, comm);
      m.features->local_data() = base;
      perturb_features(m, {"adjust", 1.0, 1}, comm);
      const auto adjusted = full_table(*m.features, comm);
      m.features->local_data() = base;
      if (comm.rank() != 0) return;
      EXPECT_NE(noisy, orig);
      // adjust 1.0: every item's row is now some item's original row.
      const int F = m.feat_dim();
      for (int i = 0; i < 23; ++i) {
        bool found = false;
        for (int j = 0; j < 23 && !found; ++j)
          found = std::equal(&adjusted[i * F], &adjusted[(i + 1) * F], &orig[j * F]);
        EXPECT_TRUE(found) << "item " << i;
      }
      if (world == 1) {
        clean = orig;
        noisy_ref = noisy;
        adjusted_ref = adjusted;
      } else {
        EXPECT_EQ(orig, clean);
        EXPECT_EQ(noisy, noisy_ref);
        EXPECT_EQ(adjusted, adjusted_ref);
      }
    });
  }
  EXPECT_THROW(parse_perturbations("blur:0.1", 1), Error);
  EXPECT_THROW(parse_perturbations("adjust:1.5", 1), Error);
  EXPECT_EQ(parse_perturbations("noise:0.1,0.5", 1).size(), 2u);
}

}  // namespace
}  // namespace shardrec
